// Records of the HubSpot emulator: types, validation, writes with their timestamps, search
// indexing and webhook notifications, and the JSON of records and errors.
#include <algorithm>

#include "sandbox/hubspot_internal.hpp"
#include "util/json.hpp"

namespace crmsandbox {

const ObjectType *find_object_type(std::string_view name) {
  // Default properties as HubSpot's list and get return them without `properties`.
  static const ObjectType contacts{
      "contacts",
      "contact",
      "CONTACT",
      "lastmodifieddate",
      {"createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"}};
  static const ObjectType companies{
      "companies",
      "company",
      "COMPANY",
      "hs_lastmodifieddate",
      {"createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"}};
  static const ObjectType deals{"deals",
                                "deal",
                                "DEAL",
                                "hs_lastmodifieddate",
                                {"amount", "closedate", "createdate", "dealname", "dealstage",
                                 "hs_lastmodifieddate", "hs_object_id", "pipeline"}};
  if (name == "contacts" || name == "0-1") return &contacts;
  if (name == "companies" || name == "0-2") return &companies;
  if (name == "deals" || name == "0-3") return &deals;
  return nullptr;
}

HttpResponse json_response(int status, std::string body) {
  return {status, "application/json;charset=utf-8", {}, std::move(body)};
}

void write_error(JsonWriter &w, const ApiError &error, bool with_correlation_id) {
  w.StartObject();
  w.Key("status");
  w.String("error");
  w.Key("message");
  w.String(error.message);
  if (with_correlation_id) {
    w.Key("correlationId");
    w.String(random_uuid());
  }
  w.Key("category");
  w.String(error.category);
  if (!error.sub_category.empty()) {
    w.Key("subCategory");
    w.String(error.sub_category);
  }
  if (!error.context_key.empty()) {
    w.Key("context");
    w.StartObject();
    w.Key(error.context_key.c_str(), static_cast<rapidjson::SizeType>(error.context_key.size()));
    w.StartArray();
    for (const auto &value : error.context_values) w.String(value);
    w.EndArray();
    w.EndObject();
  }
  if (!error.code.empty()) {
    w.Key("errors");
    w.StartArray();
    w.StartObject();
    w.Key("message");
    w.String(error.message);
    w.Key("code");
    w.String(error.code);
    w.EndObject();
    w.EndArray();
  }
  w.EndObject();
}

HttpResponse error_response(const ApiError &error) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  write_error(w, error, true);
  return json_response(error.status, {buffer.GetString(), buffer.GetSize()});
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const auto item = text.substr(0, comma);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

std::vector<std::string> Selection::names(const ObjectType &type) const {
  if (!requested) return type.default_properties;
  auto out = *requested;
  for (const auto &always :
       {std::string("hs_object_id"), std::string("createdate"), type.modified_property})
    if (std::find(out.begin(), out.end(), always) == out.end()) out.push_back(always);
  return out;
}

void write_record(JsonWriter &w, const ObjectType &type, int64_t id, const Properties &properties,
                  int64_t created_ms, int64_t updated_ms, bool archived, int64_t archived_ms,
                  const Selection &selection, std::optional<bool> is_new) {
  w.StartObject();
  w.Key("id");
  w.String(std::to_string(id));
  w.Key("properties");
  w.StartObject();
  for (const auto &name : selection.names(type)) {
    w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
    const auto it = properties.find(name);
    if (it == properties.end())
      w.Null();  // (guess) requested properties without a value come back as null
    else
      w.String(it->second);
  }
  w.EndObject();
  w.Key("createdAt");
  w.String(iso8601_ms(created_ms));
  w.Key("updatedAt");
  w.String(iso8601_ms(updated_ms));
  w.Key("archived");
  w.Bool(archived);
  if (archived) {
    w.Key("archivedAt");
    w.String(iso8601_ms(archived_ms));
  }
  if (is_new) {
    w.Key("new");
    w.Bool(*is_new);
  }
  w.EndObject();
}

std::optional<std::string> read_properties(const rapidjson::Value &object, Properties &out) {
  if (!object.IsObject()) return "properties must be an object";
  for (const auto &member : object.GetObject()) {
    const std::string name(member.name.GetString(), member.name.GetStringLength());
    const auto &value = member.value;
    if (value.IsString())
      out[name] = std::string(value.GetString(), value.GetStringLength());
    else if (value.IsNull())
      out[name] = "";
    else if (value.IsBool())
      out[name] = value.GetBool() ? "true" : "false";
    else if (value.IsNumber())
      out[name] = crmhost::json::to_string(value);
    else
      return "Property \"" + name + "\" has a value that is neither a string, number nor boolean";
  }
  return std::nullopt;
}

namespace {

bool valid_email(const std::string &email) {
  const auto at = email.find('@');
  if (at == 0 || at == std::string::npos || email.find('@', at + 1) != std::string::npos)
    return false;
  const auto domain = email.substr(at + 1);
  const auto dot = domain.find('.');
  return dot != std::string::npos && dot > 0 && domain.back() != '.' &&
         email.find_first_of(" \t\r\n,;<>") == std::string::npos;
}

std::string trim(const std::string &text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t\r\n") - first + 1);
}

}  // namespace

Portal &HubSpotSandbox::Impl::portal(int64_t id) {
  auto &p = portals[id];
  p.id = id;
  return p;
}

StoredRecord *HubSpotSandbox::Impl::find(Portal &p, const ObjectType &type, const std::string &id,
                                         const std::string &id_property, bool archived) {
  auto &table = p.tables[type.plural];
  if (id_property.empty() || id_property == "hs_object_id") {
    const auto number = parse_time_ms(id);  // a plain integer
    if (!number || id.find_first_not_of("0123456789") != std::string::npos) return nullptr;
    const auto it = table.records.find(*number);
    if (it == table.records.end() || it->second.archived != archived) return nullptr;
    return &it->second;
  }
  // (guess) a lookup by email (an upsert's idProperty) ignores case and surrounding spaces.
  const bool email = type.plural == "contacts" && id_property == "email";
  if (email && !archived) {
    const auto it = table.by_email.find(lowercase(trim(id)));
    return it == table.by_email.end() ? nullptr : &table.records.at(it->second);
  }
  for (auto &[key, record] : table.records) {
    if (record.archived != archived) continue;
    const auto value = record.properties.find(id_property);
    if (value != record.properties.end() &&
        (email ? lowercase(value->second) == lowercase(trim(id)) : value->second == id))
      return &record;
  }
  return nullptr;
}

std::optional<ApiError> HubSpotSandbox::Impl::validate(Portal &p, const ObjectType &type,
                                                       Properties &properties, int64_t self_id) {
  // Read-only values HubSpot maintains itself are ignored (guess: HubSpot refuses some).
  for (const auto *name : {"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate"})
    properties.erase(name);
  if (type.plural != "contacts") return std::nullopt;
  const auto email = properties.find("email");
  if (email == properties.end() || email->second.empty()) return std::nullopt;
  // (guess) HubSpot stores emails trimmed and in lower case; the fact sheet does not say.
  email->second = lowercase(trim(email->second));
  if (!valid_email(email->second)) {
    ApiError error;
    error.message =
        "Property values were not valid: [{\"isValid\":false,\"message\":\"Email "
        "address " +
        email->second + " is invalid\",\"error\":\"INVALID_EMAIL\",\"name\":\"email\"}]";
    error.code = "INVALID_EMAIL";
    return error;
  }
  const auto &by_email = p.tables[type.plural].by_email;
  const auto existing = by_email.find(email->second);
  if (existing != by_email.end() && existing->second != self_id) {
    ApiError error;
    error.status = 409;
    error.category = "CONFLICT";
    error.message = "Contact already exists. Existing ID: " + std::to_string(existing->second);
    return error;
  }
  return std::nullopt;
}

void HubSpotSandbox::Impl::index(StoredRecord &record, int64_t now) {
  Snapshot snapshot{record.properties, record.created_ms, record.updated_ms};
  if (indexing_delay_ms <= 0) {
    record.indexed = std::move(snapshot);
    record.pending.reset();
    return;
  }
  // Search keeps answering from the previous version until this one is indexed.
  record.pending = std::move(snapshot);
  record.pending_at_ms = now + indexing_delay_ms;
}

const Snapshot *HubSpotSandbox::Impl::searchable(StoredRecord &record, int64_t now) {
  if (record.pending && now >= record.pending_at_ms) {
    record.indexed = std::move(record.pending);
    record.pending.reset();
  }
  if (record.archived || !record.indexed) return nullptr;
  return &*record.indexed;
}

void HubSpotSandbox::Impl::notify(const Portal &p, const ObjectType &type, const std::string &kind,
                                  const StoredRecord &record, const std::string &property,
                                  const std::string &value) {
  HubSpotChange change;
  change.portal_id = p.id;
  change.object = type.singular;
  change.kind = kind;
  change.object_id = record.id;
  change.property_name = property;
  change.property_value = value;
  change.occurred_at_ms = record.archived ? record.archived_ms : record.updated_ms;
  webhooks.emit(change);
}

int64_t HubSpotSandbox::Impl::insert(Portal &p, const ObjectType &type, Properties properties,
                                     int64_t created_ms, int64_t updated_ms, bool notify_changes) {
  const int64_t now = now_ms();
  StoredRecord record;
  record.id = next_id++;
  record.created_ms = created_ms ? created_ms : now;
  record.updated_ms = updated_ms ? updated_ms : record.created_ms;
  std::erase_if(properties, [](const auto &kv) { return kv.second.empty(); });
  const Properties given = properties;
  record.properties = std::move(properties);
  record.properties["hs_object_id"] = std::to_string(record.id);
  record.properties["createdate"] = iso8601_ms(record.created_ms);
  record.properties[type.modified_property] = iso8601_ms(record.updated_ms);
  auto &table = p.tables[type.plural];
  if (type.plural == "contacts") {
    const auto email = record.properties.find("email");
    if (email != record.properties.end()) table.by_email[email->second] = record.id;
  }
  auto &stored = table.records[record.id] = std::move(record);
  if (!notify_changes) {  // seeded: already there before anyone looked, so indexed at once
    stored.indexed = Snapshot{stored.properties, stored.created_ms, stored.updated_ms};
    return stored.id;
  }
  index(stored, now);
  notify(p, type, "creation", stored);
  // (guess) HubSpot also reports the properties set at creation as property changes.
  if (webhooks.wants(type.singular, "propertyChange"))
    for (const auto &[name, value] : given) notify(p, type, "propertyChange", stored, name, value);
  return stored.id;
}

void HubSpotSandbox::Impl::apply(Portal &p, const ObjectType &type, StoredRecord &record,
                                 const Properties &changes) {
  std::vector<std::pair<std::string, std::string>> changed;
  auto &table = p.tables[type.plural];
  for (const auto &[name, value] : changes) {
    const auto it = record.properties.find(name);
    if (value.empty()) {
      if (it == record.properties.end()) continue;
      record.properties.erase(it);
    } else {
      if (it != record.properties.end() && it->second == value) continue;
      record.properties[name] = value;
    }
    changed.emplace_back(name, value);
    if (type.plural == "contacts" && name == "email") {
      std::erase_if(table.by_email, [&](const auto &kv) { return kv.second == record.id; });
      if (!value.empty()) table.by_email[value] = record.id;
    }
  }
  if (changed.empty()) return;  // (guess) an update changing nothing keeps the dates
  const int64_t now = now_ms();
  record.updated_ms = std::max(now, record.updated_ms);
  record.properties[type.modified_property] = iso8601_ms(record.updated_ms);
  index(record, now);
  for (const auto &[name, value] : changed) notify(p, type, "propertyChange", record, name, value);
}

void HubSpotSandbox::Impl::archive_record(Portal &p, const ObjectType &type, StoredRecord &record) {
  if (record.archived) return;
  record.archived = true;
  record.archived_ms = now_ms();
  std::erase_if(p.tables[type.plural].by_email,
                [&](const auto &kv) { return kv.second == record.id; });
  notify(p, type, "deletion", record);
}

void HubSpotSandbox::Impl::restore_record(Portal &p, const ObjectType &type, StoredRecord &record) {
  if (!record.archived) return;
  record.archived = false;
  const auto email = record.properties.find("email");
  auto &by_email = p.tables[type.plural].by_email;
  // (guess) a restored contact whose email was taken meanwhile loses it
  if (type.plural == "contacts" && email != record.properties.end()) {
    if (by_email.count(email->second))
      record.properties.erase(email);
    else
      by_email[email->second] = record.id;
  }
  const int64_t now = now_ms();
  record.updated_ms = std::max(now, record.updated_ms);
  record.properties[type.modified_property] = iso8601_ms(record.updated_ms);
  index(record, now);
  notify(p, type, "restore", record);
}

std::optional<ApiError> HubSpotSandbox::Impl::merge_records(Portal &p, const ObjectType &type,
                                                            const std::string &primary_id,
                                                            const std::string &merged_id,
                                                            StoredRecord **out) {
  auto *primary = find(p, type, primary_id, "", false);
  auto *merged = find(p, type, merged_id, "", false);
  if (!primary || !merged) {
    ApiError error;
    error.status = 404;
    error.category = "OBJECT_NOT_FOUND";
    error.message = "Object not found.  objectId are usually numeric.";
    error.context_key = "id";
    error.context_values = {primary ? merged_id : primary_id};
    return error;
  }
  if (primary == merged) {
    ApiError error;
    error.message = "Cannot merge an object with itself";  // (guess) the wording
    return error;
  }
  // (guess) the primary's values win; the merged record fills the primary's empty properties.
  Properties fill;
  for (const auto &[name, value] : merged->properties)
    if (!primary->properties.count(name) && name != "email" && name != "hs_object_id")
      fill[name] = value;
  merged->archived = true;
  merged->archived_ms = now_ms();
  std::erase_if(p.tables[type.plural].by_email,
                [&](const auto &kv) { return kv.second == merged->id; });
  apply(p, type, *primary, fill);
  HubSpotChange change;
  change.portal_id = p.id;
  change.object = type.singular;
  change.kind = "merge";
  change.object_id = primary->id;
  change.primary_object_id = primary->id;
  change.merged_object_ids = {merged->id};
  change.occurred_at_ms = merged->archived_ms;
  webhooks.emit(change);
  *out = primary;
  return std::nullopt;
}

}  // namespace crmsandbox
