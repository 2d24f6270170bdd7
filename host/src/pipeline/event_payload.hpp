#pragma once
// What a queued event carries: the record as its source described it, as one JSON document.
//   {"object":"contact","id":"17","event":"upsert","modified_at":"...","data":{...}}
// `data` is absent when the source named the record only; the processor then fetches it.
#include <optional>
#include <string>

#include "plugins/connector.hpp"
#include "store/store.hpp"

namespace crmhost::pipeline {

struct EventPayload {
  std::string object;
  std::string id;
  plugins::EventKind event = plugins::EventKind::upsert;
  std::optional<std::string> modified_at;
  std::optional<std::string> data_json;
};

std::string to_json(const EventPayload &payload);
// nullopt when the stored payload is not one of ours (reported as a permanent failure).
std::optional<EventPayload> parse_payload(const std::string &json);

EventPayload payload_from(const std::string &object, const plugins::Record &record);
EventPayload payload_from(const plugins::WebhookEvent &event);

// A queue entry for `payload`. The dedupe key is the provider's event id when it has one, else
// {connection}:{object}:{event}:{id}:{sha256(payload)}, so a delete is never absorbed by an
// update of the same record, and a repeated delivery or overlapping poll page is.
store::NewEvent make_event(const std::string &pipeline, store::EventSource source,
                           const std::string &connection, const EventPayload &payload,
                           const std::string &request_id,
                           const std::optional<std::string> &provider_event_id = std::nullopt);

}  // namespace crmhost::pipeline
