#include "common.hpp"

#include <cctype>
#include <charconv>
#include <cstdio>

#include "crmhost/plugin.hpp"

namespace crmhost::hubspot {
namespace {

const ObjectInfo kObjects[] = {
    {"contact", "contacts", "lastmodifieddate"},
    {"company", "companies", "hs_lastmodifieddate"},
    {"deal", "deals", "hs_lastmodifieddate"},
};

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

std::optional<int64_t> to_int(std::string_view s) {
  int64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

const ObjectInfo *find_object(std::string_view name) {
  for (const auto &o : kObjects)
    if (name == o.name || name == o.path) return &o;
  if (name == "0-1") return &kObjects[0];
  if (name == "0-2") return &kObjects[1];
  if (name == "0-3") return &kObjects[2];
  return nullptr;
}

std::optional<int64_t> parse_time_ms(std::string_view t) {
  if (all_digits(t)) return to_int(t);
  // YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM]
  if (t.size() < 19 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != ' ') ||
      t[13] != ':' || t[16] != ':')
    return std::nullopt;
  auto num = [&](size_t pos, size_t len) { return to_int(t.substr(pos, len)); };
  auto y = num(0, 4), mo = num(5, 2), d = num(8, 2), h = num(11, 2), mi = num(14, 2),
       s = num(17, 2);
  if (!y || !mo || !d || !h || !mi || !s || *mo < 1 || *mo > 12 || *d < 1 || *d > 31 || *h > 23 ||
      *mi > 59 || *s > 60)
    return std::nullopt;
  size_t pos = 19;
  int64_t millis = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < t.size() && std::isdigit(static_cast<unsigned char>(t[pos]))) {
      if (digits < 3) millis = millis * 10 + (t[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 3; ++i) millis *= 10;
  }
  int64_t offset_ms = 0;
  if (pos < t.size()) {
    if (t[pos] == 'Z' && pos + 1 == t.size()) {
      // UTC
    } else if ((t[pos] == '+' || t[pos] == '-') && (t.size() - pos == 6 || t.size() - pos == 5)) {
      const bool colon = t.size() - pos == 6;
      auto oh = num(pos + 1, 2), om = num(pos + (colon ? 4 : 3), 2);
      if (!oh || !om || (colon && t[pos + 3] != ':')) return std::nullopt;
      offset_ms = (*oh * 60 + *om) * 60000 * (t[pos] == '+' ? 1 : -1);
    } else {
      return std::nullopt;
    }
  }
  const int64_t days =
      sdk::days_from_civil(*y, static_cast<unsigned>(*mo), static_cast<unsigned>(*d));
  return ((days * 24 + *h) * 60 + *mi) * 60000 + *s * 1000 + millis - offset_ms;
}

std::string format_iso_ms(int64_t unix_ms) {
  return sdk::format_utc(unix_ms);
}

int compare_ids(std::string_view a, std::string_view b) {
  if (all_digits(a) && all_digits(b)) {
    while (a.size() > 1 && a.front() == '0') a.remove_prefix(1);
    while (b.size() > 1 && b.front() == '0') b.remove_prefix(1);
    if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  }
  const int c = a.compare(b);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

std::string encode_cursor(const Cursor &cursor) {
  return "v1:" + std::to_string(cursor.modified_ms) + ":" + cursor.id;
}

Cursor decode_cursor(std::string_view text) {
  if (text.substr(0, 3) == "v1:") {
    const std::string_view rest = text.substr(3);
    const auto colon = rest.find(':');
    if (colon != std::string_view::npos)
      if (auto ms = to_int(rest.substr(0, colon)); ms && *ms >= 0)
        return {*ms, std::string(rest.substr(colon + 1))};
  } else if (auto ms = parse_time_ms(text); ms && *ms >= 0) {
    return {*ms, ""};
  }
  throw sdk::Error(CRM_ERR_INVALID_INPUT,
                   "poll cursor \"" + std::string(text.substr(0, 64)) +
                       "\" is not a hubspot cursor (v1:<ms>:<id>, epoch ms or ISO 8601 time)");
}

std::string form_encode(std::string_view value) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xF]);
    }
  }
  return out;
}

std::string too_deep(int http_status) {
  return std::to_string(http_status) + " with JSON nested deeper than " +
         std::to_string(sdk::kMaxJsonDepth) + " levels";
}

}  // namespace crmhost::hubspot
