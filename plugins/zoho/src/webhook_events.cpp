#include "webhook_events.hpp"

#include <algorithm>
#include <cctype>

#include "common.hpp"
#include "crmhost/plugin.hpp"

namespace crmhost::zoho {
namespace {

using rapidjson::Value;
using Verdict = WebhookOutcome::Verdict;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<std::string> header(const HeaderList &headers, std::string_view name) {
  for (const auto &[key, value] : headers)
    if (iequals(key, name)) return value;
  return std::nullopt;
}

// Ids and times arrive as strings or JSON numbers.
std::string text_of(const Value &object, const char *key) {
  if (!object.IsObject()) return "";
  auto it = object.FindMember(key);
  if (it == object.MemberEnd()) return "";
  const Value &v = it->value;
  if (v.IsString()) return std::string(v.GetString(), v.GetStringLength());
  if (v.IsUint64()) return std::to_string(v.GetUint64());
  if (v.IsInt64()) return std::to_string(v.GetInt64());
  return "";
}

WebhookOutcome refuse(Verdict verdict, std::string kind, std::string reason) {
  WebhookOutcome out;
  out.verdict = verdict;
  out.kind = std::move(kind);
  out.reason = std::move(reason);
  return out;
}

// "Leads.edit" -> "Leads"; "edit" -> "".
std::string module_prefix(const std::string &operation) {
  const auto dot = operation.rfind('.');
  return dot == std::string::npos ? "" : operation.substr(0, dot);
}

WebhookOutcome notification(const WebhookSettings &s, const Value &doc, std::string_view body) {
  const std::string channel = text_of(doc, "channel_id");
  if (s.channel_id.empty())
    return refuse(Verdict::unauthorized, "notification",
                  "a notification arrived but settings.notifications names no channel");
  // Compared in constant time like the token: the channel id is half of what Zoho proves.
  if (!secret_matches(channel, s.channel_id))
    return refuse(Verdict::unauthorized, "notification", "unknown channel_id");
  if (!secret_matches(text_of(doc, "token"), s.token))
    return refuse(Verdict::unauthorized, "notification", "wrong or missing token");

  const std::string module = text_of(doc, "module");
  const std::string operation = text_of(doc, "operation");
  auto ids = doc.FindMember("ids");
  if (ids == doc.MemberEnd() || !ids->value.IsArray())
    return refuse(Verdict::malformed, "notification", "ids is not an array");
  const Operation op = normalise_operation(operation);
  if (op == Operation::unknown)
    return refuse(Verdict::malformed, "notification",
                  "operation \"" + operation.substr(0, 40) + "\" is not insert, update or delete");
  const ModuleInfo *info = find_module_by_zoho_name(module);
  WebhookOutcome out;
  out.verdict = Verdict::ok;
  out.kind = "notification";
  if (!info || !s.objects.count(info->object)) return out;  // a module not synced here
  const std::string server_time = text_of(doc, "server_time");
  std::string occurred_at;
  if (auto ms = parse_time_ms(server_time)) occurred_at = format_iso_ms(*ms);
  // A retried delivery repeats server_time; without it the body stands for the delivery.
  const std::string delivery = server_time.empty() ? sha256_hex(body).substr(0, 32) : server_time;
  for (const auto &id : ids->value.GetArray()) {
    std::string text = id.IsString()   ? std::string(id.GetString(), id.GetStringLength())
                       : id.IsUint64() ? std::to_string(id.GetUint64())
                                       : std::string();
    if (text.empty()) return refuse(Verdict::malformed, "notification", "ids holds a non-id");
    out.events.push_back({info->object, text, op,
                          "zoho:notify:" + channel + ":" + info->object + ":" + operation_name(op) +
                              ":" + text + ":" + delivery,
                          occurred_at});
  }
  return out;
}

WebhookOutcome workflow(const WebhookSettings &s, const Value &doc) {
  WebhookOutcome out;
  out.verdict = Verdict::ok;
  out.kind = "workflow";
  const std::string top_module = text_of(doc, "module");
  const std::string top_operation = text_of(doc, "operation");
  // {"data":[{...}]} as Zoho's own record shape; a bare record or {"ids":[...]} is taken too.
  std::vector<const Value *> items;
  Value id_items(rapidjson::kArrayType);
  rapidjson::Document scratch;
  if (auto data = doc.FindMember("data"); data != doc.MemberEnd()) {
    if (!data->value.IsArray() || data->value.Empty())
      return refuse(Verdict::malformed, "workflow", "data is not a non-empty array");
    for (const auto &item : data->value.GetArray()) items.push_back(&item);
  } else if (auto ids = doc.FindMember("ids"); ids != doc.MemberEnd() && ids->value.IsArray()) {
    for (const auto &id : ids->value.GetArray()) {
      Value item(rapidjson::kObjectType);
      item.AddMember("id", Value(id, scratch.GetAllocator()), scratch.GetAllocator());
      id_items.PushBack(item, scratch.GetAllocator());
    }
    for (const auto &item : id_items.GetArray()) items.push_back(&item);
  } else {
    items.push_back(&doc);
  }
  for (size_t i = 0; i < items.size(); ++i) {
    const Value &item = *items[i];
    const std::string where = "data[" + std::to_string(i) + "]";
    if (!item.IsObject())
      return refuse(Verdict::malformed, "workflow", where + " is not an object");
    const std::string id = text_of(item, "id");
    if (id.empty()) return refuse(Verdict::malformed, "workflow", where + " has no id");
    std::string operation = text_of(item, "operation");
    if (operation.empty()) operation = top_operation;
    const Operation op = normalise_operation(operation);
    if (op == Operation::unknown)
      return refuse(Verdict::malformed, "workflow",
                    where + ": operation \"" + operation.substr(0, 40) +
                        "\" is not create, edit or delete (e.g. \"Leads.edit\")");
    std::string module = text_of(item, "module");
    if (module.empty()) module = top_module;
    if (module.empty()) module = module_prefix(operation);
    const ModuleInfo *info = find_module(module);
    if (!info)
      return refuse(Verdict::malformed, "workflow",
                    where + ": module \"" + module.substr(0, 40) +
                        "\" is unknown (give \"module\" or an operation such as \"Leads.edit\")");
    if (!s.objects.count(info->object)) continue;
    std::string occurred_at;
    if (auto ms = parse_time_ms(text_of(item, "Modified_Time"))) occurred_at = format_iso_ms(*ms);
    // The same record, operation and payload is the same event; a delete of a record whose last
    // edit carried the same payload is another.
    out.events.push_back({info->object, id, op,
                          std::string("zoho:workflow:") + info->object + ":" + operation_name(op) +
                              ":" + id + ":" + sha256_hex(sdk::to_json(item)).substr(0, 32),
                          occurred_at});
  }
  return out;
}

}  // namespace

Operation normalise_operation(std::string_view text) {
  if (const auto dot = text.rfind('.'); dot != std::string_view::npos) text.remove_prefix(dot + 1);
  const std::string op = sdk::lower_ascii(std::string(text));
  if (op == "create" || op == "insert" || op == "created" || op == "inserted")
    return Operation::create;
  if (op == "edit" || op == "update" || op == "edited" || op == "updated") return Operation::update;
  if (op == "delete" || op == "remove" || op == "deleted" || op == "removed")
    return Operation::remove;
  return Operation::unknown;
}

const char *operation_name(Operation op) {
  switch (op) {
    case Operation::create:
      return "create";
    case Operation::update:
      return "update";
    case Operation::remove:
      return "delete";
    case Operation::unknown:
      break;
  }
  return "unknown";
}

WebhookOutcome parse_webhook(const WebhookSettings &s, const HeaderList &headers,
                             std::string_view body) {
  // The workflow header decides the kind before the body is read: a delivery that claims it is
  // refused on a wrong secret whatever it carries.
  const auto secret = s.workflow_header.empty() ? std::nullopt : header(headers, s.workflow_header);
  rapidjson::Document doc;
  const sdk::JsonParse parsed = sdk::try_parse_json(body, doc);
  if (secret) {
    if (!secret_matches(*secret, s.workflow_secret))
      return refuse(Verdict::unauthorized, "workflow", "wrong " + s.workflow_header + " secret");
  } else if (parsed != sdk::JsonParse::ok || !doc.IsObject() || !doc.HasMember("channel_id")) {
    // Neither a notification nor a workflow delivery we can trust.
    if (parsed == sdk::JsonParse::ok && doc.IsObject())
      return refuse(Verdict::unauthorized, "workflow",
                    s.workflow_header.empty()
                        ? "no channel_id, and settings.workflow_webhook is not set"
                        : "no channel_id and no " + s.workflow_header + " header");
    return refuse(Verdict::malformed, "notification",
                  parsed == sdk::JsonParse::too_deep
                      ? "body nests deeper than " + std::to_string(sdk::kMaxJsonDepth) + " levels"
                      : "body is not a JSON object");
  }
  if (parsed == sdk::JsonParse::too_deep)
    return refuse(Verdict::malformed, "workflow",
                  "body nests deeper than " + std::to_string(sdk::kMaxJsonDepth) + " levels");
  if (parsed != sdk::JsonParse::ok || !doc.IsObject())
    return refuse(Verdict::malformed, secret ? "workflow" : "notification",
                  "body is not a JSON object");
  return secret ? workflow(s, doc) : notification(s, doc, body);
}

}  // namespace crmhost::zoho
