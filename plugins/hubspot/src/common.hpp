#pragma once
// Small pieces shared by the HubSpot connector: objects, times, the poll cursor.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace crmhost::hubspot {

// A crmhost object and its HubSpot names.
struct ObjectInfo {
  const char *name;           // crmhost's name: "contact"
  const char *path;           // HubSpot's CRM v3 object path: "contacts"
  const char *modified_prop;  // the modification-time property searched on
};

// contact, company or deal (HubSpot's plural and the deal type id 0-3 are accepted too).
const ObjectInfo *find_object(std::string_view name);

// ISO 8601 (as HubSpot writes it, `Z` or an offset, optional fraction) or epoch milliseconds.
std::optional<int64_t> parse_time_ms(std::string_view text);
// 2026-11-22T10:00:00.000Z
std::string format_iso_ms(int64_t unix_ms);

// Orders HubSpot's numeric ids as numbers (shorter first), anything else as text.
int compare_ids(std::string_view a, std::string_view b);

// The poll position: everything modified before `modified_ms` was emitted, and of the records
// modified exactly then, those with an id up to `id` ("" = none of them).
struct Cursor {
  int64_t modified_ms = 0;
  std::string id;
};

// "v1:<modified ms>:<id>". Decoding also takes a bare epoch-ms number or an ISO 8601 time (a
// rewind written by hand); anything else throws sdk::Error(CRM_ERR_INVALID_INPUT).
std::string encode_cursor(const Cursor &cursor);
Cursor decode_cursor(std::string_view text);

// application/x-www-form-urlencoded value encoding.
std::string form_encode(std::string_view value);

// "<status> with JSON nested deeper than 256 levels": how an answer that sdk::try_parse_json
// refused as too deep is named in a message, after "HubSpot answered ".
std::string too_deep(int http_status);

}  // namespace crmhost::hubspot
