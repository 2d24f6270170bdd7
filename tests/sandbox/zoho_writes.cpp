// The Zoho emulator's writes: insert, update (ids in the records or in the path), upsert with
// duplicate_check_fields, delete, with per-record results in Zoho's shape, If-Unmodified-Since,
// `trigger` recorded, and the notifications and workflow webhooks they cause.
#include <algorithm>

#include "sandbox/zoho_internal.hpp"
#include "util/time.hpp"

namespace crmsandbox {

using namespace zoho;

namespace {

// One record's outcome: a success's details, or an error item.
struct Outcome {
  std::optional<ApiError> error;
  int64_t id = 0;
  std::string action;  // upsert: insert | update
  std::string duplicate_field;
};

ApiError request_error(const std::string &code, const std::string &message) {
  ApiError e;
  e.code = code;
  e.message = message;
  return e;
}

std::optional<std::vector<std::string>> strings_of(const rapidjson::Value &value) {
  if (!value.IsArray()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto &v : value.GetArray()) {
    if (!v.IsString()) return std::nullopt;
    out.emplace_back(v.GetString(), v.GetStringLength());
  }
  return out;
}

std::string id_text(const rapidjson::Value &value) {
  if (value.IsString()) return {value.GetString(), value.GetStringLength()};
  if (value.IsInt64()) return std::to_string(value.GetInt64());
  return {};
}

// The status of a bulk answer (guess: 201/200 all good, 207 mixed, 400 all failed, 412 when
// every failure is ALREADY_MODIFIED).
int bulk_status(const std::vector<Outcome> &outcomes, int success_status) {
  size_t failed = 0, modified = 0;
  for (const auto &o : outcomes)
    if (o.error) {
      ++failed;
      if (o.error->code == "ALREADY_MODIFIED") ++modified;
    }
  if (failed == 0) return success_status;
  if (failed < outcomes.size()) return 207;
  return modified == failed ? 412 : 400;
}

}  // namespace

HttpResponse ZohoSandbox::Impl::write(Org &o, const ModuleDef &module, const std::string &operation,
                                      const std::string &path_id, const HttpRequest &request,
                                      std::vector<ZohoDelivery> &out) {
  rapidjson::Document body;
  body.Parse(request.body.data(), request.body.size());
  if (body.HasParseError() || !body.IsObject())  // (guess) the answer to a body that is no JSON
    return error_response(request_error("INVALID_DATA", "the request body is not valid JSON"));
  const auto data = body.FindMember("data");
  if (data == body.MemberEnd() || (data->value.IsArray() && data->value.Empty())) {
    auto e = request_error("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing");
    e.detail("param_name", "data");  // (guess) as the list's missing fields
    return error_response(e);
  }
  if (!data->value.IsArray()) {
    auto e = request_error("INVALID_DATA", "invalid data");
    e.detail("expected_data_type", "jsonarray")
        .detail("api_name", "data")
        .detail("json_path", "$.data");
    return error_response(e);
  }
  const auto &items = data->value;
  const int64_t limit = path_id.empty() ? kMaxRecordsPerCall : 1;  // (guess) one with an id path
  if (static_cast<int64_t>(items.Size()) > limit) {
    auto e = request_error("LIMIT_EXCEEDED", "the limit has been exceeded");  // (guess) message
    e.detail_raw("limit", std::to_string(limit)).detail("api_name", "data");
    return error_response(e);
  }
  ZohoWriteCall call;
  call.org_id = o.spec.id;
  call.module = module.name;
  call.operation = operation;
  call.body = request.body;
  call.at_ms = clock();
  if (const auto t = body.FindMember("trigger"); t != body.MemberEnd()) {
    call.trigger = strings_of(t->value);
    if (!call.trigger) {
      auto e = request_error("INVALID_DATA", "invalid data");
      e.detail("expected_data_type", "jsonarray").detail("api_name", "trigger");
      return error_response(e);
    }
  }
  if (const auto d = body.FindMember("duplicate_check_fields"); d != body.MemberEnd()) {
    call.duplicate_check_fields = strings_of(d->value);
    if (!call.duplicate_check_fields) {
      auto e = request_error("INVALID_DATA", "invalid data");
      e.detail("expected_data_type", "jsonarray").detail("api_name", "duplicate_check_fields");
      return error_response(e);
    }
  }
  std::optional<int64_t> unmodified_since;
  if (const auto text = request.header("If-Unmodified-Since"); !text.empty()) {
    unmodified_since = crmhost::timeutil::parse_iso8601_ms(text);
    if (!unmodified_since) {
      auto e = request_error("INVALID_DATA", "invalid data");  // (guess)
      e.detail("param_name", "If-Unmodified-Since");
      return error_response(e);
    }
  }
  // The upsert's match order (doc v7): the given fields, then the other unique fields; none
  // given, the system field first.
  std::vector<std::string> match_order;
  if (operation == "upsert") {
    if (call.duplicate_check_fields)
      match_order = *call.duplicate_check_fields;
    else
      match_order.push_back(module.system_unique);
    for (const auto &u : unique_fields[module.name])
      if (std::find(match_order.begin(), match_order.end(), u) == match_order.end())
        match_order.push_back(u);
  }

  std::vector<Outcome> outcomes;
  std::vector<Change> changes;
  for (rapidjson::SizeType i = 0; i < items.Size(); ++i) {
    const auto path = "$.data[" + std::to_string(i) + "]";
    Outcome outcome;
    const auto &item = items[i];
    if (!item.IsObject()) {
      auto e = request_error("INVALID_DATA", "invalid data");
      e.detail("expected_data_type", "jsonobject").detail("json_path", path);
      outcome.error = e;
      outcomes.push_back(std::move(outcome));
      continue;
    }
    ZohoFields fields;
    std::string id = path_id;
    bool has_id = !path_id.empty();
    for (const auto &m : item.GetObject()) {
      const std::string name(m.name.GetString(), m.name.GetStringLength());
      if (name == "id") {
        if (id.empty()) id = id_text(m.value);
        has_id = true;
        continue;
      }
      if (name.empty() || name[0] == '$') continue;  // (guess) $-keys are Zoho's own, ignored
      fields[name] = from_json(m.value);
    }
    Stored *target = nullptr;
    if (operation == "update") {
      if (!has_id) {
        auto e = request_error("MANDATORY_NOT_FOUND", "required field not found");
        e.detail("api_name", "id").detail("json_path", path + ".id");
        outcome.error = e;
      } else if (!(target = find(o, module, id))) {
        auto e = request_error("INVALID_DATA", "the id given seems to be invalid");
        e.detail("api_name", "id").detail("json_path", path + ".id");
        outcome.error = e;
      }
    } else if (operation == "upsert") {
      for (const auto &name : match_order) {
        const auto it = fields.find(name);
        if (it == fields.end() || is_empty(it->second)) continue;
        const auto wanted = value_texts(it->second);
        for (auto &[rid, record] : o.tables[module.name].records) {
          const auto stored = record.fields.find(name);
          if (stored == record.fields.end()) continue;
          const auto texts = value_texts(stored->second);
          if (texts.size() == 1 && wanted.size() == 1 &&
              lowercase(texts[0]) == lowercase(wanted[0])) {
            target = &record;
            break;
          }
        }
        if (target) {
          outcome.duplicate_field = name;
          break;
        }
      }
      outcome.action = target ? "update" : "insert";
    }
    if (!outcome.error && target && unmodified_since &&
        target->modified_ms > *unmodified_since / 1000 * 1000) {
      auto e = request_error("ALREADY_MODIFIED",
                             "the record has been modified after the given time");  // (guess)
      e.detail("id", std::to_string(target->id))
          .detail("Modified_Time", zoho_time(target->modified_ms, o.spec.utc_offset_minutes));
      outcome.error = e;
    }
    if (!outcome.error) {
      auto checked = fields;
      outcome.error = validate(o, module, checked, target ? target->id : 0, !target, path);
      if (!outcome.error) {
        Change change;
        change.module = module.name;
        if (target) {
          apply(*target, checked);
          change.operation = "update";
          for (const auto &[name, value] : checked) change.affected_fields.push_back(name);
          change.values = checked;
          outcome.id = target->id;
        } else {
          outcome.id = insert(o, module, checked, 0, 0);
          change.operation = "insert";
        }
        const auto &stored = o.tables[module.name].records.at(outcome.id);
        change.id = outcome.id;
        change.record = stored.fields;
        change.created_ms = stored.created_ms;
        change.modified_ms = stored.modified_ms;
        changes.push_back(std::move(change));
        call.ids.push_back(std::to_string(outcome.id));
      }
    }
    outcomes.push_back(std::move(outcome));
  }

  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("data");
  w.StartArray();
  bool inserted = false;
  for (const auto &outcome : outcomes) {
    if (outcome.error) {
      write_error(w, *outcome.error);
      continue;
    }
    const auto &record = o.tables[module.name].records.at(outcome.id);
    const bool added = operation == "insert" || outcome.action == "insert";
    inserted = inserted || added;
    w.StartObject();
    w.Key("code");
    w.String("SUCCESS");
    if (operation == "upsert") {
      w.Key("duplicate_field");
      if (outcome.duplicate_field.empty())
        w.Null();
      else
        w.String(outcome.duplicate_field);
      w.Key("action");
      w.String(outcome.action);
    }
    w.Key("details");
    w.StartObject();
    w.Key("Modified_Time");
    w.String(zoho_time(record.modified_ms, o.spec.utc_offset_minutes));
    w.Key("Modified_By");
    write_user(w, o);
    w.Key("Created_Time");
    w.String(zoho_time(record.created_ms, o.spec.utc_offset_minutes));
    w.Key("id");
    w.String(std::to_string(record.id));
    w.Key("Created_By");
    write_user(w, o);
    w.EndObject();
    w.Key("message");
    w.String(added ? "record added" : "record updated");
    w.Key("status");
    w.String("success");
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  const int success_status = operation == "update" ? 200 : (inserted ? 201 : 200);
  const bool workflows = !call.trigger || std::find(call.trigger->begin(), call.trigger->end(),
                                                    "workflow") != call.trigger->end();
  write_log.push_back(std::move(call));
  deliveries_for(o, changes, workflows, o.spec.data_centre, out);
  return json_response(bulk_status(outcomes, success_status),
                       {buffer.GetString(), buffer.GetSize()});
}

HttpResponse ZohoSandbox::Impl::remove(Org &o, const ModuleDef &module, const std::string &path_id,
                                       const HttpRequest &request, std::vector<ZohoDelivery> &out) {
  const auto q = parse_query(request.query);
  std::vector<std::string> ids;
  if (!path_id.empty()) {
    ids.push_back(path_id);
  } else if (const auto it = q.find("ids"); it != q.end()) {
    size_t start = 0;
    for (size_t i = 0; i <= it->second.size(); ++i)
      if (i == it->second.size() || it->second[i] == ',') {
        if (i > start) ids.push_back(it->second.substr(start, i - start));
        start = i + 1;
      }
  }
  if (ids.empty()) {
    auto e = request_error("REQUIRED_PARAM_MISSING", "One of the expected parameter is missing");
    e.detail("param_name", "ids");
    return error_response(e);
  }
  if (static_cast<int64_t>(ids.size()) > kMaxRecordsPerCall) {
    auto e = request_error("LIMIT_EXCEEDED", "the limit has been exceeded");  // (guess) message
    e.detail_raw("limit", std::to_string(kMaxRecordsPerCall)).detail("param_name", "ids");
    return error_response(e);
  }
  ZohoWriteCall call;
  call.org_id = o.spec.id;
  call.module = module.name;
  call.operation = "delete";
  call.at_ms = clock();
  // Deletes take wf_trigger=true|false in the query, not a body (guess: recorded as trigger).
  if (const auto wf = q.find("wf_trigger"); wf != q.end())
    call.trigger =
        wf->second == "false" ? std::vector<std::string>{} : std::vector<std::string>{"workflow"};
  std::vector<Outcome> outcomes;
  std::vector<Change> changes;
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("data");
  w.StartArray();
  for (const auto &id : ids) {
    Outcome outcome;
    auto *record = find(o, module, id);
    if (!record) {
      auto e = request_error("INVALID_DATA", "record not deleted");  // (guess) the message
      e.detail("id", id);
      write_error(w, e);
      outcome.error = e;
    } else {
      Change change{module.name, "delete",       record->id,         {},
                    {},          record->fields, record->created_ms, record->modified_ms};
      changes.push_back(std::move(change));
      remove_record(o, module, record->id);
      call.ids.push_back(id);
      w.StartObject();
      w.Key("code");
      w.String("SUCCESS");
      w.Key("details");
      w.StartObject();
      w.Key("id");
      w.String(id);
      w.EndObject();
      w.Key("message");
      w.String("record deleted");
      w.Key("status");
      w.String("success");
      w.EndObject();
    }
    outcomes.push_back(std::move(outcome));
  }
  w.EndArray();
  w.EndObject();
  const bool workflows = !call.trigger || !call.trigger->empty();
  write_log.push_back(std::move(call));
  deliveries_for(o, changes, workflows, o.spec.data_centre, out);
  return json_response(bulk_status(outcomes, 200), {buffer.GetString(), buffer.GetSize()});
}

}  // namespace crmsandbox
