#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <unordered_set>

#include "config/detail.hpp"
#include "util/text.hpp"

namespace crmhost::config::detail {

SourceLocation location(const std::string &file, const YAML::Mark &mark) {
  SourceLocation where;
  where.file = file;
  if (!mark.is_null()) {
    where.line = mark.line + 1;
    where.column = mark.column + 1;
  }
  return where;
}

YAML::Mark mark_of(const YAML::Node &node, const YAML::Mark &fallback) {
  if (!node.IsDefined() || node.IsNull() || node.Mark().is_null()) return fallback;
  return node.Mark();
}

bool is_plain(const YAML::Node &scalar) {
  return scalar.Tag() == "?" || scalar.Tag().empty();
}

namespace {

// [-+]?[0-9]+, by hand: linear and without recursion, whatever the length (std::regex recurses
// per character and overflowed the stack on a 100,000-digit number).
bool is_integer(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool is_float(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  const auto digits = [&] {
    const size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  const size_t whole = digits();
  size_t fraction = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    fraction = digits();
    if (whole == 0 && fraction == 0) return false;
  } else if (whole == 0) {
    return false;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (digits() == 0) return false;
  }
  return i == s.size();
}

}  // namespace

void resolve_plain_scalar(const std::string &text, rapidjson::Value &out,
                          rapidjson::Document::AllocatorType &alloc) {
  if (text == "null" || text == "Null" || text == "NULL" || text == "~" || text.empty()) {
    out.SetNull();
  } else if (text == "true" || text == "True" || text == "TRUE") {
    out.SetBool(true);
  } else if (text == "false" || text == "False" || text == "FALSE") {
    out.SetBool(false);
  } else if (is_integer(text)) {
    errno = 0;
    char *end = nullptr;
    if (text[0] == '-') {
      const long long value = std::strtoll(text.c_str(), &end, 10);
      if (errno == 0) return out.SetInt64(value), void();
    } else {
      const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
      if (errno == 0) return out.SetUint64(value), void();
    }
    out.SetString(text.c_str(), static_cast<rapidjson::SizeType>(text.size()), alloc);
  } else if (is_float(text)) {
    out.SetDouble(std::strtod(text.c_str(), nullptr));
  } else {
    out.SetString(text.c_str(), static_cast<rapidjson::SizeType>(text.size()), alloc);
  }
}

bool yaml_to_json(const YAML::Node &node, const std::filesystem::path &base_dir,
                  rapidjson::Value &out, rapidjson::Document::AllocatorType &alloc,
                  const Report &report, Substitutions *substitutions) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      out.SetNull();
      return true;
    case YAML::NodeType::Scalar: {
      std::vector<std::string> errors;
      auto value = interpolate(node.Scalar(), base_dir, errors);
      for (auto &error : errors) report(node.Mark(), std::move(error));
      if (!value) return false;
      if (value->substituted && substitutions)
        substitutions->emplace_back(value->text, node.Scalar());
      if (is_plain(node))
        resolve_plain_scalar(value->text, out, alloc);
      else
        out.SetString(value->text.c_str(), static_cast<rapidjson::SizeType>(value->text.size()),
                      alloc);
      return true;
    }
    case YAML::NodeType::Sequence: {
      out.SetArray();
      bool ok = true;
      for (const auto &item : node) {
        rapidjson::Value converted;
        ok = yaml_to_json(item, base_dir, converted, alloc, report, substitutions) && ok;
        out.PushBack(converted, alloc);
      }
      return ok;
    }
    case YAML::NodeType::Map: {
      out.SetObject();
      bool ok = true;
      std::unordered_set<std::string> keys;  // HasMember is linear: quadratic on big mappings
      for (const auto &entry : node) {
        if (!entry.first.IsScalar()) {
          report(mark_of(entry.first, node.Mark()), "keys must be plain strings");
          ok = false;
          continue;
        }
        const std::string &key = entry.first.Scalar();
        if (!keys.insert(key).second) {
          report(entry.first.Mark(), "key \"" + key + "\" appears twice");
          ok = false;
          continue;
        }
        rapidjson::Value converted;
        ok = yaml_to_json(entry.second, base_dir, converted, alloc, report, substitutions) && ok;
        out.AddMember(rapidjson::Value(key.c_str(), alloc), converted, alloc);
      }
      return ok;
    }
  }
  return true;
}

std::optional<std::string> check_bounds(const YAML::Node &root, const YamlBounds &bounds,
                                        YAML::Mark &where) {
  // Iterative, with an explicit stack: a self-referring alias or deep nesting cannot take the
  // call stack, and every alias is counted as often as it is expanded.
  struct Frame {
    YAML::Node node;
    size_t depth;
  };
  std::vector<Frame> stack{{root, 0}};
  size_t visited = 0;
  while (!stack.empty()) {
    Frame frame = std::move(stack.back());
    stack.pop_back();
    if (++visited > bounds.max_nodes) {
      where = frame.node.Mark();
      return "the document expands to more than " + std::to_string(bounds.max_nodes) +
             " values (aliases expanding into aliases?); a configuration is far smaller";
    }
    if (frame.depth > bounds.max_depth) {
      where = frame.node.Mark();
      return "values nest more than " + std::to_string(bounds.max_depth) +
             " levels deep (an alias that refers to itself?)";
    }
    switch (frame.node.Type()) {
      case YAML::NodeType::Scalar:
        if (frame.node.Scalar().size() > bounds.max_scalar) {
          where = frame.node.Mark();
          return "a value is longer than " + std::to_string(bounds.max_scalar) + " characters";
        }
        break;
      case YAML::NodeType::Sequence:
        for (const auto &item : frame.node) stack.push_back({item, frame.depth + 1});
        break;
      case YAML::NodeType::Map:
        for (const auto &entry : frame.node) {
          stack.push_back({entry.first, frame.depth + 1});
          stack.push_back({entry.second, frame.depth + 1});
        }
        break;
      default:
        break;
    }
  }
  return std::nullopt;
}

std::string join(const std::vector<std::string> &items, std::string_view separator) {
  std::string out;
  for (const auto &item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string> &candidates) {
  // Close in spelling ("evry", "retires"), or a part of a longer name ("secret").
  const std::string *best = nullptr;
  size_t best_distance = std::string::npos;
  for (const auto &candidate : candidates) {
    const size_t distance = text::edit_distance(word, candidate, /*ignore_case=*/true);
    size_t prefix = 0;
    while (prefix < word.size() && prefix < candidate.size() && word[prefix] == candidate[prefix])
      ++prefix;
    const bool close = distance <= std::max<size_t>(2, word.size() / 3) ||
                       (prefix >= 3 && distance <= word.size() / 2);
    if (close && distance < best_distance) {
      best = &candidate;
      best_distance = distance;
    }
  }
  if (!best && word.size() >= 4)
    for (const auto &candidate : candidates)
      if (candidate.find(word) != std::string::npos) {
        best = &candidate;
        break;
      }
  return best ? " (did you mean \"" + *best + "\"?)" : "";
}

}  // namespace crmhost::config::detail
