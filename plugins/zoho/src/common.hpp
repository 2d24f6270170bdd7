#pragma once
// Small pieces shared by the Zoho connector: modules, times, values, the poll cursor.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

namespace crmhost::zoho {

// A crmhost object and its Zoho CRM module.
struct ModuleInfo {
  const char *object;         // crmhost's name: "lead"
  const char *module;         // Zoho's module API name: "Leads"
  const char *default_match;  // Zoho's system duplicate-check field for the module
};

// lead, contact, account, deal; Zoho's module names (Leads...) and "company" (for account) too.
const ModuleInfo *find_module(std::string_view name);
// The module whose Zoho name is `module` exactly (webhooks name modules so), or nullptr.
const ModuleInfo *find_module_by_zoho_name(std::string_view module);
const std::vector<ModuleInfo> &all_modules();

// ISO 8601 with `Z` or an offset (`2026-12-08T10:15:00+05:30`, optional fraction), or epoch ms.
std::optional<int64_t> parse_time_ms(std::string_view text);
// 2026-11-22T10:00:00.000Z
std::string format_iso_ms(int64_t unix_ms);
// 2026-11-22T10:00:00+00:00: how Zoho takes datetimes (If-Modified-Since, criteria, values).
std::string format_zoho_time(int64_t unix_ms);

// A Zoho datetime value (date, time and `Z` or an offset) as ISO 8601 UTC; nullopt for any other
// text (dates, free text), which is left as it is.
std::optional<std::string> datetime_to_utc(std::string_view text);
// Multi-select text as Zoho may send it: `;`-separated, or `,`-separated when there is no `;`.
// Parts trimmed, empty parts dropped.
std::vector<std::string> split_multi_select(std::string_view text);

// Rewrites a record read from Zoho for crmhost, in place: every datetime with an offset (nested
// values included) to ISO 8601 UTC, and the fields named in `multi_select` to arrays of strings.
void normalise_record(rapidjson::Value &record, const std::set<std::string> &multi_select,
                      rapidjson::Document::AllocatorType &alloc);
// The reverse for a value pushed to Zoho: ISO 8601 UTC datetimes (`...Z`) to Zoho's
// `+00:00` form (seconds precision); other values unchanged. Returns whether it changed `value`.
bool datetime_for_zoho(rapidjson::Value &value, rapidjson::Document::AllocatorType &alloc);

// Orders Zoho's numeric ids as numbers (shorter first), anything else as text.
int compare_ids(std::string_view a, std::string_view b);

// The poll position. Records: everything modified before `modified_ms` was emitted, and of the
// records modified exactly then, those with an id up to `id` ("" = none of them). Deletions:
// every deletion before `deleted_ms` was emitted.
struct Cursor {
  int64_t modified_ms = 0;
  std::string id;
  int64_t deleted_ms = 0;
};

// "v1:<modified ms>:<id>:<deleted ms>". Decoding also takes a bare epoch-ms number or an ISO 8601
// time (a rewind written by hand, for both parts); anything else throws
// sdk::Error(CRM_ERR_INVALID_INPUT).
std::string encode_cursor(const Cursor &cursor);
Cursor decode_cursor(std::string_view text);

// Percent-encoding for a query parameter or form value (RFC 3986 unreserved kept).
std::string url_encode(std::string_view value);

// hex(SHA-256(data))
std::string sha256_hex(std::string_view data);
// Constant-time comparison of a received secret with the expected one (both hashed first, so
// neither length nor content leaks through timing); false when `expected` is empty.
bool secret_matches(std::string_view received, std::string_view expected);

// "<status> with JSON nested deeper than 256 levels": how an answer that sdk::try_parse_json
// refused as too deep is named in a message, after "Zoho answered ".
std::string too_deep(int http_status);

}  // namespace crmhost::zoho
