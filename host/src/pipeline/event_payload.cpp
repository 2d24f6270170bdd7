#include "pipeline/event_payload.hpp"

#include "util/json.hpp"

namespace crmhost::pipeline {

std::string to_json(const EventPayload &p) {
  std::string out = "{\"object\":" + json::quote(p.object) + ",\"id\":" + json::quote(p.id) +
                    ",\"event\":" + json::quote(plugins::to_string(p.event));
  if (p.modified_at) out += ",\"modified_at\":" + json::quote(*p.modified_at);
  if (p.data_json) out += ",\"data\":" + *p.data_json;
  return out + "}";
}

std::optional<EventPayload> parse_payload(const std::string &text) {
  rapidjson::Document doc;
  if (json::try_parse(text, doc, "payload") || !doc.IsObject()) return std::nullopt;
  EventPayload p;
  auto object = json::get_string(doc, "object");
  auto id = json::get_string(doc, "id");
  if (!object || !id) return std::nullopt;
  p.object = *object;
  p.id = *id;
  const auto kind = plugins::parse_event_kind(json::get_string(doc, "event").value_or("upsert"));
  if (!kind) return std::nullopt;
  p.event = *kind;
  p.modified_at = json::get_string(doc, "modified_at");
  if (auto data = doc.FindMember("data"); data != doc.MemberEnd() && data->value.IsObject())
    p.data_json = json::to_string(data->value);
  return p;
}

EventPayload payload_from(const std::string &object, const plugins::Record &record) {
  EventPayload p{object, record.id, record.event, record.modified_at, std::nullopt};
  if (record.event != plugins::EventKind::remove) p.data_json = record.data_json;
  return p;
}

EventPayload payload_from(const plugins::WebhookEvent &event) {
  return EventPayload{event.object, event.id, event.event, event.occurred_at, event.data_json};
}

store::NewEvent make_event(const std::string &pipeline, store::EventSource source,
                           const std::string &connection, const EventPayload &payload,
                           const std::string &request_id,
                           const std::optional<std::string> &provider_event_id) {
  store::NewEvent e;
  e.pipeline = pipeline;
  e.source = source;
  e.connection = connection;
  e.object = payload.object;
  e.record_id = payload.id;
  e.event_type = plugins::to_string(payload.event);
  e.payload = to_json(payload);
  e.request_id = request_id;
  e.dedupe_key = provider_event_id ? connection + ":event:" + *provider_event_id
                                   : store::default_dedupe_key(e);
  return e;
}

}  // namespace crmhost::pipeline
