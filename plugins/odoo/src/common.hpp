#pragma once
// Pieces of the Odoo connector that need no HTTP: objects, Odoo times, the poll cursor, compact
// id sets for reconciliation, error classification and the automation-rule webhook.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace crmhost::odoo {

// A crmhost object and the Odoo model behind it by default.
struct ObjectInfo {
  const char *name;   // crmhost's name: "contact"
  const char *model;  // Odoo's model: "res.partner"
  int is_company;     // res.partner's is_company filter: 0 false, 1 true, -1 none
};

// contact, company or deal.
const ObjectInfo *find_object(std::string_view name);

// Odoo datetimes are UTC "YYYY-MM-DD HH:MM:SS" (an ISO 8601 'T', fraction or 'Z' is accepted).
std::optional<int64_t> parse_odoo_time(std::string_view text);  // Unix seconds
std::string format_odoo_time(int64_t unix_s);
std::string format_iso(int64_t unix_s);  // 2026-11-22T10:00:00Z

// The poll position. Everything with (write_date, id) <= (write_s, id) was emitted. `head`: the
// last page reached the end, so the next read starts lookback seconds earlier (late commits).
// `token` names this cursor's reconciliation snapshot in crm.state.v1, `previous_token` the one
// before (removed once a cursor naming the new one comes back, i.e. the host committed it).
struct Cursor {
  int64_t write_s = 0;
  int64_t id = 0;
  bool head = false;
  bool started = false;  // false: from the beginning (no write_date condition)
  std::string token, previous_token;
  int64_t reconciled_ms = 0;  // when the snapshot was taken; 0: never
};

// "o1:<write_s>:<id>:<head 0|1>:<token>:<previous token>:<reconciled ms>". Decoding also takes
// an Odoo or ISO 8601 time (a rewind written by hand); anything else throws
// sdk::Error(CRM_ERR_INVALID_INPUT).
std::string encode_cursor(const Cursor &cursor);
Cursor decode_cursor(std::string_view text);

// Sorted, distinct ids as (gap, run length) varint pairs: dense Odoo ids take ~2 bytes a run.
std::string encode_ids(const std::vector<int64_t> &sorted_ids);
// Throws sdk::Error(CRM_ERR_INTERNAL) on a corrupt encoding.
std::vector<int64_t> decode_ids(std::string_view bytes);

// What an Odoo failure means for crmhost.
struct Fault {
  std::string name;     // "odoo.exceptions.ValidationError", "" for transport or bare HTTP
  std::string message;  // Odoo's message (never a credential)
  int http_status = 0;  // 0: no HTTP answer (transport)
};
struct Classified {
  int status;        // crm_status for a whole-call failure
  std::string code;  // per-record code: invalid_input, not_found, unauthorized, ...
  bool retryable;
};
Classified classify_fault(const Fault &fault);

// A fault's message for an answer sdk::try_parse_json refused as too deep (a hostile or broken
// server): "JSON nested deeper than 256 levels". With the answer's status and no name it
// classifies as that status says (a 2xx: remote, not retryable).
std::string too_deep_message();

// Constant-time comparison of a received secret with the configured one.
bool secret_matches(std::string_view received, std::string_view expected);

// An automation-rule delivery: {"_model": "res.partner", "_id": 42, ...}.
struct WebhookDelivery {
  std::string model;
  std::string id;
  std::optional<bool> is_company;  // when the rule sent the field
  std::string write_date;          // Odoo time, when the rule sent it
};
// Throws sdk::Error(CRM_ERR_INVALID_INPUT) when the body is not such an object.
WebhookDelivery parse_webhook(std::string_view body);

}  // namespace crmhost::odoo
