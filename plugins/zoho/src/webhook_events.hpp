#pragma once
// Zoho's inbound deliveries -> crmhost events: actions/watch notification callbacks (verified by
// channel id and token) and workflow-rule webhooks (verified by a configured header secret).
// Pure functions over the raw bytes received, so the tests call them directly.
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmhost::zoho {

// What a delivery says happened to a record.
enum class Operation { create, update, remove, unknown };

// Case-insensitive, with or without a module prefix: "Leads.edit", "update", "EDIT" -> update;
// "insert", "create", "Contacts.create" -> create; "remove", "delete" -> remove.
Operation normalise_operation(std::string_view text);
const char *operation_name(Operation op);  // "create", "update", "delete", "unknown"

struct ParsedEvent {
  std::string object;  // lead, contact, account, deal
  std::string id;      // the Zoho record id
  Operation operation = Operation::update;
  std::string event_id;     // the dedupe key; it names the operation
  std::string occurred_at;  // ISO 8601 UTC, empty when the delivery gives no time
  bool is_delete() const { return operation == Operation::remove; }
};

struct WebhookSettings {
  std::string channel_id, token;                 // notifications (empty: none configured)
  std::string workflow_header, workflow_secret;  // workflow rules (empty: none configured)
  std::set<std::string> objects;                 // the objects this connection serves
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct WebhookOutcome {
  enum class Verdict { ok, unauthorized, malformed } verdict = Verdict::unauthorized;
  std::string kind;    // "notification" or "workflow"
  std::string reason;  // short, never a secret
  std::vector<ParsedEvent> events;
};

// Verifies and parses one delivery. A delivery carrying the workflow header is a workflow-rule
// webhook; otherwise a body naming a channel_id is a notification. Unknown channel, wrong or
// missing token or header secret: unauthorized; not JSON, no ids, unknown module or operation:
// malformed. Modules this connection does not serve are acknowledged and skipped.
WebhookOutcome parse_webhook(const WebhookSettings &settings, const HeaderList &headers,
                             std::string_view body);

}  // namespace crmhost::zoho
