// CRM search of the HubSpot emulator: filter groups (OR of groups, AND of filters), the
// operators of the fact sheet, sorts, offset paging, the 10,000-result ceiling, and only the
// records indexed so far.
#include <algorithm>

#include "sandbox/hubspot_internal.hpp"

namespace crmsandbox {

namespace {

constexpr int64_t kMaxSearchLimit = 200;       // (doc)
constexpr int64_t kMaxSearchResults = 10'000;  // (2nd) beyond: 400
constexpr size_t kMaxGroups = 5;               // (guess) HubSpot's documented 5 x 6, 18 in all
constexpr size_t kMaxFiltersPerGroup = 6;
constexpr size_t kMaxFilters = 18;

struct Filter {
  std::string property;
  std::string op;
  std::string value;
  std::string high_value;
  std::vector<std::string> values;
};

struct Sort {
  std::string property;
  bool descending = false;
};

std::string scalar(const rapidjson::Value &value) {
  if (value.IsString()) return {value.GetString(), value.GetStringLength()};
  if (value.IsInt64()) return std::to_string(value.GetInt64());
  if (value.IsNumber()) return std::to_string(value.GetDouble());
  if (value.IsBool()) return value.GetBool() ? "true" : "false";
  return {};
}

std::string member(const rapidjson::Value &object, const char *key) {
  const auto it = object.FindMember(key);
  return it == object.MemberEnd() ? std::string() : scalar(it->value);
}

// Numbers and dates (epoch ms or ISO 8601) compare as numbers, the rest as case-insensitive text.
std::optional<double> as_number(const std::string &text) {
  if (auto number = parse_number(text)) return number;
  if (auto time = parse_time_ms(text)) return static_cast<double>(*time);
  return std::nullopt;
}

int compare(const std::string &a, const std::string &b) {
  const auto x = as_number(a), y = as_number(b);
  if (x && y) return *x < *y ? -1 : *x > *y ? 1 : 0;
  const auto la = lowercase(a), lb = lowercase(b);
  return la < lb ? -1 : la > lb ? 1 : 0;
}

// (guess) IN and NOT_IN hold a string property's value, lower-cased, against the values as
// given: HubSpot's search guide asks for lower-case values there (the fact sheet is silent), so
// "Ann@Example.com" finds nothing. Numbers and dates still compare as numbers.
bool in_equals(const std::string &value, const std::string &wanted) {
  const auto x = as_number(value), y = as_number(wanted);
  if (x && y) return *x == *y;
  return lowercase(value) == wanted;
}

bool is_word(char c) {
  return std::isalnum(static_cast<unsigned char>(c));
}

bool glob(std::string_view pattern, std::string_view text) {
  if (pattern.empty()) return text.empty();
  if (pattern.front() == '*')
    return glob(pattern.substr(1), text) || (!text.empty() && glob(pattern, text.substr(1)));
  return !text.empty() && pattern.front() == text.front() &&
         glob(pattern.substr(1), text.substr(1));
}

// (guess) HubSpot tokenises on word boundaries; a '*' in the token is a wildcard over the value.
bool contains_token(const std::string &value, const std::string &token) {
  const auto v = lowercase(value), t = lowercase(token);
  if (t.empty()) return false;
  if (t.find('*') != std::string::npos) return glob(t, v);
  for (size_t at = v.find(t); at != std::string::npos; at = v.find(t, at + 1)) {
    const bool starts = at == 0 || !is_word(v[at - 1]) || !is_word(t.front());
    const bool ends = at + t.size() == v.size() || !is_word(v[at + t.size()]) || !is_word(t.back());
    if (starts && ends) return true;
  }
  return false;
}

bool matches(const Filter &f, const Properties &properties) {
  const auto it = properties.find(f.property);
  const bool has = it != properties.end() && !it->second.empty();
  const std::string value = has ? it->second : std::string();
  const auto in = [&] {
    return std::any_of(f.values.begin(), f.values.end(),
                       [&](const auto &v) { return in_equals(value, v); });
  };
  if (f.op == "HAS_PROPERTY") return has;
  if (f.op == "NOT_HAS_PROPERTY") return !has;
  if (f.op == "EQ") return has && compare(value, f.value) == 0;
  if (f.op == "NEQ") return !has || compare(value, f.value) != 0;  // (guess) unset is "not equal"
  if (f.op == "LT") return has && compare(value, f.value) < 0;
  if (f.op == "LTE") return has && compare(value, f.value) <= 0;
  if (f.op == "GT") return has && compare(value, f.value) > 0;
  if (f.op == "GTE") return has && compare(value, f.value) >= 0;
  if (f.op == "BETWEEN")
    return has && compare(value, f.value) >= 0 && compare(value, f.high_value) <= 0;
  if (f.op == "IN") return has && in();
  if (f.op == "NOT_IN") return !has || !in();
  if (f.op == "CONTAINS_TOKEN") return has && contains_token(value, f.value);
  if (f.op == "NOT_CONTAINS_TOKEN") return !has || !contains_token(value, f.value);
  return false;
}

ApiError invalid(std::string message) {
  ApiError error;
  error.message = std::move(message);
  return error;
}

struct Query {
  std::vector<std::vector<Filter>> groups;
  std::vector<Sort> sorts;
  std::string text;  // `query`: free text over every value (guess: HubSpot's default fields)
  Selection selection;
  int64_t limit = 10;
  int64_t after = 0;
};

std::optional<ApiError> parse(const rapidjson::Value &body, Query &q) {
  static const std::vector<std::string> operators = {"EQ",
                                                     "NEQ",
                                                     "LT",
                                                     "LTE",
                                                     "GT",
                                                     "GTE",
                                                     "BETWEEN",
                                                     "IN",
                                                     "NOT_IN",
                                                     "HAS_PROPERTY",
                                                     "NOT_HAS_PROPERTY",
                                                     "CONTAINS_TOKEN",
                                                     "NOT_CONTAINS_TOKEN"};
  size_t filter_count = 0;
  if (const auto groups = body.FindMember("filterGroups"); groups != body.MemberEnd()) {
    if (!groups->value.IsArray()) return invalid("filterGroups must be an array");
    if (groups->value.Size() > kMaxGroups) return invalid("Too many filterGroups (at most 5)");
    for (const auto &group : groups->value.GetArray()) {
      if (!group.IsObject() || !group.HasMember("filters") || !group["filters"].IsArray())
        return invalid("each filter group needs a filters array");
      const auto &filters = group["filters"];
      if (filters.Size() > kMaxFiltersPerGroup)
        return invalid("Too many filters in a group (at most 6)");
      auto &out = q.groups.emplace_back();
      for (const auto &f : filters.GetArray()) {
        if (!f.IsObject()) return invalid("each filter must be an object");
        Filter filter{member(f, "propertyName"),
                      member(f, "operator"),
                      member(f, "value"),
                      member(f, "highValue"),
                      {}};
        if (filter.op.empty()) filter.op = "EQ";  // (guess) HubSpot's default operator
        if (std::find(operators.begin(), operators.end(), filter.op) == operators.end())
          return invalid("Unknown operator " + filter.op);
        if (filter.property.empty()) return invalid("each filter needs a propertyName");
        if (const auto values = f.FindMember("values");
            values != f.MemberEnd() && values->value.IsArray())
          for (const auto &v : values->value.GetArray()) filter.values.push_back(scalar(v));
        out.push_back(std::move(filter));
        ++filter_count;
      }
    }
  }
  if (filter_count > kMaxFilters) return invalid("Too many filters (at most 18)");
  if (const auto sorts = body.FindMember("sorts");
      sorts != body.MemberEnd() && sorts->value.IsArray()) {
    for (const auto &s : sorts->value.GetArray()) {
      if (s.IsString()) {
        q.sorts.push_back({s.GetString(), false});
      } else if (s.IsObject()) {
        q.sorts.push_back({member(s, "propertyName"), member(s, "direction") == "DESCENDING"});
      }
    }
  }
  q.text = member(body, "query");
  if (const auto properties = body.FindMember("properties");
      properties != body.MemberEnd() && properties->value.IsArray()) {
    q.selection.requested.emplace();
    for (const auto &p : properties->value.GetArray())
      if (p.IsString()) q.selection.requested->emplace_back(p.GetString());
  }
  if (const auto limit = body.FindMember("limit"); limit != body.MemberEnd()) {
    if (!limit->value.IsInt64() || limit->value.GetInt64() < 0 ||
        limit->value.GetInt64() > kMaxSearchLimit)
      return invalid("limit must be an integer from 0 to 200");  // (guess) the wording
    q.limit = limit->value.GetInt64();
  }
  if (const auto after = member(body, "after"); !after.empty()) {
    const auto offset = parse_number(after);
    if (!offset || *offset < 0 || *offset != static_cast<double>(static_cast<int64_t>(*offset)))
      return invalid("after must be a non-negative integer offset");  // (guess)
    q.after = static_cast<int64_t>(*offset);
  }
  return std::nullopt;
}

}  // namespace

HttpResponse HubSpotSandbox::Impl::search(Portal &p, const ObjectType &type,
                                          const HttpRequest &request) {
  rapidjson::Document body;
  body.Parse(request.body.data(), request.body.size());
  if (body.HasParseError() || !body.IsObject())
    return error_response(invalid("Invalid input JSON: expected an object"));
  Query q;
  if (auto error = parse(body, q)) return error_response(*error);
  if (q.after + q.limit > kMaxSearchResults)
    return error_response(invalid(  // (guess) the wording; the 400 is (2nd)
        "Search results are limited to 10000 per query: after (" + std::to_string(q.after) +
        ") plus limit (" + std::to_string(q.limit) + ") goes beyond it. Narrow the filters."));

  const int64_t now = now_ms();
  std::vector<std::pair<int64_t, const Snapshot *>> hits;
  for (auto &[id, record] : p.tables[type.plural].records) {
    const auto *snapshot = searchable(record, now);
    if (!snapshot) continue;
    const auto &props = snapshot->properties;
    const bool filtered =
        q.groups.empty() || std::any_of(q.groups.begin(), q.groups.end(), [&](const auto &group) {
          return std::all_of(group.begin(), group.end(),
                             [&](const auto &f) { return matches(f, props); });
        });
    if (!filtered) continue;
    if (!q.text.empty() && std::none_of(props.begin(), props.end(), [&](const auto &kv) {
          return contains_token(kv.second, q.text);
        }))
      continue;
    hits.emplace_back(id, snapshot);
  }
  // Ties (and no sort) fall back to the id, so paging is stable. (guess) unset values sort last.
  std::stable_sort(hits.begin(), hits.end(), [&](const auto &a, const auto &b) {
    for (const auto &sort : q.sorts) {
      const auto x = a.second->properties.find(sort.property);
      const auto y = b.second->properties.find(sort.property);
      const bool hx = x != a.second->properties.end(), hy = y != b.second->properties.end();
      if (hx != hy) return hx;
      if (!hx) continue;
      const int c = compare(x->second, y->second);
      if (c != 0) return sort.descending ? c > 0 : c < 0;
    }
    return a.first < b.first;
  });

  const int64_t total = static_cast<int64_t>(hits.size());
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("total");
  w.Int64(total);
  w.Key("results");
  w.StartArray();
  for (int64_t i = q.after; i < std::min(total, q.after + q.limit); ++i) {
    const auto &[id, snapshot] = hits[static_cast<size_t>(i)];
    write_record(w, type, id, snapshot->properties, snapshot->created_ms, snapshot->updated_ms,
                 false, 0, q.selection);
  }
  w.EndArray();
  if (q.after + q.limit < total) {
    w.Key("paging");
    w.StartObject();
    w.Key("next");
    w.StartObject();
    w.Key("after");
    w.String(std::to_string(q.after + q.limit));
    w.EndObject();
    w.EndObject();
  }
  w.EndObject();
  return json_response(200, {buffer.GetString(), buffer.GetSize()});
}

}  // namespace crmsandbox
