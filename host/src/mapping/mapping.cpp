#include "mapping/mapping.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "util/json.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

namespace crmhost::mapping {

namespace {

using Value = rapidjson::Value;
using Alloc = rapidjson::Document::AllocatorType;

// ---------------------------------------------------------------------------------------------
// Paths: "address.city", "emails[0]", "CUSTOMFIELDS[FIELD_NAME=x].FIELD_VALUE"

// Where a key was found in the last record: records of one source mostly share their key order,
// so one comparison usually replaces a scan of every member. Relaxed, because a stale hint only
// costs that scan.
struct MemberHint {
  mutable std::atomic<uint32_t> at{0};
  MemberHint() = default;
  MemberHint(const MemberHint &o) : at(o.at.load(std::memory_order_relaxed)) {}
  MemberHint &operator=(const MemberHint &o) {
    at.store(o.at.load(std::memory_order_relaxed), std::memory_order_relaxed);
    return *this;
  }
};

struct PathStep {
  enum class Kind { key, index, select } kind = Kind::key;
  std::string key;    // key; select: the member compared
  size_t index = 0;   // index
  std::string match;  // select: the value it must have
  MemberHint hint;    // key
};
using Path = std::vector<PathStep>;

std::optional<Path> parse_path(std::string_view text, std::string &error) {
  Path path;
  size_t i = 0;
  auto fail = [&](const std::string &why) {
    error = "bad path \"" + std::string(text) + "\": " + why;
    return std::nullopt;
  };
  if (text.empty()) return fail("empty");
  while (i < text.size()) {
    size_t end = text.find_first_of(".[", i);
    if (end == std::string_view::npos) end = text.size();
    if (end > i) {
      path.push_back({PathStep::Kind::key, std::string(text.substr(i, end - i)), 0, {}, {}});
    } else if (text[i] != '[' || path.empty()) {
      return fail("empty segment");
    }
    i = end;
    while (i < text.size() && text[i] == '[') {
      const size_t close = text.find(']', i);
      if (close == std::string_view::npos) return fail("missing ]");
      const std::string_view inner = text.substr(i + 1, close - i - 1);
      const size_t eq = inner.find('=');
      if (eq != std::string_view::npos) {
        if (eq == 0) return fail("[key=value] needs a key");
        path.push_back({PathStep::Kind::select,
                        std::string(inner.substr(0, eq)),
                        0,
                        std::string(inner.substr(eq + 1)),
                        {}});
      } else {
        if (inner.empty() ||
            !std::all_of(inner.begin(), inner.end(), [](char c) { return c >= '0' && c <= '9'; }))
          return fail("[...] holds an index or key=value");
        path.push_back({PathStep::Kind::index,
                        {},
                        std::strtoul(std::string(inner).c_str(), nullptr, 10),
                        {},
                        {}});
      }
      i = close + 1;
    }
    if (i < text.size()) {
      if (text[i] != '.') return fail("expected . or [ after ]");
      ++i;
      if (i == text.size()) return fail("ends with .");
    }
  }
  return path;
}

std::string scalar_text(const Value &v) {
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsBool()) return v.GetBool() ? "true" : "false";
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  if (v.IsUint64()) return std::to_string(v.GetUint64());
  if (v.IsNumber()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v.GetDouble());
    // Shortest form that reads back the same.
    for (int precision = 1; precision <= 17; ++precision) {
      char shorter[64];
      std::snprintf(shorter, sizeof shorter, "%.*g", precision, v.GetDouble());
      if (std::strtod(shorter, nullptr) == v.GetDouble()) return shorter;
    }
    return buf;
  }
  if (v.IsNull()) return "null";
  return json::to_string(v);
}

const Value *resolve(const Value &root, const Path &path) {
  const Value *cur = &root;
  for (const auto &step : path) {
    switch (step.kind) {
      case PathStep::Kind::key: {
        if (!cur->IsObject()) return nullptr;
        const uint32_t hint = step.hint.at.load(std::memory_order_relaxed);
        if (hint < cur->MemberCount()) {
          const auto &member = *(cur->MemberBegin() + hint);
          if (member.name.GetStringLength() == step.key.size() &&
              std::memcmp(member.name.GetString(), step.key.data(), step.key.size()) == 0) {
            cur = &member.value;
            break;
          }
        }
        auto it = cur->FindMember(Value(rapidjson::StringRef(step.key.data(), step.key.size())));
        if (it == cur->MemberEnd()) return nullptr;
        step.hint.at.store(static_cast<uint32_t>(it - cur->MemberBegin()),
                           std::memory_order_relaxed);
        cur = &it->value;
        break;
      }
      case PathStep::Kind::index:
        if (!cur->IsArray() || step.index >= cur->Size()) return nullptr;
        cur = &(*cur)[static_cast<rapidjson::SizeType>(step.index)];
        break;
      case PathStep::Kind::select: {
        if (!cur->IsArray()) return nullptr;
        const Value *found = nullptr;
        for (const auto &item : cur->GetArray()) {
          if (!item.IsObject()) continue;
          auto it = item.FindMember(Value(rapidjson::StringRef(step.key.data(), step.key.size())));
          if (it != item.MemberEnd() && !it->value.IsObject() && !it->value.IsArray() &&
              scalar_text(it->value) == step.match) {
            found = &item;
            break;
          }
        }
        if (!found) return nullptr;
        cur = found;
        break;
      }
    }
  }
  return cur;
}

bool is_empty(const Value *v) {
  return !v || v->IsNull() || (v->IsString() && v->GetStringLength() == 0) ||
         (v->IsArray() && v->Empty());
}

// ---------------------------------------------------------------------------------------------
// Transforms

enum class Op {
  trim,
  lower,
  upper,
  title,
  multiply,
  divide,
  round,
  e164,
  datetime,
  date,
  split,
  join,
  to_bool,
  to_number,
  to_string,
  picklist
};

const std::map<std::string, Op, std::less<>> &ops() {
  static const std::map<std::string, Op, std::less<>> m = {
      {"trim", Op::trim},        {"lower", Op::lower},       {"upper", Op::upper},
      {"title", Op::title},      {"multiply", Op::multiply}, {"divide", Op::divide},
      {"round", Op::round},      {"e164", Op::e164},         {"datetime", Op::datetime},
      {"date", Op::date},        {"split", Op::split},       {"join", Op::join},
      {"bool", Op::to_bool},     {"number", Op::to_number},  {"string", Op::to_string},
      {"picklist", Op::picklist}};
  return m;
}

struct Picklist {
  enum class Unknown { error, pass, use_default } unknown = Unknown::error;
  std::map<std::string, rapidjson::Document, std::less<>> values;
  rapidjson::Document fallback;
};

struct Step {
  Op op = Op::trim;
  double number = 0;
  int digits = 0;
  std::string text;  // split/join separator, e164 country
  std::shared_ptr<Picklist> picklist;
};

// Calling codes for e164's country setting (ISO 3166 alpha-2).
const std::map<std::string, std::string, std::less<>> &calling_codes() {
  static const std::map<std::string, std::string, std::less<>> m = {
      {"US", "1"},   {"CA", "1"},  {"GB", "44"},  {"UK", "44"},  {"IE", "353"}, {"DE", "49"},
      {"AT", "43"},  {"CH", "41"}, {"FR", "33"},  {"BE", "32"},  {"NL", "31"},  {"LU", "352"},
      {"IT", "39"},  {"ES", "34"}, {"PT", "351"}, {"DK", "45"},  {"SE", "46"},  {"NO", "47"},
      {"FI", "358"}, {"PL", "48"}, {"CZ", "420"}, {"GR", "30"},  {"AU", "61"},  {"NZ", "64"},
      {"IN", "91"},  {"SG", "65"}, {"JP", "81"},  {"CN", "86"},  {"HK", "852"}, {"BR", "55"},
      {"MX", "52"},  {"AR", "54"}, {"ZA", "27"},  {"AE", "971"}, {"IL", "972"}, {"TR", "90"}};
  return m;
}

struct ApplyError {
  std::string message;
};

std::string quoted(const Value &v) {
  return v.IsString() ? json::quote(std::string_view(v.GetString(), v.GetStringLength()))
                      : scalar_text(v);
}

std::optional<double> as_number(const Value &v) {
  if (v.IsNumber()) return v.GetDouble();
  if (v.IsString()) {
    std::string_view s(v.GetString(), v.GetStringLength());
    const auto b = s.find_first_not_of(" \t");
    const auto e = s.find_last_not_of(" \t");
    if (b == std::string_view::npos) return std::nullopt;
    s = s.substr(b, e - b + 1);
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);  // strtod took it; from_chars does not
    double d = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
    if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(d)) return std::nullopt;
    return d;
  }
  return std::nullopt;
}

void set_number(Value &v, double d) {
  if (std::nearbyint(d) == d && std::fabs(d) < 9.0e15)
    v.SetInt64(static_cast<int64_t>(d));
  else
    v.SetDouble(d);
}

void set_string(Value &v, std::string_view s, Alloc &alloc) {
  // RapidJSON asserts on a null pointer even for an empty string.
  v.SetString(s.empty() ? "" : s.data(), static_cast<rapidjson::SizeType>(s.size()), alloc);
}

// ASCII only, on purpose: bytes of UTF-8 sequences pass unchanged whatever the locale.
char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}
char ascii_upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c;
}

std::string_view view(const Value &v) {
  return {v.GetString(), v.GetStringLength()};
}

std::optional<int64_t> parse_time(const Value &v) {
  constexpr double kMaxMs = 253402300799999.0;  // 9999-12-31T23:59:59.999Z
  if (v.IsNumber()) {
    const double d = v.GetDouble();
    if (!(d >= -kMaxMs && d <= kMaxMs)) return std::nullopt;
    return static_cast<int64_t>(d);
  }
  if (!v.IsString()) return std::nullopt;
  std::string_view s = view(v);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  if (s.empty()) return std::nullopt;
  // .NET / Insightly: /Date(1489116850787-0800)/ — the number is UTC ms; the offset only says
  // which zone the writer was in.
  if (s.starts_with("/Date(") && s.ends_with(")/")) {
    std::string_view inner = s.substr(6, s.size() - 8);
    size_t n = 0;
    if (!inner.empty() && inner[0] == '-') n = 1;
    while (n < inner.size() && inner[n] >= '0' && inner[n] <= '9') ++n;
    if (n == 0 || (n == 1 && inner[0] == '-')) return std::nullopt;
    if (n < inner.size()) {
      const std::string_view zone = inner.substr(n);
      if (zone.size() != 5 || (zone[0] != '+' && zone[0] != '-') ||
          !std::all_of(zone.begin() + 1, zone.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    }
    if (n > 16) return std::nullopt;
    const int64_t ms = std::strtoll(std::string(inner.substr(0, n)).c_str(), nullptr, 10);
    if (ms < -static_cast<int64_t>(kMaxMs) || ms > static_cast<int64_t>(kMaxMs))
      return std::nullopt;
    return ms;
  }
  if (std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (s.size() > 15) return std::nullopt;
    const int64_t ms = std::strtoll(std::string(s).c_str(), nullptr, 10);  // epoch ms
    if (ms > static_cast<int64_t>(kMaxMs)) return std::nullopt;
    return ms;
  }
  return timeutil::parse_iso8601_ms(s);
}

std::optional<std::string> to_e164(std::string_view text, const std::string &country) {
  std::string digits;
  bool plus = false;
  size_t i = 0;
  while (i < text.size() && text[i] == ' ') ++i;
  if (i < text.size() && text[i] == '+') {
    plus = true;
    ++i;
  }
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c >= '0' && c <= '9') {
      digits += c;
    } else if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/') {
      continue;
    } else if (c == 'x' || c == 'X' || c == '#' || c == ';' || c == ',' || c == 'e') {
      break;  // an extension: not part of the E.164 number
    } else {
      return std::nullopt;
    }
  }
  if (!plus && digits.starts_with("00")) {
    digits.erase(0, 2);
    plus = true;
  }
  if (!plus) {
    auto it = calling_codes().find(country);
    if (it == calling_codes().end()) return std::nullopt;
    const std::string &code = it->second;
    if (code == "1") {
      if (digits.size() == 11 && digits[0] == '1') digits.erase(0, 1);
      if (digits.size() != 10) return std::nullopt;
    } else if (!digits.empty() && digits[0] == '0') {
      digits.erase(0, 1);  // trunk prefix
    }
    digits = code + digits;
  }
  if (digits.size() < 8 || digits.size() > 15 || digits[0] == '0') return std::nullopt;
  return "+" + digits;
}

std::string transform_label(const Step &s) {
  for (const auto &[name, op] : ops())
    if (op == s.op) return name;
  return "?";
}

// Applies one step to `v` in place. Null passes through every step.
std::optional<std::string> apply_step(const Step &s, Value &v, Alloc &alloc);

std::optional<std::string> apply_elementwise(const Step &s, Value &v, Alloc &alloc) {
  for (auto &item : v.GetArray())
    if (auto e = apply_step(s, item, alloc)) return e;
  return std::nullopt;
}

std::optional<std::string> apply_step(const Step &s, Value &v, Alloc &alloc) {
  if (v.IsNull()) return std::nullopt;
  auto bad = [&](const std::string &what) {
    return std::optional<std::string>(quoted(v) + " " + what + " (" + transform_label(s) + ")");
  };
  switch (s.op) {
    case Op::trim:
    case Op::lower:
    case Op::upper:
    case Op::title: {
      if (v.IsArray()) return apply_elementwise(s, v, alloc);
      if (!v.IsString()) return std::nullopt;
      const std::string_view in = view(v);
      if (s.op == Op::trim) {
        const auto b = in.find_first_not_of(" \t\r\n");
        const auto e = in.find_last_not_of(" \t\r\n");
        if (b == 0 && e + 1 == in.size()) return std::nullopt;
        set_string(v, b == std::string_view::npos ? std::string_view("") : in.substr(b, e - b + 1),
                   alloc);
        return std::nullopt;
      }
      // Written straight into the record's pool: no heap allocation per value.
      char *t = static_cast<char *>(alloc.Malloc(in.size() + 1));
      std::memcpy(t, in.data(), in.size());
      t[in.size()] = '\0';
      const std::span<char> chars(t, in.size());
      if (s.op == Op::lower) {
        for (auto &c : chars) c = static_cast<char>(ascii_lower(c));
      } else if (s.op == Op::upper) {
        for (auto &c : chars) c = static_cast<char>(ascii_upper(c));
      } else {
        bool start = true;
        for (auto &c : chars) {
          const auto u = static_cast<unsigned char>(c);
          if (std::isalpha(u)) {
            c = start ? ascii_upper(c) : ascii_lower(c);
            start = false;
          } else {
            start = c == ' ' || c == '-' || c == '\t' || c == '\'' || c == '.';
            if (c == '\'') start = false;
          }
        }
      }
      v.SetString(rapidjson::StringRef(t, static_cast<rapidjson::SizeType>(in.size())));
      return std::nullopt;
    }
    case Op::multiply:
    case Op::divide:
    case Op::round:
    case Op::to_number: {
      auto d = as_number(v);
      if (!d) {
        if (s.op == Op::to_number && v.IsBool()) {
          v.SetInt(v.GetBool() ? 1 : 0);
          return std::nullopt;
        }
        return bad("is not a number");
      }
      double r = *d;
      if (s.op == Op::multiply) r *= s.number;
      if (s.op == Op::divide) r /= s.number;
      if (s.op == Op::round) {
        const double scale = std::pow(10.0, s.digits);
        r = std::round(r * scale) / scale;
      }
      if (!std::isfinite(r)) return bad("gives a number out of range");
      set_number(v, r);
      return std::nullopt;
    }
    case Op::e164: {
      if (v.IsNumber()) {
        const std::string t = scalar_text(v);
        set_string(v, t, alloc);
      }
      if (!v.IsString()) return bad("is not a phone number");
      if (v.GetStringLength() == 0) return std::nullopt;
      auto e = to_e164(view(v), s.text);
      if (!e) return bad("is not a phone number");
      set_string(v, *e, alloc);
      return std::nullopt;
    }
    case Op::datetime:
    case Op::date: {
      if (v.IsString() && v.GetStringLength() == 0) return std::nullopt;
      auto ms = parse_time(v);
      if (!ms) return bad("is not a date or time");
      std::string t = timeutil::format_iso8601_ms(*ms);
      if (s.op == Op::date) t.resize(10);
      set_string(v, t, alloc);
      return std::nullopt;
    }
    case Op::split: {
      if (v.IsArray()) return std::nullopt;
      if (!v.IsString()) return bad("is not text to split");
      const std::string t(view(v));
      Value out(rapidjson::kArrayType);
      size_t start = 0;
      while (start <= t.size()) {
        size_t end = t.find(s.text, start);
        if (end == std::string::npos) end = t.size();
        std::string part = t.substr(start, end - start);
        const auto b = part.find_first_not_of(" \t");
        const auto e = part.find_last_not_of(" \t");
        part = b == std::string::npos ? std::string() : part.substr(b, e - b + 1);
        if (!part.empty()) {
          Value item;
          set_string(item, part, alloc);
          out.PushBack(item, alloc);
        }
        start = end + s.text.size();
      }
      v = out;
      return std::nullopt;
    }
    case Op::join: {
      if (!v.IsArray()) return std::nullopt;
      std::string t;
      bool first = true;
      for (const auto &item : v.GetArray()) {
        if (item.IsNull()) continue;
        if (item.IsObject() || item.IsArray()) return bad("holds a value that is not text");
        if (!first) t += s.text;
        t += scalar_text(item);
        first = false;
      }
      set_string(v, t, alloc);
      return std::nullopt;
    }
    case Op::to_bool: {
      if (v.IsBool()) return std::nullopt;
      if (v.IsNumber()) {
        if (v.GetDouble() != 0 && v.GetDouble() != 1) return bad("is not a yes/no value");
        v.SetBool(v.GetDouble() != 0);
        return std::nullopt;
      }
      if (!v.IsString()) return bad("is not a yes/no value");
      std::string t(view(v));
      for (auto &c : t) c = static_cast<char>(ascii_lower(c));
      if (t == "true" || t == "yes" || t == "y" || t == "1" || t == "on") {
        v.SetBool(true);
      } else if (t == "false" || t == "no" || t == "n" || t == "0" || t == "off") {
        v.SetBool(false);
      } else if (t.empty()) {
        v.SetNull();
      } else {
        return bad("is not a yes/no value");
      }
      return std::nullopt;
    }
    case Op::to_string: {
      if (v.IsString()) return std::nullopt;
      if (v.IsObject() || v.IsArray()) return bad("is not a single value");
      const std::string t = scalar_text(v);
      set_string(v, t, alloc);
      return std::nullopt;
    }
    case Op::picklist: {
      if (v.IsArray()) return apply_elementwise(s, v, alloc);
      if (v.IsObject()) return bad("is not a picklist value");
      const Picklist &p = *s.picklist;
      const std::string key = scalar_text(v);
      auto it = p.values.find(key);
      if (it != p.values.end()) {
        v.CopyFrom(it->second, alloc);
        return std::nullopt;
      }
      if (p.unknown == Picklist::Unknown::pass) return std::nullopt;
      if (p.unknown == Picklist::Unknown::use_default) {
        v.CopyFrom(p.fallback, alloc);
        return std::nullopt;
      }
      return std::optional<std::string>("unknown picklist value " + quoted(v));
    }
  }
  return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Rules

struct Mapping::Rule {
  std::string target;
  std::vector<std::string> target_path;
  std::vector<Path> from;
  std::string from_text;  // "a|b|c", for messages
  std::optional<rapidjson::Document> constant;
  std::vector<Step> steps;
  std::optional<rapidjson::Document> fallback;  // default
  bool required = false;
  // No other rule's target is this one, below it or above it: the value is appended to the
  // output without looking for a member of the same name.
  bool sole_target = false;
};

Mapping::Mapping() = default;
Mapping::~Mapping() = default;
Mapping::Mapping(Mapping &&) noexcept = default;
Mapping &Mapping::operator=(Mapping &&) noexcept = default;

const std::vector<std::string> &transform_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto &[name, op] : ops()) out.push_back(name);
    return out;
  }();
  return names;
}

namespace {

struct RuleCompiler {
  const Options &options;
  std::vector<CompileProblem> &problems;
  std::vector<std::string> base;  // path of the rule

  void problem(std::vector<std::string> rel, std::string message) {
    std::vector<std::string> path = base;
    path.insert(path.end(), rel.begin(), rel.end());
    problems.push_back({std::move(path), std::move(message)});
  }

  void from(const Value &v, Mapping::Rule &rule, std::vector<std::string> at) {
    std::vector<std::string> alternates;
    auto add = [&](std::string_view text, const std::vector<std::string> &where) {
      size_t start = 0;
      while (true) {
        size_t bar = text.find('|', start);
        const std::string_view part = text.substr(
            start, bar == std::string_view::npos ? std::string_view::npos : bar - start);
        std::string error;
        if (auto path = parse_path(part, error)) {
          rule.from.push_back(std::move(*path));
          alternates.emplace_back(part);
        } else {
          problem(where, error);
        }
        if (bar == std::string_view::npos) break;
        start = bar + 1;
      }
    };
    if (v.IsString()) {
      add(view(v), at);
    } else if (v.IsArray() && !v.Empty()) {
      for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
        auto where = at;
        where.push_back(std::to_string(i));
        if (v[i].IsString())
          add(view(v[i]), where);
        else
          problem(where, "a source field name must be a string");
      }
    } else {
      problem(at, "from must be a field name or a list of alternates");
    }
    for (size_t i = 0; i < alternates.size(); ++i) rule.from_text += (i ? "|" : "") + alternates[i];
  }

  std::shared_ptr<Picklist> picklist(const Value &v, const std::vector<std::string> &at) {
    auto p = std::make_shared<Picklist>();
    if (!v.IsObject()) {
      problem(at, "a picklist must be a mapping of values (or values: and unknown:)");
      return p;
    }
    const Value *values = &v;
    if (v.HasMember("values")) {
      values = &v["values"];
      for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
        const std::string key(view(it->name));
        auto where = at;
        where.push_back(key);
        if (key == "values") continue;
        if (key != "unknown") {
          problem(where, "unknown picklist setting \"" + key + "\"; expected values or unknown");
          continue;
        }
        const Value &u = it->value;
        if (u.IsString() && view(u) == "error") {
          p->unknown = Picklist::Unknown::error;
        } else if (u.IsString() && view(u) == "pass") {
          p->unknown = Picklist::Unknown::pass;
        } else if (u.IsObject() && u.MemberCount() == 1 && u.HasMember("default")) {
          p->unknown = Picklist::Unknown::use_default;
          p->fallback.CopyFrom(u["default"], p->fallback.GetAllocator());
        } else {
          problem(where, "unknown must be error, pass or {default: VALUE}");
        }
      }
      if (!values->IsObject()) {
        auto where = at;
        where.push_back("values");
        problem(where, "picklist values must be a mapping of source value to target value");
        return p;
      }
    }
    for (auto it = values->MemberBegin(); it != values->MemberEnd(); ++it) {
      rapidjson::Document d;
      d.CopyFrom(it->value, d.GetAllocator());
      p->values.emplace(std::string(view(it->name)), std::move(d));
    }
    return p;
  }

  void step(const Value &v, Mapping::Rule &rule, const std::vector<std::string> &at) {
    std::string name;
    const Value *arg = nullptr;
    if (v.IsString()) {
      name = std::string(view(v));
      if (name.starts_with("*") || name.starts_with("/")) {  // compact *100, /100
        Value number;
        number.SetString(rapidjson::StringRef(name.c_str() + 1));
        auto d = as_number(number);
        if (!d || (name[0] == '/' && *d == 0)) {
          problem(at, "\"" + name + "\" needs a non-zero number after " + name.substr(0, 1));
          return;
        }
        rule.steps.push_back({name[0] == '*' ? Op::multiply : Op::divide, *d, 0, {}, {}});
        return;
      }
    } else if (v.IsObject() && v.MemberCount() == 1) {
      name = std::string(view(v.MemberBegin()->name));
      arg = &v.MemberBegin()->value;
    } else {
      problem(at, "a transform is a name or a single-key mapping such as {multiply: 100}");
      return;
    }
    auto it = ops().find(name);
    if (it == ops().end()) {
      std::string suggestion;
      size_t best = 3;
      for (const auto &[known, op] : ops()) {
        const size_t d = text::edit_distance(name, known);
        if (d < best) {
          best = d;
          suggestion = known;
        }
      }
      problem(at, "unknown transform \"" + name + "\"" +
                      (suggestion.empty() ? "; known: " +
                                                [] {
                                                  std::string all;
                                                  for (const auto &n : transform_names())
                                                    all += (all.empty() ? "" : ", ") + n;
                                                  return all;
                                                }()
                                          : " (did you mean \"" + suggestion + "\"?)"));
      return;
    }
    Step s;
    s.op = it->second;
    auto need_arg = [&](const char *what) {
      if (!arg) problem(at, name + " needs " + what + ", e.g. {" + name + ": ...}");
      return arg != nullptr;
    };
    switch (s.op) {
      case Op::multiply:
      case Op::divide: {
        if (!need_arg("a number")) return;
        auto d = as_number(*arg);
        if (!d || (s.op == Op::divide && *d == 0)) {
          problem(at, name + " needs a " + (s.op == Op::divide ? "non-zero " : "") + "number");
          return;
        }
        s.number = *d;
        break;
      }
      case Op::round:
        if (arg) {
          if (!arg->IsInt() || arg->GetInt() < 0 || arg->GetInt() > 10) {
            problem(at, "round needs a number of decimals from 0 to 10");
            return;
          }
          s.digits = arg->GetInt();
        }
        break;
      case Op::e164:
        s.text = options.default_country;
        if (!arg && !calling_codes().count(s.text)) {
          problem(at, "e164 without a country needs a known default_country, not " +
                          json::quote(s.text));
          return;
        }
        if (arg) {
          if (!arg->IsString() || !calling_codes().count(view(*arg))) {
            problem(at, "e164 needs a known ISO country code such as US, GB or DE");
            return;
          }
          s.text = std::string(view(*arg));
        }
        break;
      case Op::split:
      case Op::join:
        s.text = ";";
        if (arg) {
          if (!arg->IsString() || arg->GetStringLength() == 0) {
            problem(at, name + " needs a separator such as \";\" or \",\"");
            return;
          }
          s.text = std::string(view(*arg));
        }
        break;
      case Op::picklist:
        if (!need_arg("a picklist")) return;
        s.picklist = picklist(*arg, at);
        break;
      default:
        if (arg && !arg->IsNull()) {
          problem(at, name + " takes no argument");
          return;
        }
    }
    rule.steps.push_back(std::move(s));
  }

  std::unique_ptr<Mapping::Rule> rule(const std::string &target, const Value &v) {
    auto r = std::make_unique<Mapping::Rule>();
    r->target = target;
    std::string error;
    auto target_path = parse_path(target, error);
    if (!target_path ||
        std::any_of(target_path->begin(), target_path->end(),
                    [](const PathStep &s) { return s.kind != PathStep::Kind::key; })) {
      problem({}, "a target field is a name or a dotted path such as address.city");
    } else {
      for (const auto &s : *target_path) r->target_path.push_back(s.key);
    }
    if (v.IsString()) {
      from(v, *r, {});
      return r;
    }
    if (!v.IsObject()) {
      problem({},
              "a field rule is a source field (\"a|b\") or a mapping with from, const, "
              "transform, picklist, default, required");
      return r;
    }
    static const std::vector<std::string> keys = {"from",     "const",   "transform",
                                                  "picklist", "default", "required"};
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      const std::string key(view(it->name));
      if (std::find(keys.begin(), keys.end(), key) == keys.end())
        problem({key}, "unknown rule setting \"" + key +
                           "\"; expected from, const, transform, picklist, default or required");
    }
    if (v.HasMember("from")) from(v["from"], *r, {"from"});
    if (v.HasMember("const")) {
      if (v.HasMember("from")) problem({"const"}, "a rule has either from or const, not both");
      r->constant.emplace();
      r->constant->CopyFrom(v["const"], r->constant->GetAllocator());
    }
    if (!v.HasMember("from") && !v.HasMember("const"))
      from(Value(rapidjson::StringRef(target.c_str())), *r, {});
    if (v.HasMember("transform")) {
      const Value &t = v["transform"];
      if (t.IsArray()) {
        for (rapidjson::SizeType i = 0; i < t.Size(); ++i)
          step(t[i], *r, {"transform", std::to_string(i)});
      } else {
        step(t, *r, {"transform"});
      }
    }
    if (v.HasMember("picklist")) {
      Step s;
      s.op = Op::picklist;
      s.picklist = picklist(v["picklist"], {"picklist"});
      r->steps.push_back(std::move(s));
    }
    if (v.HasMember("default")) {
      r->fallback.emplace();
      r->fallback->CopyFrom(v["default"], r->fallback->GetAllocator());
    }
    if (v.HasMember("required")) {
      if (!v["required"].IsBool())
        problem({"required"}, "required must be true or false");
      else
        r->required = v["required"].GetBool();
    }
    return r;
  }
};

}  // namespace

Mapping Mapping::compile(const rapidjson::Value &fields, const Options &options,
                         std::vector<CompileProblem> &problems) {
  Mapping m;
  m.options_ = options;
  if (!fields.IsObject()) {
    problems.push_back({{}, "fields must be a mapping of target fields to rules"});
    return m;
  }
  for (auto it = fields.MemberBegin(); it != fields.MemberEnd(); ++it) {
    const std::string target(view(it->name));
    RuleCompiler c{options, problems, {target}};
    auto rule = c.rule(target, it->value);
    for (const auto &path : rule->from)
      if (!path.empty() &&
          std::find(m.read_keys_.begin(), m.read_keys_.end(), path[0].key) == m.read_keys_.end())
        m.read_keys_.push_back(path[0].key);
    m.rules_.push_back(std::move(rule));
  }
  for (auto &rule : m.rules_) {
    const auto &mine = rule->target_path;
    rule->sole_target =
        mine.size() == 1 && std::none_of(m.rules_.begin(), m.rules_.end(), [&](const auto &other) {
          return other.get() != rule.get() && !other->target_path.empty() &&
                 other->target_path[0] == mine[0];
        });
  }
  return m;
}

Mapping Mapping::compile(std::string_view fields_json, const Options &options,
                         std::vector<CompileProblem> &problems) {
  rapidjson::Document d;
  if (auto error = json::try_parse(fields_json, d, "the map fields")) {
    problems.push_back({{}, *error});
    return Mapping();
  }
  return compile(d, options, problems);
}

std::optional<std::string> Mapping::apply(const rapidjson::Value &record, rapidjson::Value &out,
                                          rapidjson::Document::AllocatorType &alloc) const {
  if (!record.IsObject()) return std::string("the record is not a JSON object");
  out.SetObject();
  for (const auto &rule_ptr : rules_) {
    const Rule &rule = *rule_ptr;
    const Value *source = nullptr;
    for (const auto &path : rule.from) {
      const Value *v = resolve(record, path);
      if (!is_empty(v)) {
        source = v;
        break;
      }
    }
    Value value;
    if (source && source->IsString())  // shares the record's text; steps replace, never edit it
      value.SetString(rapidjson::StringRef(source->GetString(), source->GetStringLength()));
    else if (source)
      value.CopyFrom(*source, alloc);
    else if (rule.constant)
      value.CopyFrom(*rule.constant, alloc);
    for (const auto &s : rule.steps) {
      if (auto error = apply_step(s, value, alloc))
        return "field " + json::quote(rule.target) + ": " + *error;
    }
    if (is_empty(&value) && rule.fallback) value.CopyFrom(*rule.fallback, alloc);
    if (is_empty(&value)) {
      if (rule.required)
        return "field " + json::quote(rule.target) + ": required, but " +
               (rule.from_text.empty() ? std::string("it has no value")
                                       : json::quote(rule.from_text) + " has no value");
      if (value.IsNull()) continue;  // absent at the source: leave the target's value alone
    }
    // Place at the target path, creating objects on the way. Names are references to the rule's
    // strings: the output is serialised before this Mapping can go away.
    if (rule.sole_target) {
      const std::string &name = rule.target_path[0];
      out.AddMember(Value(rapidjson::StringRef(name.data(), name.size())), value, alloc);
      continue;
    }
    Value *cur = &out;
    for (size_t i = 0; i + 1 < rule.target_path.size(); ++i) {
      const std::string &k = rule.target_path[i];
      auto it = cur->FindMember(Value(rapidjson::StringRef(k.data(), k.size())));
      if (it == cur->MemberEnd()) {
        cur->AddMember(Value(rapidjson::StringRef(k.data(), k.size())),
                       Value(rapidjson::kObjectType), alloc);
        cur = &(cur->MemberEnd() - 1)->value;
      } else {
        if (!it->value.IsObject()) it->value.SetObject();
        cur = &it->value;
      }
    }
    if (rule.target_path.empty()) continue;
    const std::string &leaf = rule.target_path.back();
    auto it = cur->FindMember(Value(rapidjson::StringRef(leaf.data(), leaf.size())));
    if (it != cur->MemberEnd())
      it->value = value;
    else
      cur->AddMember(Value(rapidjson::StringRef(leaf.data(), leaf.size())), value, alloc);
  }
  if (options_.copy_unmapped) {
    for (auto it = record.MemberBegin(); it != record.MemberEnd(); ++it) {
      const std::string_view key = view(it->name);
      if (std::find(read_keys_.begin(), read_keys_.end(), key) != read_keys_.end()) continue;
      if (out.HasMember(it->name)) continue;
      out.AddMember(Value(it->name, alloc), Value(it->value, alloc), alloc);
    }
  }
  return std::nullopt;
}

Result Mapping::apply(std::string_view record_json) const {
  Result result;
  // Parsed in place from a per-thread copy: strings are not copied again, and the pool's first
  // chunk is reused rather than allocated per record.
  thread_local std::string text;
  thread_local char pool[16 * 1024];
  text.assign(record_json.data(), record_json.size());
  rapidjson::MemoryPoolAllocator<> allocator(pool, sizeof pool);
  rapidjson::Document doc(&allocator);
  doc.ParseInsitu(text.data());
  if (doc.HasParseError()) {
    result.error = "the record is not valid JSON";
    return result;
  }
  Value out;
  if (auto error = apply(doc, out, doc.GetAllocator())) {
    result.error = std::move(*error);
    return result;
  }
  result.json.reserve(record_json.size());
  json::append_compact(out, result.json);
  result.ok = true;
  return result;
}

std::optional<std::string> find_preset(const std::string &name,
                                       const std::vector<std::string> &dirs) {
  const auto slash = name.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == name.size() ||
      name.find('/', slash + 1) != std::string::npos || name.find("..") != std::string::npos)
    return std::nullopt;
  for (const auto &dir : dirs) {
    for (const char *ext : {".yaml", ".yml"}) {
      std::filesystem::path p =
          std::filesystem::path(dir) / name.substr(0, slash) / (name.substr(slash + 1) + ext);
      std::error_code ec;
      if (std::filesystem::is_regular_file(p, ec)) return p.string();
    }
  }
  return std::nullopt;
}

std::string merge_fields(std::string_view base_json, std::string_view overrides_json) {
  rapidjson::Document base = json::parse(base_json, "the preset fields");
  rapidjson::Document over = json::parse(overrides_json, "the map fields");
  if (!base.IsObject()) base.SetObject();
  if (over.IsObject()) {
    for (auto it = over.MemberBegin(); it != over.MemberEnd(); ++it) {
      base.RemoveMember(it->name);
      if (!it->value.IsNull())
        base.AddMember(Value(it->name, base.GetAllocator()), Value(it->value, base.GetAllocator()),
                       base.GetAllocator());
    }
  }
  return json::to_string(base);
}

}  // namespace crmhost::mapping
