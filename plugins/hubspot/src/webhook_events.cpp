#include "webhook_events.hpp"

#include "common.hpp"
#include "crmhost/plugin.hpp"

namespace crmhost::hubspot {
namespace {

using rapidjson::Value;
using sdk::Error;

// Ids and times arrive as JSON numbers; strings are accepted too.
std::optional<std::string> scalar_text(const Value &event, const char *key) {
  auto it = event.FindMember(key);
  if (it == event.MemberEnd()) return std::nullopt;
  const Value &v = it->value;
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsUint64()) return std::to_string(v.GetUint64());
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  if (v.IsBool()) return v.GetBool() ? "true" : "false";
  return std::nullopt;
}

Error malformed(size_t index, const std::string &what) {
  return Error(CRM_ERR_INVALID_INPUT, "webhook body[" + std::to_string(index) + "]: " + what);
}

}  // namespace

std::vector<ParsedEvent> parse_webhook_events(std::string_view body,
                                              const std::set<std::string> &objects) {
  rapidjson::Document doc;
  if (sdk::try_parse_json(body, doc) == sdk::JsonParse::too_deep)
    throw Error(CRM_ERR_INVALID_INPUT, "webhook body: nested deeper than " +
                                           std::to_string(sdk::kMaxJsonDepth) + " levels");
  if (doc.HasParseError() || !doc.IsArray())
    throw Error(CRM_ERR_INVALID_INPUT, "webhook body: expected a JSON array of HubSpot events");
  std::vector<ParsedEvent> out;
  for (rapidjson::SizeType i = 0; i < doc.Size(); ++i) {
    const Value &e = doc[i];
    if (!e.IsObject()) throw malformed(i, "not an object");
    const auto type = scalar_text(e, "subscriptionType");
    if (!type) throw malformed(i, "subscriptionType is missing");
    const auto dot = type->find('.');
    if (dot == std::string::npos) throw malformed(i, "subscriptionType has no object prefix");
    const std::string object = type->substr(0, dot), kind = type->substr(dot + 1);
    // Tickets, products and the like are not synced here: acknowledged and skipped.
    if (!find_object(object) || !objects.count(object)) continue;

    const auto occurred = scalar_text(e, "occurredAt");
    std::string occurred_at;
    if (occurred) {
      const auto ms = parse_time_ms(*occurred);
      if (!ms) throw malformed(i, "occurredAt is not a time");
      occurred_at = format_iso_ms(*ms);
    }
    // associationChange names its records as fromObjectId/toObjectId (guess: not in the sheet).
    auto object_id = scalar_text(e, "objectId");
    if (!object_id && kind == "associationChange") object_id = scalar_text(e, "fromObjectId");
    if (!object_id || object_id->empty()) throw malformed(i, "objectId is missing");

    // HubSpot's eventId is not guaranteed unique: the key is the tuple that identifies a change.
    std::string key = "hubspot:" + scalar_text(e, "portalId").value_or("") + ":" +
                      scalar_text(e, "subscriptionId").value_or("") + ":" + *object_id + ":" +
                      occurred.value_or("") + ":" + scalar_text(e, "propertyName").value_or("") +
                      ":" + *type;
    if (kind == "associationChange")
      key += ":" + scalar_text(e, "toObjectId").value_or("") + ":" +
             scalar_text(e, "associationType").value_or("") + ":" +
             scalar_text(e, "associationRemoved").value_or("");

    auto add = [&](const std::string &id, const char *event, const std::string &suffix) {
      out.push_back({object, id, event, key + suffix, occurred_at});
    };
    if (kind == "creation" || kind == "propertyChange" || kind == "restore" ||
        kind == "associationChange") {
      add(*object_id, "upsert", "");
    } else if (kind == "deletion" || kind == "privacyDeletion") {
      add(*object_id, "delete", "");
    } else if (kind == "merge") {
      // The surviving record changed; the merged ones are gone from HubSpot.
      const std::string primary = scalar_text(e, "primaryObjectId").value_or(*object_id);
      add(primary, "upsert", ":primary:" + primary);
      auto merged = e.FindMember("mergedObjectIds");
      if (merged != e.MemberEnd() && !merged->value.IsArray())
        throw malformed(i, "mergedObjectIds is not an array");
      if (merged != e.MemberEnd())
        for (const auto &m : merged->value.GetArray()) {
          std::string id = m.IsString()   ? m.GetString()
                           : m.IsUint64() ? std::to_string(m.GetUint64())
                                          : std::string();
          if (id.empty()) throw malformed(i, "mergedObjectIds holds a non-id");
          if (id != primary) add(id, "delete", ":merged:" + id);
        }
    }
    // Other subscription types (e.g. a future one) are acknowledged and skipped.
  }
  return out;
}

}  // namespace crmhost::hubspot
