#include "config/config.hpp"

#include <cctype>
#include <limits>

namespace crmhost::config {

std::string Problem::to_string() const {
  std::string out = where.file;
  if (where.line > 0) {
    out += ":" + std::to_string(where.line);
    if (where.column > 0) out += ":" + std::to_string(where.column);
  }
  return out + ": " + message;
}

namespace {

// Reads a run of decimal digits at `pos`; nullopt when there is none or it overflows `limit`.
std::optional<uint64_t> read_number(std::string_view text, size_t &pos, uint64_t limit) {
  const size_t start = pos;
  uint64_t value = 0;
  while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
    const uint64_t digit = static_cast<uint64_t>(text[pos] - '0');
    if (value > (limit - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
    ++pos;
  }
  if (pos == start) return std::nullopt;
  return value;
}

}  // namespace

std::string webhook_object(const PipelineConfig &pipeline) {
  if (pipeline.webhook && !pipeline.webhook->object.empty()) return pipeline.webhook->object;
  if (pipeline.poll) return pipeline.poll->object;
  return pipeline.sink.object;
}

std::string_view to_string(PushMode mode) {
  switch (mode) {
    case PushMode::upsert:
      return "upsert";
    case PushMode::create:
      return "create";
    case PushMode::update:
      return "update";
    case PushMode::remove:
      return "delete";
  }
  return "upsert";
}

std::string_view to_string(ConflictPolicy policy) {
  switch (policy) {
    case ConflictPolicy::source_wins:
      return "source_wins";
    case ConflictPolicy::target_wins:
      return "target_wins";
    case ConflictPolicy::newest_wins:
      return "newest_wins";
    case ConflictPolicy::fill_empty:
      return "fill_empty";
  }
  return "source_wins";
}

std::optional<PushMode> parse_push_mode(std::string_view text) {
  for (auto mode : {PushMode::upsert, PushMode::create, PushMode::update, PushMode::remove})
    if (to_string(mode) == text) return mode;
  return std::nullopt;
}

std::string_view to_string(DeletePolicy policy) {
  switch (policy) {
    case DeletePolicy::keep_edited:
      return "keep_edited";
    case DeletePolicy::propagate:
      return "propagate";
    case DeletePolicy::archive:
      return "archive";
  }
  return "keep_edited";
}

std::optional<DeletePolicy> parse_delete_policy(std::string_view text) {
  for (auto policy : {DeletePolicy::keep_edited, DeletePolicy::propagate, DeletePolicy::archive})
    if (to_string(policy) == text) return policy;
  return std::nullopt;
}

std::optional<ConflictPolicy> parse_conflict_policy(std::string_view text) {
  for (auto policy : {ConflictPolicy::source_wins, ConflictPolicy::target_wins,
                      ConflictPolicy::newest_wins, ConflictPolicy::fill_empty})
    if (to_string(policy) == text) return policy;
  return std::nullopt;
}

std::optional<Duration> parse_duration(std::string_view text) {
  // Units in the only order they may appear ("1h30m", never "30m1h"), each at most once.
  struct Unit {
    std::string_view suffix;
    uint64_t ms;
  };
  static constexpr Unit kUnits[] = {
      {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1'000}, {"ms", 1}};
  constexpr uint64_t kMax = 100ULL * 365 * 86'400'000;  // a century is plenty
  if (text == "0") return Duration{0};
  size_t pos = 0;
  size_t next_unit = 0;
  uint64_t total = 0;
  if (text.empty()) return std::nullopt;
  while (pos < text.size()) {
    auto number = read_number(text, pos, kMax);
    if (!number) return std::nullopt;
    size_t end = pos;
    while (end < text.size() && std::isalpha(static_cast<unsigned char>(text[end]))) ++end;
    const std::string_view suffix = text.substr(pos, end - pos);
    size_t unit = next_unit;
    while (unit < std::size(kUnits) && kUnits[unit].suffix != suffix) ++unit;
    if (unit == std::size(kUnits)) return std::nullopt;
    if (*number > (kMax - total) / kUnits[unit].ms) return std::nullopt;
    total += *number * kUnits[unit].ms;
    next_unit = unit + 1;
    pos = end;
  }
  return Duration{static_cast<Duration::rep>(total)};
}

std::optional<uint64_t> parse_size(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    uint64_t factor;
  };
  static constexpr Unit kUnits[] = {{"", 1},
                                    {"B", 1},
                                    {"kB", 1000},
                                    {"KB", 1000},
                                    {"KiB", 1ULL << 10},
                                    {"MB", 1000ULL * 1000},
                                    {"MiB", 1ULL << 20},
                                    {"GB", 1000ULL * 1000 * 1000},
                                    {"GiB", 1ULL << 30},
                                    {"TB", 1000ULL * 1000 * 1000 * 1000},
                                    {"TiB", 1ULL << 40}};
  size_t pos = 0;
  auto number = read_number(text, pos, std::numeric_limits<uint64_t>::max());
  if (!number) return std::nullopt;
  const std::string_view suffix = text.substr(pos);
  for (const auto &unit : kUnits) {
    if (unit.suffix != suffix) continue;
    if (*number > std::numeric_limits<uint64_t>::max() / unit.factor) return std::nullopt;
    return *number * unit.factor;
  }
  return std::nullopt;
}

}  // namespace crmhost::config
