#pragma once
// HubSpot's webhook event arrays -> crmhost events.
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace crmhost::hubspot {

struct ParsedEvent {
  std::string object;       // contact, company, deal
  std::string id;           // the HubSpot record id
  std::string event;        // "upsert" (fetch the record) or "delete"
  std::string event_id;     // dedupe key, not HubSpot's eventId alone
  std::string occurred_at;  // ISO 8601, empty when the delivery had no occurredAt
};

// Parses the raw body (a JSON array of events). Events of objects outside `objects` and
// subscription types this connector does not know are skipped. Throws
// sdk::Error(CRM_ERR_INVALID_INPUT) with a short reason when the body is malformed.
std::vector<ParsedEvent> parse_webhook_events(std::string_view body,
                                              const std::set<std::string> &objects);

}  // namespace crmhost::hubspot
