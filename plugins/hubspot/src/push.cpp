// push: HubSpot's batch create/update/upsert (100 inputs a call) and per-record DELETE (which
// HubSpot calls archive, so archive is the same call), with one result per input mapped from
// HubSpot's results[] and errors[] (207 partial failures included); match only looks up.
#include <algorithm>
#include <cctype>
#include <map>

#include "connector.hpp"

namespace crmhost::hubspot {

using rapidjson::Value;
using sdk::Error;

struct HubSpotConnector::PushItem : sdk::PushOutcome {
  size_t index = 0;
  std::string id, match_value;
  std::string match_key;  // match_value as compared: normalised, or lower-cased by default
  const Value *data = nullptr;
};

namespace {

using Alloc = rapidjson::Document::AllocatorType;

using sdk::get_string;

// Properties HubSpot computes itself; writing them is refused, so they are left out.
bool read_only(std::string_view name) {
  return name == "hs_object_id" || name == "createdate" || name == "lastmodifieddate" ||
         name == "hs_lastmodifieddate";
}

// HubSpot properties are scalars: arrays become its `;` multi-select text, null clears a value.
// Returns an error message for what cannot be a property.
std::string to_properties(const Value &data, Value &out, Alloc &alloc) {
  out.SetObject();
  for (const auto &m : data.GetObject()) {
    const std::string name(m.name.GetString(), m.name.GetStringLength());
    if (read_only(name)) continue;
    const Value &v = m.value;
    Value converted;
    if (v.IsNull()) {
      converted.SetString("", alloc);
    } else if (v.IsString()) {
      converted.CopyFrom(v, alloc);
    } else if (v.IsNumber()) {
      // HubSpot types every property value as a string ("4200", not 4200.0).
      converted.SetString(sdk::scalar_text(v).c_str(), alloc);
    } else if (v.IsBool()) {
      converted.SetString(v.GetBool() ? "true" : "false", alloc);
    } else if (v.IsArray()) {
      std::string joined;
      for (const auto &item : v.GetArray()) {
        if (item.IsObject() || item.IsArray())
          return "property \"" + name + "\" holds nested values; HubSpot takes scalars";
        joined += (joined.empty() ? "" : ";") + sdk::scalar_text(item);
      }
      converted.SetString(joined.c_str(), alloc);
    } else {
      return "property \"" + name + "\" is an object; HubSpot takes scalars";
    }
    out.AddMember(Value(name.c_str(), alloc), converted, alloc);
  }
  return "";
}

// Whether a written record's properties hold every value an input sent (compared as text, case
// aside, as HubSpot may normalise e.g. emails); values it did not echo are not held against it.
bool holds(const Value &sent, const Value &returned) {
  for (const auto &m : sent.GetObject()) {
    if (read_only(m.name.GetString())) continue;
    auto it = returned.FindMember(m.name);
    if (it == returned.MemberEnd()) continue;
    std::string a = sdk::scalar_text(m.value);
    if (m.value.IsArray())  // sent as HubSpot's `;` multi-select text
      for (const auto &item : m.value.GetArray())
        a += (a.empty() ? "" : ";") + sdk::scalar_text(item);
    const std::string b = sdk::scalar_text(it->value);
    if (!(m.value.IsNull() && b.empty()) && sdk::lower_ascii(a) != sdk::lower_ascii(b))
      return false;
  }
  return true;
}

// HubSpot's error category -> crmhost's code and whether a retry can help.
std::pair<std::string, bool> classify(const std::string &category, int status) {
  if (category == "VALIDATION_ERROR" || category == "INVALID_EMAIL")
    return {"invalid_input", false};
  if (category == "OBJECT_NOT_FOUND") return {"not_found", false};
  if (category == "CONFLICT") return {"conflict", false};
  if (category == "RATE_LIMITS") return {"rate_limited", true};
  if (status == 429) return {"rate_limited", true};
  if (status >= 500 || status == 0) return {"remote", true};
  if (status == 404) return {"not_found", false};
  if (status == 409) return {"conflict", false};
  if (status == 400) return {"invalid_input", false};
  return {"remote", false};
}

std::string error_message(const Value &e, int status) {
  std::string message = get_string(e, "message").substr(0, 300);
  const std::string category = get_string(e, "category");
  if (message.empty()) message = "HubSpot answered " + std::to_string(status);
  return category.empty() ? message : category + ": " + message;
}

// The ids an error's context names (HubSpot's `context.ids`; objectWriteTraceId (guess)).
std::vector<std::string> context_values(const Value &e, const char *key) {
  std::vector<std::string> out;
  auto context = e.FindMember("context");
  if (context == e.MemberEnd() || !context->value.IsObject()) return out;
  auto it = context->value.FindMember(key);
  if (it == context->value.MemberEnd()) return out;
  if (it->value.IsArray()) {
    for (const auto &v : it->value.GetArray()) out.push_back(sdk::scalar_text(v));
  } else {
    out.push_back(sdk::scalar_text(it->value));
  }
  return out;
}

}  // namespace

crm_status HubSpotConnector::push(const Value &request, rapidjson::Document &result) {
  const ObjectInfo &object = object_of(request, "push");
  std::string mode = get_string(request, "mode");
  if (mode.empty()) mode = "upsert";
  if (mode != "upsert" && mode != "create" && mode != "update" && mode != "delete" &&
      mode != "archive" && mode != "match")
    throw Error(CRM_ERR_INVALID_INPUT, "push request: mode \"" + mode +
                                           "\" is not upsert, create, update, delete, archive "
                                           "or match");
  const sdk::MatchNormalize normalize = sdk::MatchNormalize::from_request(request);
  // delete, archive and match only name a record: they need no data.
  const bool names_only = mode == "delete" || mode == "archive" || mode == "match";
  if (!request.HasMember("records") || !request["records"].IsArray())
    throw Error(CRM_ERR_INVALID_INPUT, "push request: \"records\" must be an array");
  const auto &records = request["records"];
  if (records.Size() > 100)
    throw Error(CRM_ERR_INVALID_INPUT, "push request: " + std::to_string(records.Size()) +
                                           " records exceed max_batch 100");
  const bool contact = std::string_view(object.name) == "contact";
  std::string match_on = get_string(request, "match_on");
  if (match_on.empty() && contact) match_on = "email";

  std::vector<PushItem> items(records.Size());
  for (rapidjson::SizeType i = 0; i < records.Size(); ++i) {
    PushItem &item = items[i];
    const Value &r = records[i];
    item.index = i;
    item.ref = get_string(r, "ref");
    item.id = get_string(r, "id");
    if (r.IsObject() && r.HasMember("data") && r["data"].IsObject()) item.data = &r["data"];
    if (item.data && !match_on.empty()) item.match_value = get_string(*item.data, match_on.c_str());
    item.match_key =
        normalize.any() ? normalize.apply(item.match_value) : sdk::lower_ascii(item.match_value);
    if (!names_only && !item.data) item.error("invalid_input", "\"data\" must be an object", false);
  }

  bool written = false;
  if (mode == "match") {
    confirm_ids(object, items);  // before the lookup below fills in ids
    resolve_by_property(object, match_on, normalize, items);
    for (auto &item : items) {
      if (item.done) continue;
      if (item.id.empty())
        item.error("not_found",
                   "no " + std::string(object.name) + " has this " +
                       (match_on.empty() ? std::string("match key") : match_on),
                   false);
      else
        item.succeed(item.id, false);
    }
  } else if (mode == "delete" || mode == "archive") {
    resolve_by_property(object, match_on, normalize, items);
    for (auto &item : items) {
      if (item.done) continue;
      if (item.id.empty())
        item.error("not_found", "no " + std::string(object.name) + " matches this record", false);
      else
        delete_one(object, item, written);
    }
  } else {
    // Contacts are upserted on email by HubSpot itself; other match keys are looked up first.
    const bool native_upsert = contact && match_on == "email";
    if (mode != "create" && !native_upsert) resolve_by_property(object, match_on, normalize, items);
    std::vector<PushItem *> updates, upserts, creates;
    for (auto &item : items) {
      if (item.done) continue;
      if (mode == "create") {
        creates.push_back(&item);
      } else if (!item.id.empty()) {
        updates.push_back(&item);
      } else if (native_upsert && !item.match_key.empty()) {
        // The value HubSpot is asked for: normalised when the request says so.
        if (normalize.any()) item.match_value = item.match_key;
        upserts.push_back(&item);
      } else if (mode == "update") {
        item.error("not_found",
                   "no " + std::string(object.name) + " has this id or " +
                       (match_on.empty() ? std::string("match key") : match_on),
                   false);
      } else {
        creates.push_back(&item);
      }
    }
    if (!updates.empty()) push_batch(object, "update", updates, "", written);
    // HubSpot refuses one upsert batch naming the same email twice: later duplicates go in a
    // batch of their own.
    while (!upserts.empty()) {
      std::vector<PushItem *> round, later;
      std::set<std::string> seen;
      for (PushItem *item : upserts)
        (seen.insert(item->match_key).second ? round : later).push_back(item);
      push_batch(object, "upsert", round, "email", written);
      upserts = std::move(later);
    }
    if (!creates.empty()) push_batch(object, "create", creates, "", written);
  }

  auto &alloc = result.GetAllocator();
  Value results(rapidjson::kArrayType);
  for (const auto &item : items)
    results.PushBack(item.to_json(alloc, "HubSpot returned no result"), alloc);
  result.AddMember("results", results, alloc);
  return CRM_OK;
}

// HubSpot's IN on a string property matches lower-case values only, so the values go lower-cased
// (a superset of what the match key compares equal) and the results are compared here.
void HubSpotConnector::resolve_by_property(const ObjectInfo &object, const std::string &property,
                                           const sdk::MatchNormalize &normalize,
                                           std::vector<PushItem> &items) {
  std::vector<PushItem *> wanted;
  for (auto &item : items)
    if (!item.done && item.id.empty() && !item.match_key.empty()) wanted.push_back(&item);
  if (wanted.empty() || property.empty()) return;
  // One search with IN finds the records that already carry these values.
  rapidjson::Document body(rapidjson::kObjectType);
  auto &a = body.GetAllocator();
  Value values(rapidjson::kArrayType), filter(rapidjson::kObjectType),
      filters(rapidjson::kArrayType), group(rapidjson::kObjectType), groups(rapidjson::kArrayType),
      properties(rapidjson::kArrayType), sort(rapidjson::kObjectType), sorts(rapidjson::kArrayType);
  std::set<std::string> distinct;
  for (PushItem *item : wanted)
    if (const std::string value = sdk::lower_ascii(item->match_key); distinct.insert(value).second)
      values.PushBack(Value(value.c_str(), a), a);
  filter.AddMember("propertyName", Value(property.c_str(), a), a);
  filter.AddMember("operator", "IN", a);
  filter.AddMember("values", values, a);
  filters.PushBack(filter, a);
  group.AddMember("filters", filters, a);
  groups.PushBack(group, a);
  properties.PushBack(Value(property.c_str(), a), a);
  sort.AddMember("propertyName", "hs_object_id", a);
  sort.AddMember("direction", "ASCENDING", a);
  sorts.PushBack(sort, a);
  body.AddMember("filterGroups", groups, a);
  body.AddMember("sorts", sorts, a);
  body.AddMember("properties", properties, a);
  body.AddMember("limit", 200, a);
  // The oldest record holding a value wins when several do. More than one page (200 results)
  // only when values are held many times over; the 10,000-result ceiling ends the paging.
  std::map<std::string, std::string> id_by_key;
  for (int page = 0; page < 50; ++page) {
    const rapidjson::Document found =
        api_json("POST", std::string("/crm/v3/objects/") + object.path + "/search",
                 sdk::to_json(body), CRM_HTTP_IDEMPOTENT, "search");
    if (found.HasMember("results") && found["results"].IsArray())
      for (const auto &r : found["results"].GetArray())
        if (r.HasMember("properties") && r["properties"].IsObject()) {
          const std::string value = get_string(r["properties"], property.c_str());
          id_by_key.emplace(normalize.any() ? normalize.apply(value) : sdk::lower_ascii(value),
                            get_string(r, "id"));
        }
    std::string after;
    if (auto paging = found.FindMember("paging");
        paging != found.MemberEnd() && paging->value.IsObject() && paging->value.HasMember("next"))
      after = get_string(paging->value["next"], "after");
    if (after.empty()) break;
    if (body.HasMember("after")) body.RemoveMember("after");
    body.AddMember("after", Value(after.c_str(), a), a);
  }
  for (PushItem *item : wanted)
    if (auto it = id_by_key.find(item->match_key); it != id_by_key.end()) item->id = it->second;
}

// match mode: the inputs that came with an id are ok when HubSpot holds that record (not
// archived); one batch read, which unlike search sees a record as soon as it is written.
void HubSpotConnector::confirm_ids(const ObjectInfo &object, std::vector<PushItem> &items) {
  rapidjson::Document body(rapidjson::kObjectType);
  auto &a = body.GetAllocator();
  Value inputs(rapidjson::kArrayType), properties(rapidjson::kArrayType);
  std::set<std::string> distinct;
  for (const auto &item : items)
    if (!item.done && !item.id.empty() && distinct.insert(item.id).second) {
      Value input(rapidjson::kObjectType);
      input.AddMember("id", Value(item.id.c_str(), a), a);
      inputs.PushBack(input, a);
    }
  if (inputs.Empty()) return;
  properties.PushBack("hs_object_id", a);
  body.AddMember("inputs", inputs, a);
  body.AddMember("properties", properties, a);
  const rapidjson::Document found =
      api_json("POST", std::string("/crm/v3/objects/") + object.path + "/batch/read",
               sdk::to_json(body), CRM_HTTP_IDEMPOTENT);
  std::set<std::string> present;
  if (found.HasMember("results") && found["results"].IsArray())
    for (const auto &r : found["results"].GetArray()) present.insert(get_string(r, "id"));
  for (auto &item : items)
    if (!item.done && !item.id.empty() && !present.count(item.id))
      item.error("not_found", "no " + std::string(object.name) + " has id " + item.id, false);
}

void HubSpotConnector::delete_one(const ObjectInfo &object, PushItem &item, bool &written) {
  sdk::HttpResponse response;
  try {
    response = api("DELETE", std::string("/crm/v3/objects/") + object.path + "/" + item.id, {}, 0);
  } catch (const Error &e) {
    if (!written) throw;
    item.error("transport", e.what(), true);
    return;
  }
  // Already gone is what a delete wants: a repeated delete must not dead-letter.
  if ((response.status >= 200 && response.status <= 299) || response.status == 404) {
    item.succeed(item.id, false);
    written = true;
    return;
  }
  if (!written) fail(response, "DELETE " + std::string(object.path));
  rapidjson::Document doc;
  sdk::try_parse_json(response.body, doc);  // an error's detail, when it has one
  const auto [code, retry] =
      classify(doc.IsObject() ? get_string(doc, "category") : "", response.status);
  item.error(code,
             doc.IsObject() ? error_message(doc, response.status)
                            : "HubSpot answered " + std::to_string(response.status),
             retry);
}

void HubSpotConnector::push_batch(const ObjectInfo &object, const std::string &action,
                                  std::vector<PushItem *> items, const std::string &id_property,
                                  bool &written) {
  if (items.empty()) return;
  rapidjson::Document body(rapidjson::kObjectType);
  auto &a = body.GetAllocator();
  Value inputs(rapidjson::kArrayType);
  std::vector<PushItem *> sent;
  for (PushItem *item : items) {
    Value properties;
    if (std::string problem = to_properties(*item->data, properties, a); !problem.empty()) {
      item->error("invalid_input", problem, false);
      continue;
    }
    Value input(rapidjson::kObjectType);
    if (action == "update") input.AddMember("id", Value(item->id.c_str(), a), a);
    if (action == "upsert") {
      input.AddMember("id", Value(item->match_value.c_str(), a), a);
      input.AddMember("idProperty", Value(id_property.c_str(), a), a);
    }
    input.AddMember("properties", properties, a);
    // Lets errors (and, where HubSpot echoes it, results) name the input (guess: the fact sheet
    // does not show it).
    input.AddMember("objectWriteTraceId", Value(std::to_string(item->index).c_str(), a), a);
    inputs.PushBack(input, a);
    sent.push_back(item);
  }
  if (sent.empty()) return;
  body.AddMember("inputs", inputs, a);
  const std::string path = std::string("/crm/v3/objects/") + object.path + "/batch/" + action;
  // A create repeated after a lost answer would make a duplicate: only updates may be retried.
  const uint32_t flags = action == "create" ? 0u : CRM_HTTP_IDEMPOTENT;

  auto fail_all = [&](const std::string &code, const std::string &message, bool retry) {
    for (PushItem *item : sent)
      if (!item->done) item->error(code, message, retry);
  };
  sdk::HttpResponse response;
  try {
    response = api("POST", path, sdk::to_json(body), flags);
  } catch (const Error &e) {
    if (!written) throw;  // nothing written yet: the whole call fails and is retried as one
    fail_all(e.status() == CRM_ERR_RATE_LIMITED ? "rate_limited" : "transport", e.what(), true);
    return;
  }
  const int status = response.status;
  rapidjson::Document doc;
  const sdk::JsonParse parsed = sdk::try_parse_json(response.body, doc);
  const bool json = parsed == sdk::JsonParse::ok && doc.IsObject();
  if ((status == 200 || status == 201 || status == 207) && parsed == sdk::JsonParse::too_deep) {
    // Written, perhaps, but nothing in the answer can be read: a hostile or broken answer.
    written = true;
    fail_all("remote", "POST " + path + ": HubSpot answered " + too_deep(status), false);
    return;
  }
  if (status == 200 || status == 201 || status == 207) {
    written = true;
    std::map<std::string, PushItem *> by_key;  // id, lower-case email, or trace id
    for (PushItem *item : sent) {
      by_key["trace:" + std::to_string(item->index)] = item;
      if (action == "update") by_key["id:" + item->id] = item;
      if (action == "upsert") by_key["id:" + sdk::lower_ascii(item->match_value)] = item;
    }
    std::vector<std::pair<std::string, std::pair<std::string, bool>>> unnamed;  // message, code
    if (json && doc.HasMember("errors") && doc["errors"].IsArray())
      for (const auto &e : doc["errors"].GetArray()) {
        // An error's own "status" is the word "error"; its category says what went wrong.
        const auto [code, retry] = classify(get_string(e, "category"), 400);
        const std::string message = error_message(e, status);
        bool matched = false;
        for (const auto &trace : context_values(e, "objectWriteTraceId"))
          if (auto it = by_key.find("trace:" + trace); it != by_key.end() && !it->second->done) {
            it->second->error(code, message, retry);
            matched = true;
          }
        for (const auto &id : context_values(e, "ids"))
          if (auto it = by_key.find("id:" + sdk::lower_ascii(id));
              it != by_key.end() && !it->second->done) {
            it->second->error(code, message, retry);
            matched = true;
          }
        if (!matched) unnamed.push_back({message, {code, retry}});
      }
    std::vector<const Value *> unmatched;
    if (json && doc.HasMember("results") && doc["results"].IsArray())
      for (const auto &r : doc["results"].GetArray()) {
        const std::string id = get_string(r, "id");
        PushItem *item = nullptr;
        if (auto t = get_string(r, "objectWriteTraceId"); !t.empty() && by_key.count("trace:" + t))
          item = by_key["trace:" + t];
        else if (action == "update" && by_key.count("id:" + id))
          item = by_key["id:" + id];
        else if (action == "upsert" && r.HasMember("properties") && r["properties"].IsObject() &&
                 by_key.count("id:" +
                              sdk::lower_ascii(get_string(r["properties"], id_property.c_str()))))
          item = by_key["id:" + sdk::lower_ascii(get_string(r["properties"], id_property.c_str()))];
        const bool created =
            action == "create" || (r.HasMember("new") && r["new"].IsBool() && r["new"].GetBool());
        if (item && !item->done)
          item->succeed(id, created);
        else
          unmatched.push_back(&r);
      }
    auto is_new = [&](const Value &r) {
      return action == "create" || (r.HasMember("new") && r["new"].IsBool() && r["new"].GetBool());
    };
    // A result that names no input is matched on content: the input whose sent values it holds.
    std::vector<const Value *> still;
    for (const Value *r : unmatched) {
      PushItem *owner = nullptr;
      if (r->HasMember("properties") && (*r)["properties"].IsObject())
        for (PushItem *item : sent)
          if (!item->done && holds(*item->data, (*r)["properties"])) {
            owner = item;
            break;
          }
      if (owner)
        owner->succeed(get_string(*r, "id"), is_new(*r));
      else
        still.push_back(r);
    }
    std::vector<PushItem *> left;
    for (PushItem *item : sent)
      if (!item->done) left.push_back(item);
    // Errors that name no input (a create's validation errors) go to the inputs left without a
    // result, in order, when the counts agree; so do leftover results (guess: HubSpot keeps the
    // input order).
    if (still.empty() && !unnamed.empty() && left.size() == unnamed.size())
      for (size_t i = 0; i < left.size(); ++i)
        left[i]->error(unnamed[i].second.first, unnamed[i].first, unnamed[i].second.second);
    if (!still.empty() && unnamed.empty() && left.size() == still.size())
      for (size_t i = 0; i < left.size(); ++i)
        left[i]->succeed(get_string(*still[i], "id"), is_new(*still[i]));
    // Without a result the outcome is unknown; a create is not repeated blindly.
    for (PushItem *item : sent)
      if (!item->done)
        item->error("remote", "HubSpot returned no result for this record", action != "create");
    return;
  }
  const std::string category = json ? get_string(doc, "category") : "";
  const std::string message =
      json ? error_message(doc, status) : "HubSpot answered " + std::to_string(status);
  if ((status == 400 || status == 409) && sent.size() > 1) {
    // HubSpot refuses a whole batch for one bad input: send each alone to find it.
    for (PushItem *item : sent) push_batch(object, action, {item}, id_property, written);
    return;
  }
  if (!written && (status == 401 || status == 403 || status == 429 || status >= 500))
    fail(response, "POST " + path);
  const auto [code, retry] = classify(category, status);
  fail_all(status == 401 || status == 403 ? "unauthorized" : code, message, retry || status == 401);
}

}  // namespace crmhost::hubspot
