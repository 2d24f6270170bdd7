// The CRM v3 object endpoints of the HubSpot emulator: list, get, create, update, archive,
// merge and the batch operations. Each runs with the state mutex held.
#include <algorithm>
#include <set>

#include <rapidjson/error/en.h>

#include "sandbox/hubspot_internal.hpp"

namespace crmsandbox {

namespace {

constexpr size_t kMaxBatchInputs = 100;  // (2nd) HubSpot's batch size
constexpr int64_t kMaxListLimit = 100;   // (2nd) HubSpot's page size

ApiError validation_error(std::string message) {
  ApiError error;
  error.message = std::move(message);
  return error;
}

ApiError not_found(const std::string &id) {
  ApiError error;
  error.status = 404;
  error.category = "OBJECT_NOT_FOUND";
  error.message = "Object not found.  objectId are usually numeric.";
  error.context_key = "id";
  error.context_values = {id};
  return error;
}

// Parses a request body; the error in HubSpot's shape when it is not a JSON object.
std::optional<ApiError> parse_body(const HttpRequest &request, rapidjson::Document &document) {
  document.Parse(request.body.data(), request.body.size());
  if (document.HasParseError())
    return validation_error("Invalid input JSON on line 1, column " +
                            std::to_string(document.GetErrorOffset() + 1) + ": " +
                            rapidjson::GetParseError_En(document.GetParseError()));  // (guess)
  if (!document.IsObject()) return validation_error("Invalid input JSON: expected an object");
  return std::nullopt;
}

std::string string_member(const rapidjson::Value &object, const char *key) {
  if (!object.IsObject()) return {};
  const auto it = object.FindMember(key);
  if (it == object.MemberEnd()) return {};
  if (it->value.IsString()) return {it->value.GetString(), it->value.GetStringLength()};
  if (it->value.IsInt64()) return std::to_string(it->value.GetInt64());
  return {};
}

// `properties=a,b` and `properties=a&properties=b` alike, as HubSpot accepts both.
Selection selection_of(std::string_view query) {
  Selection selection;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const auto pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos && url_decode(pair.substr(0, eq)) == "properties") {
      if (!selection.requested) selection.requested.emplace();
      for (auto &name : split_list(url_decode(pair.substr(eq + 1))))
        selection.requested->push_back(std::move(name));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return selection;
}

Selection all_of(const StoredRecord &record) {
  Selection selection;
  selection.requested.emplace();
  for (const auto &[name, value] : record.properties) selection.requested->push_back(name);
  return selection;
}

void write(JsonWriter &w, const ObjectType &type, const StoredRecord &record,
           const Selection &selection, std::optional<bool> is_new = std::nullopt) {
  write_record(w, type, record.id, record.properties, record.created_ms, record.updated_ms,
               record.archived, record.archived_ms, selection, is_new);
}

HttpResponse record_response(int status, const ObjectType &type, const StoredRecord &record,
                             const Selection &selection) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  write(w, type, record, selection);
  return json_response(status, {buffer.GetString(), buffer.GetSize()});
}

std::string query_value(const std::map<std::string, std::string> &query, const char *key) {
  const auto it = query.find(key);
  return it == query.end() ? std::string() : it->second;
}

// The list cursor: opaque to clients; here the base64 of the next id.
std::optional<int64_t> decode_after(std::string text) {
  if (text.find('%') != std::string::npos) text = url_decode(text, false);  // encoded twice
  std::replace(text.begin(), text.end(), ' ', '+');  // a '+' that was not percent-encoded
  const auto raw = base64_decode(text);
  if (!raw || raw->empty() || raw->find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoll(*raw);
}

}  // namespace

HttpResponse HubSpotSandbox::Impl::list(Portal &p, const ObjectType &type,
                                        const HttpRequest &request) {
  const auto query = parse_query(request.query);
  int64_t limit = 10;  // HubSpot's default page size
  if (const auto text = query_value(query, "limit"); !text.empty()) {
    const auto number = parse_number(text);
    if (!number || *number < 1 || *number > kMaxListLimit || *number != int64_t(*number))
      return error_response(validation_error("limit must be an integer from 1 to 100"));  // (guess)
    limit = static_cast<int64_t>(*number);
  }
  int64_t from = 0;
  if (const auto after = query_value(query, "after"); !after.empty()) {
    const auto id = decode_after(after);
    if (!id) return error_response(validation_error("Invalid paging cursor: " + after));  // (guess)
    from = *id;
  }
  const bool archived = query_value(query, "archived") == "true";
  const auto selection = selection_of(request.query);
  auto &records = p.tables[type.plural].records;
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("results");
  w.StartArray();
  int64_t taken = 0;
  auto it = records.lower_bound(from);
  for (; it != records.end(); ++it) {
    if (it->second.archived != archived) continue;
    if (taken == limit) break;
    write(w, type, it->second, selection);
    ++taken;
  }
  w.EndArray();
  if (it != records.end()) {  // another record of this kind is left: the next page starts there
    // Percent-encoded as in HubSpot's own responses ("NTI1Cg%3D%3D").
    std::string after;
    for (const char c : base64_encode(std::to_string(it->first)))
      after += c == '=' ? "%3D" : c == '+' ? "%2B" : c == '/' ? "%2F" : std::string(1, c);
    w.Key("paging");
    w.StartObject();
    w.Key("next");
    w.StartObject();
    w.Key("after");
    w.String(after);
    w.Key("link");
    w.String(base_link + request.path + "?after=" + after);
    w.EndObject();
    w.EndObject();
  }
  w.EndObject();
  return json_response(200, {buffer.GetString(), buffer.GetSize()});
}

HttpResponse HubSpotSandbox::Impl::get(Portal &p, const ObjectType &type, const std::string &id,
                                       const HttpRequest &request) {
  const auto query = parse_query(request.query);
  const auto *record =
      find(p, type, id, query_value(query, "idProperty"), query_value(query, "archived") == "true");
  if (!record) return error_response(not_found(id));
  return record_response(200, type, *record, selection_of(request.query));
}

HttpResponse HubSpotSandbox::Impl::create(Portal &p, const ObjectType &type,
                                          const HttpRequest &request) {
  rapidjson::Document body;
  if (auto error = parse_body(request, body)) return error_response(*error);
  Properties properties;
  const auto member = body.FindMember("properties");
  if (member == body.MemberEnd())
    return error_response(validation_error("properties are required"));  // (guess)
  if (auto message = read_properties(member->value, properties))
    return error_response(validation_error(*message));
  if (auto error = validate(p, type, properties, 0)) return error_response(*error);
  const auto id = insert(p, type, std::move(properties), 0, 0, true);
  const auto &record = p.tables[type.plural].records.at(id);
  return record_response(201, type, record, all_of(record));
}

HttpResponse HubSpotSandbox::Impl::patch(Portal &p, const ObjectType &type, const std::string &id,
                                         const HttpRequest &request) {
  const auto query = parse_query(request.query);
  auto *record = find(p, type, id, query_value(query, "idProperty"), false);
  if (!record) return error_response(not_found(id));
  rapidjson::Document body;
  if (auto error = parse_body(request, body)) return error_response(*error);
  Properties properties;
  const auto member = body.FindMember("properties");
  if (member == body.MemberEnd())
    return error_response(validation_error("properties are required"));  // (guess)
  if (auto message = read_properties(member->value, properties))
    return error_response(validation_error(*message));
  if (auto error = validate(p, type, properties, record->id)) return error_response(*error);
  apply(p, type, *record, properties);
  return record_response(200, type, *record, all_of(*record));
}

HttpResponse HubSpotSandbox::Impl::archive(Portal &p, const ObjectType &type, const std::string &id,
                                           const HttpRequest &) {
  // (guess) HubSpot answers 204 whether or not the record existed
  if (auto *record = find(p, type, id, "", false)) archive_record(p, type, *record);
  return {204, "text/plain", {}, ""};
}

HttpResponse HubSpotSandbox::Impl::merge(Portal &p, const ObjectType &type,
                                         const HttpRequest &request) {
  rapidjson::Document body;
  if (auto error = parse_body(request, body)) return error_response(*error);
  const auto primary = string_member(body, "primaryObjectId");
  const auto merged = string_member(body, "objectIdToMerge");
  if (primary.empty() || merged.empty())
    return error_response(validation_error("primaryObjectId and objectIdToMerge are required"));
  StoredRecord *result = nullptr;
  if (auto error = merge_records(p, type, primary, merged, &result)) return error_response(*error);
  return record_response(200, type, *result, all_of(*result));
}

HttpResponse HubSpotSandbox::Impl::batch(Portal &p, const ObjectType &type,
                                         const std::string &operation, const HttpRequest &request) {
  if (operation != "read" && operation != "create" && operation != "update" &&
      operation != "upsert" && operation != "archive") {
    ApiError error = not_found(operation);
    error.message = "No batch operation " + operation;
    return error_response(error);
  }
  const auto started = now_ms();
  rapidjson::Document body;
  if (auto error = parse_body(request, body)) return error_response(*error);
  const auto inputs = body.FindMember("inputs");
  if (inputs == body.MemberEnd() || !inputs->value.IsArray())
    return error_response(validation_error("inputs must be an array"));  // (guess)
  if (inputs->value.Size() > kMaxBatchInputs)
    return error_response(validation_error(  // (guess) the wording
        "Too many inputs: " + std::to_string(inputs->value.Size()) + " given, at most " +
        std::to_string(kMaxBatchInputs) + " allowed"));

  // HubSpot refuses a batch that names one record twice.
  if (operation == "update" || operation == "upsert" || operation == "read") {
    std::set<std::string> seen;
    for (const auto &input : inputs->value.GetArray()) {
      const auto id = string_member(input, "id");
      if (!id.empty() && !seen.insert(lowercase(id)).second)
        return error_response(validation_error("Duplicate IDs found in batch input: [" + id + "]"));
    }
  }

  Selection read_selection;
  if (const auto properties = body.FindMember("properties");
      properties != body.MemberEnd() && properties->value.IsArray()) {
    read_selection.requested.emplace();
    for (const auto &name : properties->value.GetArray())
      if (name.IsString()) read_selection.requested->emplace_back(name.GetString());
  }
  const auto batch_id_property = string_member(body, "idProperty");

  rapidjson::StringBuffer results_buffer;
  JsonWriter results(results_buffer);
  results.StartArray();
  std::vector<ApiError> errors;
  std::vector<std::string> missing;  // read, update, archive: one error naming every id
  for (const auto &input : inputs->value.GetArray()) {
    const auto id = string_member(input, "id");
    auto id_property = string_member(input, "idProperty");
    if (id_property.empty()) id_property = batch_id_property;
    if (operation == "read" || operation == "archive") {
      auto *record = find(p, type, id, id_property, false);
      if (!record) {
        missing.push_back(id);
      } else if (operation == "read") {
        write(results, type, *record, read_selection);
      } else {
        archive_record(p, type, *record);
      }
      continue;
    }
    Properties properties;
    if (!input.IsObject() || !input.HasMember("properties")) {
      errors.push_back(validation_error("properties are required"));  // (guess)
      continue;
    }
    if (auto message = read_properties(input["properties"], properties)) {
      errors.push_back(validation_error(*message));
      continue;
    }
    StoredRecord *record = nullptr;
    if (operation != "create") record = find(p, type, id, id_property, false);
    if (operation == "update" && !record) {
      missing.push_back(id);
      continue;
    }
    const bool creating = !record;
    if (creating && operation == "upsert") {
      if (id_property.empty() || id_property == "hs_object_id") {
        missing.push_back(id);  // (guess) an upsert by object id cannot create
        continue;
      }
      properties[id_property] = id;
    }
    if (auto error = validate(p, type, properties, creating ? 0 : record->id)) {
      error->context_key = operation == "create" ? "" : "id";
      error->context_values = {id};
      errors.push_back(std::move(*error));
      continue;
    }
    if (creating) {
      const auto new_id = insert(p, type, std::move(properties), 0, 0, true);
      record = &p.tables[type.plural].records.at(new_id);
    } else {
      apply(p, type, *record, properties);
    }
    write(results, type, *record, all_of(*record),
          operation == "upsert" ? std::optional<bool>(creating) : std::nullopt);
  }
  results.EndArray();
  if (!missing.empty()) {
    ApiError error = not_found("");
    error.message = "Could not get some " + type.label +
                    " objects, they may be deleted or not exist. Check that ids are valid.";
    error.context_key = "ids";
    error.context_values = missing;
    errors.push_back(std::move(error));
  }
  if (operation == "archive") return {204, "text/plain", {}, ""};

  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("status");
  w.String("COMPLETE");
  w.Key("results");
  w.RawValue(results_buffer.GetString(), results_buffer.GetSize(), rapidjson::kArrayType);
  if (!errors.empty()) {
    w.Key("numErrors");
    w.Int64(static_cast<int64_t>(errors.size()));
    w.Key("errors");
    w.StartArray();
    for (const auto &error : errors) write_error(w, error, false);
    w.EndArray();
  }
  w.Key("startedAt");
  w.String(iso8601_ms(started));
  w.Key("completedAt");
  w.String(iso8601_ms(now_ms()));
  w.EndObject();
  const int status = !errors.empty() ? 207 : operation == "create" ? 201 : 200;
  return json_response(status, {buffer.GetString(), buffer.GetSize()});
}

}  // namespace crmsandbox
