#include "common.hpp"

#include <cctype>
#include <charconv>
#include <cstdio>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "crmhost/plugin.hpp"

namespace crmhost::zoho {
namespace {

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

struct ParsedTime {
  int64_t unix_ms = 0;
  bool has_zone = false;  // `Z` or an offset was given
};

// YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM|+HHMM]
std::optional<ParsedTime> parse_iso(std::string_view t) {
  if (t.size() < 19 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != ' ') ||
      t[13] != ':' || t[16] != ':')
    return std::nullopt;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18})
    if (!std::isdigit(static_cast<unsigned char>(t[i]))) return std::nullopt;
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
  ParsedTime out;
  int64_t offset_ms = 0;
  if (pos < t.size()) {
    out.has_zone = true;
    if (t[pos] == 'Z' && pos + 1 == t.size()) {
      // UTC
    } else if ((t[pos] == '+' || t[pos] == '-') && (t.size() - pos == 6 || t.size() - pos == 5)) {
      const bool colon = t.size() - pos == 6;
      auto oh = num(pos + 1, 2), om = num(pos + (colon ? 4 : 3), 2);
      if (!oh || !om || (colon && t[pos + 3] != ':') || *oh > 23 || *om > 59) return std::nullopt;
      offset_ms = (*oh * 60 + *om) * 60000 * (t[pos] == '+' ? 1 : -1);
    } else {
      return std::nullopt;
    }
  }
  const int64_t days =
      sdk::days_from_civil(*y, static_cast<unsigned>(*mo), static_cast<unsigned>(*d));
  out.unix_ms = ((days * 24 + *h) * 60 + *mi) * 60000 + *s * 1000 + millis - offset_ms;
  return out;
}

std::string_view trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

void normalise_value(rapidjson::Value &v, rapidjson::Document::AllocatorType &alloc) {
  if (v.IsString()) {
    if (auto utc = datetime_to_utc(std::string_view(v.GetString(), v.GetStringLength())))
      v.SetString(utc->c_str(), static_cast<rapidjson::SizeType>(utc->size()), alloc);
  } else if (v.IsArray()) {
    for (auto &item : v.GetArray()) normalise_value(item, alloc);
  } else if (v.IsObject()) {
    for (auto &m : v.GetObject()) normalise_value(m.value, alloc);
  }
}

const std::vector<ModuleInfo> kModules = {
    {"lead", "Leads", "Email"},
    {"contact", "Contacts", "Email"},
    {"account", "Accounts", "Account_Name"},
    {"deal", "Deals", "Deal_Name"},
};

}  // namespace

const std::vector<ModuleInfo> &all_modules() {
  return kModules;
}

const ModuleInfo *find_module(std::string_view name) {
  for (const auto &m : kModules)
    if (name == m.object || name == m.module) return &m;
  if (name == "company") return &kModules[2];
  return nullptr;
}

const ModuleInfo *find_module_by_zoho_name(std::string_view module) {
  for (const auto &m : kModules)
    if (module == m.module) return &m;
  return nullptr;
}

std::optional<int64_t> parse_time_ms(std::string_view t) {
  if (all_digits(t)) return to_int(t);
  if (auto parsed = parse_iso(t)) return parsed->unix_ms;
  return std::nullopt;
}

std::string format_iso_ms(int64_t unix_ms) {
  return sdk::format_utc(unix_ms);
}

std::string format_zoho_time(int64_t unix_ms) {
  // Zoho's datetimes carry seconds: the fraction is dropped (rounded down).
  const int64_t seconds_ms = unix_ms - ((unix_ms % 1000) + 1000) % 1000;
  return sdk::format_utc(seconds_ms, false).replace(10, 1, "T") + "+00:00";
}

std::optional<std::string> datetime_to_utc(std::string_view text) {
  auto parsed = parse_iso(text);
  if (!parsed || !parsed->has_zone || text[10] != 'T') return std::nullopt;
  return format_iso_ms(parsed->unix_ms);
}

std::vector<std::string> split_multi_select(std::string_view text) {
  const char separator = text.find(';') != std::string_view::npos ? ';' : ',';
  std::vector<std::string> out;
  while (true) {
    const size_t at = text.find(separator);
    const std::string_view part = trim(text.substr(0, at));
    if (!part.empty()) out.emplace_back(part);
    if (at == std::string_view::npos) break;
    text.remove_prefix(at + 1);
  }
  return out;
}

void normalise_record(rapidjson::Value &record, const std::set<std::string> &multi_select,
                      rapidjson::Document::AllocatorType &alloc) {
  if (!record.IsObject()) return;
  for (auto &m : record.GetObject()) {
    rapidjson::Value &v = m.value;
    if (multi_select.count(std::string(m.name.GetString(), m.name.GetStringLength()))) {
      if (v.IsString()) {
        rapidjson::Value items(rapidjson::kArrayType);
        for (const auto &part :
             split_multi_select(std::string_view(v.GetString(), v.GetStringLength())))
          items.PushBack(rapidjson::Value(part.c_str(), alloc), alloc);
        v = items;
        continue;
      }
      if (v.IsArray()) {
        // An array may still hold one joined string ("A;B") per element: flattened.
        rapidjson::Value items(rapidjson::kArrayType);
        for (auto &item : v.GetArray()) {
          if (item.IsString()) {
            for (const auto &part :
                 split_multi_select(std::string_view(item.GetString(), item.GetStringLength())))
              items.PushBack(rapidjson::Value(part.c_str(), alloc), alloc);
          } else if (!item.IsNull()) {
            items.PushBack(rapidjson::Value(item, alloc), alloc);
          }
        }
        v = items;
        continue;
      }
    }
    normalise_value(v, alloc);
  }
}

bool datetime_for_zoho(rapidjson::Value &value, rapidjson::Document::AllocatorType &alloc) {
  if (!value.IsString()) return false;
  const std::string_view text(value.GetString(), value.GetStringLength());
  // Only ISO 8601 UTC as crmhost writes it; a value that already has an offset is Zoho's form.
  if (text.size() < 20 || text.back() != 'Z') return false;
  auto parsed = parse_iso(text);
  if (!parsed) return false;
  const std::string zoho = format_zoho_time(parsed->unix_ms);
  value.SetString(zoho.c_str(), static_cast<rapidjson::SizeType>(zoho.size()), alloc);
  return true;
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
  return "v1:" + std::to_string(cursor.modified_ms) + ":" + cursor.id + ":" +
         std::to_string(cursor.deleted_ms);
}

Cursor decode_cursor(std::string_view text) {
  if (text.substr(0, 3) == "v1:") {
    const std::string_view rest = text.substr(3);
    const auto first = rest.find(':'), last = rest.rfind(':');
    if (first != std::string_view::npos && last != first) {
      auto ms = to_int(rest.substr(0, first));
      auto deleted = to_int(rest.substr(last + 1));
      if (ms && deleted && *ms >= 0 && *deleted >= 0)
        return {*ms, std::string(rest.substr(first + 1, last - first - 1)), *deleted};
    }
  } else if (auto ms = parse_time_ms(text); ms && *ms >= 0) {
    return {*ms, "", *ms};
  }
  throw sdk::Error(CRM_ERR_INVALID_INPUT,
                   "poll cursor \"" + std::string(text.substr(0, 64)) +
                       "\" is not a zoho cursor (v1:<ms>:<id>:<ms>, epoch ms or ISO 8601 time)");
}

std::string url_encode(std::string_view value) {
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

std::string sha256_hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char *>(data.data()), data.size(), digest);
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : digest) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xF]);
  }
  return out;
}

bool secret_matches(std::string_view received, std::string_view expected) {
  unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char *>(received.data()), received.size(), a);
  SHA256(reinterpret_cast<const unsigned char *>(expected.data()), expected.size(), b);
  return CRYPTO_memcmp(a, b, sizeof a) == 0 && !expected.empty();
}

std::string too_deep(int http_status) {
  return std::to_string(http_status) + " with JSON nested deeper than " +
         std::to_string(sdk::kMaxJsonDepth) + " levels";
}

}  // namespace crmhost::zoho
