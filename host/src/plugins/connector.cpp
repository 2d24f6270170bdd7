#include "plugins/connector.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>

#include "plugins/plugin_library.hpp"
#include "util/control_thread.hpp"
#include "util/crash.hpp"
#include "util/json.hpp"

namespace crmhost::plugins {

namespace {

// Host-owned result sink: copies the one document a call emits.
struct ResultSink {
  std::string text;
  int emits = 0;
  crm_sink sink{sizeof(crm_sink), 0, this, &ResultSink::emit};
  static crm_status emit(crm_sink *s, crm_str data) {
    auto *self = static_cast<ResultSink *>(s->user_data);
    if (++self->emits > 1) return CRM_ERR_INVALID_INPUT;
    self->text.assign(data.ptr ? data.ptr : "", data.len);
    return CRM_OK;
  }
};

crm_str as_crm(const std::string &s) {
  return crm_str{s.data(), s.size()};
}

// Reads an id that providers give as a string or a number.
std::optional<std::string> read_id(const rapidjson::Value &object, const char *key) {
  auto it = object.FindMember(key);
  if (it == object.MemberEnd()) return std::nullopt;
  if (it->value.IsString()) return std::string(it->value.GetString(), it->value.GetStringLength());
  if (it->value.IsInt64()) return std::to_string(it->value.GetInt64());
  if (it->value.IsUint64()) return std::to_string(it->value.GetUint64());
  return std::nullopt;
}

std::string at(const char *array, size_t index) {
  return std::string(array) + "[" + std::to_string(index) + "]";
}

// Parses one record of a poll or fetch result; returns an error detail on failure.
std::optional<std::string> read_record(const rapidjson::Value &v, const std::string &where,
                                       Record &out) {
  if (!v.IsObject()) return where + " is not an object";
  auto id = read_id(v, "id");
  if (!id || id->empty()) return where + ".id is missing or not a string";
  out.id = *id;
  const auto kind = parse_event_kind(json::get_string(v, "event").value_or("upsert"));
  if (!kind) return where + ".event must be \"upsert\" or \"delete\"";
  out.event = *kind;
  out.modified_at = json::get_string(v, "modified_at");
  auto data = v.FindMember("data");
  if (data != v.MemberEnd() && !data->value.IsNull()) {
    if (!data->value.IsObject()) return where + ".data is not an object";
    out.data_json = json::to_string(data->value);
  } else if (out.event == EventKind::upsert) {
    return where + ".data is missing";
  }
  return std::nullopt;
}

std::optional<std::string> read_records(const rapidjson::Value &doc, std::vector<Record> &out) {
  auto records = doc.FindMember("records");
  if (records == doc.MemberEnd() || !records->value.IsArray()) return "\"records\" is not an array";
  size_t index = 0;
  for (const auto &item : records->value.GetArray()) {
    Record record;
    if (auto error = read_record(item, at("records", index++), record)) return error;
    out.push_back(std::move(record));
  }
  return std::nullopt;
}

std::string headers_json(const Headers &headers) {
  rapidjson::Document doc(rapidjson::kArrayType);
  auto &alloc = doc.GetAllocator();
  for (const auto &[name, value] : headers) {
    rapidjson::Value pair(rapidjson::kArrayType);
    pair.PushBack(
        rapidjson::Value(name.c_str(), static_cast<rapidjson::SizeType>(name.size()), alloc),
        alloc);
    pair.PushBack(
        rapidjson::Value(value.c_str(), static_cast<rapidjson::SizeType>(value.size()), alloc),
        alloc);
    doc.PushBack(pair, alloc);
  }
  return json::to_string(doc);
}

}  // namespace

std::string_view to_string(EventKind kind) {
  return kind == EventKind::remove ? "delete" : "upsert";
}

std::optional<EventKind> parse_event_kind(std::string_view text) {
  if (text == "upsert") return EventKind::upsert;
  if (text == "delete") return EventKind::remove;
  return std::nullopt;
}

Connector::Connector(std::shared_ptr<const PluginLibrary> plugin,
                     std::unique_ptr<crm_host_instance> host, crm_connector *handle)
    : plugin_(std::move(plugin)), host_(std::move(host)), handle_(handle) {}

Connector::~Connector() {
  assert(control::on_control_thread() &&
         "destroy is a [control] call: run it on the control thread");
  std::lock_guard call_lock(call_mutex_);
  std::lock_guard control_lock(plugin_->control_mutex_);
  crash::PluginCallScope in_flight(plugin_->id().c_str(), host_->connection.c_str(), "destroy");
  plugin_->connector_.destroy(handle_);
}

const std::string &Connector::connection() const {
  return host_->connection;
}

CallError Connector::malformed(const char *operation, const std::string &detail) const {
  CallError error;
  error.code = CRM_ERR_INTERNAL;
  error.message =
      "plugin " + plugin_->id() + " returned a malformed " + operation + " result: " + detail;
  return error;
}

template <class Invoke>
Outcome<Connector::RawResult> Connector::call(const char *operation, Invoke &&invoke) {
  std::lock_guard lock(call_mutex_);
  ResultSink out;
  crm_error err{};
  err.struct_size = sizeof err;
  err.retryable = -1;
  crm_status status;
  try {
    crash::PluginCallScope in_flight(plugin_->id().c_str(), host_->connection.c_str(), operation);
    status = normalize_status(invoke(&out.sink, &err));
  } catch (...) {
    // A C++ plugin that lets an exception escape broke the ABI; contain it here.
    return malformed(operation, "an exception escaped through the C ABI");
  }
  if (out.emits > 1) return malformed(operation, "more than one result was emitted");
  if (status < 0) {
    CallError error;
    error.code = status;
    error.http_status = err.http_status;
    error.retry_after_ms = err.retry_after_ms > 0 ? err.retry_after_ms : 0;
    error.retryable = err.retryable == -1 ? default_retryable(status) : err.retryable == 1;
    error.message = std::string(err.message, strnlen(err.message, sizeof err.message));
    if (error.message.empty()) error.message = std::string(operation) + " failed without a message";
    return error;
  }
  if (out.emits == 0) return malformed(operation, "no result was emitted");
  return RawResult{status, std::move(out.text)};
}

Outcome<CheckResult> Connector::check() {
  auto raw = call("check", [&](crm_sink *out, crm_error *err) {
    return plugin_->connector_.check(handle_, out, err);
  });
  if (!raw) return raw.error();
  rapidjson::Document doc;
  if (auto error = json::try_parse(raw->json, doc, "the result")) return malformed("check", *error);
  const auto *ok = json::member(doc, "ok");
  if (!ok || !ok->IsBool()) return malformed("check", "\"ok\" is missing or not a boolean");
  return CheckResult{ok->GetBool(), json::get_string(doc, "message").value_or(""),
                     std::move(raw->json)};
}

Outcome<MaintenanceResult> Connector::maintain(std::string_view reason) {
  if (!plugin_->maintains())
    return CallError{CRM_ERR_UNSUPPORTED, 0, 0, false,
                     "plugin " + plugin_->id() + " offers no " CRM_MAINTENANCE_V1};
  rapidjson::Document req(rapidjson::kObjectType);
  req.AddMember("reason",
                rapidjson::Value(reason.data(), static_cast<rapidjson::SizeType>(reason.size()),
                                 req.GetAllocator()),
                req.GetAllocator());
  const std::string text = json::to_string(req);
  auto raw = call("maintain", [&](crm_sink *out, crm_error *err) {
    return plugin_->maintenance_.maintain(handle_, as_crm(text), out, err);
  });
  if (!raw) return raw.error();
  rapidjson::Document doc;
  if (auto error = json::try_parse(raw->json, doc, "the result"))
    return malformed("maintain", *error);
  if (!doc.IsObject()) return malformed("maintain", "the result is not an object");
  MaintenanceResult result;
  if (auto next = doc.FindMember("next_in_ms"); next != doc.MemberEnd()) {
    if (!next->value.IsInt64() || next->value.GetInt64() < 0)
      return malformed("maintain", "\"next_in_ms\" is not a count of milliseconds");
    result.next_in_ms = next->value.GetInt64();
  }
  if (auto status = doc.FindMember("status"); status != doc.MemberEnd()) {
    if (!status->value.IsObject()) return malformed("maintain", "\"status\" is not an object");
    result.status_json = json::to_string(status->value);
  }
  return result;
}

Outcome<PollPage> Connector::poll(const PollRequest &request) {
  if (!plugin_->description().has_capability("poll"))
    return CallError{CRM_ERR_UNSUPPORTED, 0, 0, false, "plugin " + plugin_->id() + " cannot poll"};
  rapidjson::Document req(rapidjson::kObjectType);
  auto &alloc = req.GetAllocator();
  req.AddMember("object", rapidjson::Value(request.object.c_str(), alloc), alloc);
  if (request.cursor)
    req.AddMember("cursor", rapidjson::Value(request.cursor->c_str(), alloc), alloc);
  else
    req.AddMember("cursor", rapidjson::Value(), alloc);
  req.AddMember("limit", request.limit, alloc);
  const std::string text = json::to_string(req);
  auto raw = call("poll", [&](crm_sink *out, crm_error *err) {
    return plugin_->connector_.poll(handle_, as_crm(text), out, err);
  });
  if (!raw) return raw.error();
  rapidjson::Document doc;
  if (auto error = json::try_parse(raw->json, doc, "the result")) return malformed("poll", *error);
  if (!doc.IsObject()) return malformed("poll", "the result is not an object");
  PollPage page;
  if (auto error = read_records(doc, page.records)) return malformed("poll", *error);
  page.next_cursor = json::get_string(doc, "next_cursor");
  if (auto remaining = doc.FindMember("remaining"); remaining != doc.MemberEnd()) {
    if (!remaining->value.IsUint64()) return malformed("poll", "\"remaining\" is not a count");
    page.remaining = remaining->value.GetUint64();
  }
  page.more = raw->status == CRM_MORE;
  if (page.more && !page.next_cursor)
    return malformed("poll", "more pages were announced without a \"next_cursor\"");
  return page;
}

Outcome<FetchResult> Connector::fetch(const std::string &object,
                                      const std::vector<std::string> &ids) {
  if (!plugin_->description().has_capability("fetch"))
    return CallError{CRM_ERR_UNSUPPORTED, 0, 0, false, "plugin " + plugin_->id() + " cannot fetch"};
  rapidjson::Document req(rapidjson::kObjectType);
  auto &alloc = req.GetAllocator();
  req.AddMember("object", rapidjson::Value(object.c_str(), alloc), alloc);
  rapidjson::Value id_array(rapidjson::kArrayType);
  for (const auto &id : ids) id_array.PushBack(rapidjson::Value(id.c_str(), alloc), alloc);
  req.AddMember("ids", id_array, alloc);
  const std::string text = json::to_string(req);
  auto raw = call("fetch", [&](crm_sink *out, crm_error *err) {
    return plugin_->connector_.fetch(handle_, as_crm(text), out, err);
  });
  if (!raw) return raw.error();
  rapidjson::Document doc;
  if (auto error = json::try_parse(raw->json, doc, "the result")) return malformed("fetch", *error);
  if (!doc.IsObject()) return malformed("fetch", "the result is not an object");
  FetchResult result;
  if (auto error = read_records(doc, result.records)) return malformed("fetch", *error);
  if (auto missing = doc.FindMember("missing"); missing != doc.MemberEnd()) {
    if (!missing->value.IsArray()) return malformed("fetch", "\"missing\" is not an array");
    for (const auto &id : missing->value.GetArray()) {
      if (!id.IsString()) return malformed("fetch", "\"missing\" holds a non-string id");
      result.missing.emplace_back(id.GetString(), id.GetStringLength());
    }
  }
  return result;
}

Outcome<std::vector<PushResult>> Connector::push(const PushRequest &request) {
  if (!plugin_->description().has_capability("push"))
    return CallError{CRM_ERR_UNSUPPORTED, 0, 0, false, "plugin " + plugin_->id() + " cannot push"};
  rapidjson::Document req(rapidjson::kObjectType);
  auto &alloc = req.GetAllocator();
  req.AddMember("object", rapidjson::Value(request.object.c_str(), alloc), alloc);
  req.AddMember("mode", rapidjson::Value(request.mode.c_str(), alloc), alloc);
  if (request.match_on)
    req.AddMember("match_on", rapidjson::Value(request.match_on->c_str(), alloc), alloc);
  // Only the steps the plugin declares: one that predates them would not know the field.
  rapidjson::Value steps(rapidjson::kArrayType);
  const auto &honoured = plugin_->description().match_normalize;
  for (const auto &step : request.match_normalize)
    if (std::find(honoured.begin(), honoured.end(), step) != honoured.end())
      steps.PushBack(rapidjson::Value(step.c_str(), alloc), alloc);
  if (request.match_on && !steps.Empty()) req.AddMember("match_normalize", steps, alloc);
  rapidjson::Value records(rapidjson::kArrayType);
  for (const auto &input : request.records) {
    rapidjson::Value item(rapidjson::kObjectType);
    item.AddMember("ref", rapidjson::Value(input.ref.c_str(), alloc), alloc);
    if (input.id) item.AddMember("id", rapidjson::Value(input.id->c_str(), alloc), alloc);
    rapidjson::Document data(&alloc);
    if (auto error = json::try_parse(input.data_json, data, "push data of " + input.ref))
      return CallError{CRM_ERR_INVALID_INPUT, 0, 0, false, *error};
    item.AddMember("data", rapidjson::Value(data, alloc), alloc);
    records.PushBack(item, alloc);
  }
  req.AddMember("records", records, alloc);
  const std::string text = json::to_string(req);
  auto raw = call("push", [&](crm_sink *out, crm_error *err) {
    return plugin_->connector_.push(handle_, as_crm(text), out, err);
  });
  if (!raw) return raw.error();
  rapidjson::Document doc;
  if (auto error = json::try_parse(raw->json, doc, "the result")) return malformed("push", *error);
  const auto *results = json::member(doc, "results");
  if (!results || !results->IsArray()) return malformed("push", "\"results\" is not an array");
  if (results->Size() != request.records.size())
    return malformed("push", std::to_string(results->Size()) + " results for " +
                                 std::to_string(request.records.size()) + " records");
  std::vector<PushResult> out;
  for (rapidjson::SizeType i = 0; i < results->Size(); ++i) {
    const auto &r = (*results)[i];
    const std::string where = at("results", i);
    if (!r.IsObject()) return malformed("push", where + " is not an object");
    PushResult result;
    result.ref = json::get_string(r, "ref").value_or("");
    if (result.ref != request.records[i].ref)
      return malformed(
          "push", where + ".ref does not match the input's ref \"" + request.records[i].ref + "\"");
    const auto status = json::get_string(r, "status");
    if (status != "ok" && status != "error")
      return malformed("push", where + ".status must be \"ok\" or \"error\"");
    result.ok = status == "ok";
    if (result.ok) {
      auto id = read_id(r, "id");
      if (!id) return malformed("push", where + ".id is missing");
      result.id = *id;
      auto created = r.FindMember("created");
      result.created =
          created != r.MemberEnd() && created->value.IsBool() && created->value.GetBool();
    } else {
      result.code = json::get_string(r, "code").value_or("internal");
      result.message = json::get_string(r, "message").value_or("");
      auto retryable = r.FindMember("retryable");
      result.retryable =
          retryable != r.MemberEnd() && retryable->value.IsBool() && retryable->value.GetBool();
    }
    out.push_back(std::move(result));
  }
  return out;
}

Outcome<WebhookResult> Connector::webhook(const WebhookRequest &request) {
  if (!plugin_->description().has_capability("webhook"))
    return CallError{CRM_ERR_UNSUPPORTED, 0, 0, false,
                     "plugin " + plugin_->id() + " does not accept webhooks"};
  const std::string text = "{\"method\":" + json::quote(request.method) +
                           ",\"url\":" + json::quote(request.url) +
                           ",\"headers\":" + headers_json(request.headers) +
                           ",\"received_at_ms\":" + std::to_string(request.received_at_ms) + "}";
  auto raw = call("webhook", [&](crm_sink *out, crm_error *err) {
    return plugin_->connector_.webhook(handle_, as_crm(text), as_crm(request.body), out, err);
  });
  if (!raw) return raw.error();
  rapidjson::Document doc;
  if (auto error = json::try_parse(raw->json, doc, "the result"))
    return malformed("webhook", *error);
  const auto *events = json::member(doc, "events");
  if (!events || !events->IsArray()) return malformed("webhook", "\"events\" is not an array");
  WebhookResult result;
  for (rapidjson::SizeType i = 0; i < events->Size(); ++i) {
    const auto &e = (*events)[i];
    const std::string where = at("events", i);
    if (!e.IsObject()) return malformed("webhook", where + " is not an object");
    WebhookEvent event;
    auto object = json::get_string(e, "object");
    auto id = read_id(e, "id");
    if (!object || object->empty()) return malformed("webhook", where + ".object is missing");
    if (!id || id->empty()) return malformed("webhook", where + ".id is missing");
    event.object = *object;
    event.id = *id;
    const auto kind = parse_event_kind(json::get_string(e, "event").value_or("upsert"));
    if (!kind) return malformed("webhook", where + ".event must be \"upsert\" or \"delete\"");
    event.event = *kind;
    event.event_id = json::get_string(e, "event_id");
    event.occurred_at = json::get_string(e, "occurred_at");
    if (auto data = e.FindMember("data"); data != e.MemberEnd() && !data->value.IsNull()) {
      if (!data->value.IsObject()) return malformed("webhook", where + ".data is not an object");
      event.data_json = json::to_string(data->value);
    }
    result.events.push_back(std::move(event));
  }
  if (const auto *reply = json::member(doc, "response")) {
    const auto &r = *reply;
    const auto *status = json::member(r, "status");
    if (!status || !status->IsInt() || status->GetInt() < 200 || status->GetInt() > 599)
      return malformed("webhook", "response.status must be an HTTP status");
    WebhookReply out;
    out.status = status->GetInt();
    out.body = json::get_string(r, "body").value_or("");
    if (const auto *headers = json::member(r, "headers"); headers && headers->IsObject())
      for (const auto &h : headers->GetObject())
        if (h.value.IsString()) out.headers.emplace_back(h.name.GetString(), h.value.GetString());
    result.reply = std::move(out);
  }
  return result;
}

void Connector::cancel() {
  const auto &table = plugin_->connector_;
  if (CRM_HAS_FIELD(&table, crm_connector_v1, cancel) && table.cancel) table.cancel(handle_);
}

}  // namespace crmhost::plugins
