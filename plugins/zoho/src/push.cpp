// push: Zoho's insert, update (by id) and upsert (duplicate_check_fields), 100 records a call,
// always with "trigger": [] so that no workflow, approval or blueprint answers our own writes;
// DELETE by ids (Zoho's recycle bin, so archive is the same call); match only looks up. Each
// input gets the result of its data[] item.
#include <algorithm>
#include <map>

#include "connector.hpp"

namespace crmhost::zoho {

using rapidjson::Value;
using sdk::Error;
using sdk::get_string;

struct ZohoConnector::PushItem : sdk::PushOutcome {
  size_t index = 0;
  std::string id, match_value;
  std::string match_key;  // match_value as compared: normalised, or lower-cased by default
  const Value *data = nullptr;
};

namespace {

using Alloc = rapidjson::Document::AllocatorType;

// Fields Zoho sets itself; writing them is refused or ignored, so they are left out.
bool read_only(std::string_view name) {
  return name == "id" || name == "Created_Time" || name == "Modified_Time" ||
         name == "Created_By" || name == "Modified_By";
}

// Zoho's per-record (or request) error code -> crmhost's code and whether a retry can help.
std::pair<std::string, bool> classify(const std::string &code, const std::string &api_name) {
  if (code == "INVALID_DATA" && api_name == "id") return {"not_found", false};
  if (code == "DUPLICATE_DATA" || code == "ALREADY_MODIFIED") return {"conflict", false};
  // Locked by an approval or a review: it unlocks in time.
  if (code == "RECORD_LOCKED") return {"conflict", true};
  if (code == "INVALID_DATA" || code == "MANDATORY_NOT_FOUND" || code == "LIMIT_EXCEEDED" ||
      code == "INVALID_MODULE" || code == "MULTIPLE_OR_MULTI_ERRORS" || code == "INVALID_REQUEST")
    return {"invalid_input", false};
  if (code == "NO_PERMISSION" || code == "PERMISSION_DENIED") return {"forbidden", false};
  if (code == "TOO_MANY_REQUESTS") return {"rate_limited", true};
  if (code == "INTERNAL_ERROR") return {"remote", true};
  return {"remote", false};
}

std::string item_message(const Value &item) {
  std::string message = get_string(item, "code");
  const std::string text = get_string(item, "message").substr(0, 300);
  if (!text.empty()) message += (message.empty() ? "" : ": ") + text;
  if (auto details = item.FindMember("details");
      details != item.MemberEnd() && details->value.IsObject()) {
    const std::string field = get_string(details->value, "api_name");
    if (!field.empty()) message += " (field " + field + ")";
  }
  return message.empty() ? "Zoho gave no reason" : message;
}

std::string details_string(const Value &item, const char *key) {
  auto details = item.FindMember("details");
  if (details == item.MemberEnd() || !details->value.IsObject()) return "";
  auto it = details->value.FindMember(key);
  if (it == details->value.MemberEnd()) return "";
  return sdk::scalar_text(it->value);
}

// Settles `item` from one data[] item of a write answer.
void settle(sdk::PushOutcome &item, const Value &answer, bool create) {
  if (get_string(answer, "status") == "success" || get_string(answer, "code") == "SUCCESS") {
    const std::string id = details_string(answer, "id");
    if (id.empty()) {
      item.error("remote", "Zoho reported success without the record's id", !create);
      return;
    }
    item.succeed(id, create || get_string(answer, "action") == "insert");
    return;
  }
  const auto [code, retry] =
      classify(get_string(answer, "code"), details_string(answer, "api_name"));
  item.error(code, item_message(answer), retry);
}

// Zoho's criteria syntax: `(`, `)`, `,` and `\` in a value are escaped with `\`.
std::string criteria_value(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '(' || c == ')' || c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

crm_status ZohoConnector::push(const Value &request, rapidjson::Document &result) {
  const ModuleInfo &module = module_of(request, "push");
  std::string mode = get_string(request, "mode");
  if (mode.empty()) mode = "upsert";
  if (mode != "upsert" && mode != "create" && mode != "update" && mode != "delete" &&
      mode != "archive" && mode != "match")
    throw Error(CRM_ERR_INVALID_INPUT, "push request: mode \"" + mode +
                                           "\" is not upsert, create, update, delete, archive "
                                           "or match");
  const sdk::MatchNormalize normalize = sdk::MatchNormalize::from_request(request);
  const bool names_only = mode == "delete" || mode == "archive" || mode == "match";
  if (!request.HasMember("records") || !request["records"].IsArray())
    throw Error(CRM_ERR_INVALID_INPUT, "push request: \"records\" must be an array");
  const auto &records = request["records"];
  if (records.Size() > 100)
    throw Error(CRM_ERR_INVALID_INPUT, "push request: " + std::to_string(records.Size()) +
                                           " records exceed max_batch 100");
  std::string match_on = get_string(request, "match_on");
  if (match_on.empty()) match_on = settings_.match_key_of(module);

  std::vector<PushItem> items(records.Size());
  for (rapidjson::SizeType i = 0; i < records.Size(); ++i) {
    PushItem &item = items[i];
    const Value &r = records[i];
    item.index = i;
    item.ref = get_string(r, "ref");
    item.id = get_string(r, "id");
    if (r.IsObject() && r.HasMember("data") && r["data"].IsObject()) item.data = &r["data"];
    if (item.data && item.data->HasMember(match_on.c_str()))
      item.match_value = sdk::scalar_text((*item.data)[match_on.c_str()]);
    item.match_key =
        normalize.any() ? normalize.apply(item.match_value) : sdk::lower_ascii(item.match_value);
    if (!names_only && !item.data) item.error("invalid_input", "\"data\" must be an object", false);
  }

  bool written = false;
  const std::string what = std::string(module.object) + " ";
  if (mode == "match") {
    confirm_ids(module, items);
    resolve_by_key(module, match_on, normalize, items);
    for (auto &item : items) {
      if (item.done) continue;
      if (item.id.empty())
        item.error("not_found", "no " + what + "has this " + match_on, false);
      else
        item.succeed(item.id, false);
    }
  } else if (mode == "delete" || mode == "archive") {
    resolve_by_key(module, match_on, normalize, items);
    std::vector<PushItem *> deletes;
    for (auto &item : items) {
      if (item.done) continue;
      if (item.id.empty())
        item.error("not_found", "no " + what + "matches this record", false);
      else
        deletes.push_back(&item);
    }
    delete_batch(module, deletes, written);
  } else {
    if (mode == "update") resolve_by_key(module, match_on, normalize, items);
    std::vector<PushItem *> updates, upserts, creates;
    for (auto &item : items) {
      if (item.done) continue;
      if (mode == "create")
        creates.push_back(&item);
      else if (!item.id.empty())
        updates.push_back(&item);
      else if (mode == "update")
        item.error("not_found", "no " + what + "has this id or " + match_on, false);
      else if (!item.match_key.empty())
        upserts.push_back(&item);
      else
        creates.push_back(&item);
    }
    if (!updates.empty()) write_batch(module, "update", updates, match_on, written);
    // One upsert batch never names a key twice: Zoho would see neither as existing yet.
    while (!upserts.empty()) {
      std::vector<PushItem *> round, later;
      std::set<std::string> seen;
      for (PushItem *item : upserts)
        (seen.insert(item->match_key).second ? round : later).push_back(item);
      if (normalize.any())
        for (PushItem *item : round) item->match_value = item->match_key;
      write_batch(module, "upsert", round, match_on, written);
      upserts = std::move(later);
    }
    if (!creates.empty()) write_batch(module, "create", creates, match_on, written);
  }

  auto &alloc = result.GetAllocator();
  Value results(rapidjson::kArrayType);
  for (const auto &item : items)
    results.PushBack(item.to_json(alloc, "Zoho returned no result"), alloc);
  result.AddMember("results", results, alloc);
  return CRM_OK;
}

void ZohoConnector::write_batch(const ModuleInfo &module, const std::string &action,
                                std::vector<PushItem *> items, const std::string &match_key,
                                bool &written) {
  if (items.empty()) return;
  rapidjson::Document body(rapidjson::kObjectType);
  auto &a = body.GetAllocator();
  Value data(rapidjson::kArrayType);
  for (PushItem *item : items) {
    Value record(rapidjson::kObjectType);
    if (action == "update") record.AddMember("id", Value(item->id.c_str(), a), a);
    for (const auto &m : item->data->GetObject()) {
      if (read_only(m.name.GetString())) continue;
      Value v(m.value, a);
      datetime_for_zoho(v, a);
      if (action == "upsert" && match_key == m.name.GetString())
        v.SetString(item->match_value.c_str(), a);
      record.AddMember(Value(m.name, a), v, a);
    }
    data.PushBack(record, a);
  }
  body.AddMember("data", data, a);
  // No workflow rule, approval or blueprint runs on our writes (and so none echoes them back).
  body.AddMember("trigger", Value(rapidjson::kArrayType), a);
  if (action == "upsert") {
    Value fields(rapidjson::kArrayType);
    fields.PushBack(Value(match_key.c_str(), a), a);
    body.AddMember("duplicate_check_fields", fields, a);
  }
  const std::string path = std::string("/") + module.module + (action == "upsert" ? "/upsert" : "");
  const char *method = action == "update" ? "PUT" : "POST";
  // A create repeated after a lost answer would make a duplicate: only it is never retried.
  const uint32_t flags = action == "create" ? 0u : CRM_HTTP_IDEMPOTENT;
  const bool create = action == "create";

  auto fail_all = [&](const std::string &code, const std::string &message, bool retry) {
    for (PushItem *item : items)
      if (!item->done) item->error(code, message, retry);
  };
  sdk::HttpResponse response;
  try {
    response = api(method, path, sdk::to_json(body), flags);
  } catch (const Error &e) {
    if (!written) throw;  // nothing written yet: the whole call fails and is retried as one
    fail_all(e.status() == CRM_ERR_RATE_LIMITED ? "rate_limited" : "transport", e.what(), true);
    return;
  }
  const int status = response.status;
  const std::string what = std::string(method) + " " + path;
  if (status == 401 || status == 403 || status == 429 || status >= 500) {
    if (!written) fail(response, what);
    try {
      fail(response, what);
    } catch (const Error &e) {
      fail_all(status == 429   ? "rate_limited"
               : status >= 500 ? "remote"
                               : "unauthorized",
               e.what(), status == 429 || status >= 500);
    }
    return;
  }
  rapidjson::Document doc;
  const sdk::JsonParse parsed = sdk::try_parse_json(response.body, doc);
  if (parsed == sdk::JsonParse::too_deep) {
    written = written || (status >= 200 && status <= 299);
    fail_all("remote", what + ": Zoho answered " + too_deep(status), false);
    return;
  }
  const bool json = parsed == sdk::JsonParse::ok && doc.IsObject();
  const Value *answers =
      json && doc.HasMember("data") && doc["data"].IsArray() ? &doc["data"] : nullptr;
  // Zoho answers every record in data[], in input order, whatever the HTTP status (a batch whose
  // records all failed comes back 400 with the same shape).
  if (answers && answers->Size() == items.size()) {
    for (rapidjson::SizeType i = 0; i < answers->Size(); ++i) {
      settle(*items[i], (*answers)[i], create);
      if (items[i]->ok) written = true;
    }
    return;
  }
  if (status >= 200 && status <= 299) {
    written = true;
    // The outcome is unknown; a create is not repeated blindly.
    fail_all("remote",
             what + ": Zoho answered " + std::to_string(status) + " without one result per record",
             !create);
    return;
  }
  // A request-level error (INVALID_MODULE, LIMIT_EXCEEDED...): the same for every record.
  const std::string code = json ? get_string(doc, "code") : "";
  const auto [mapped, retry] = classify(code, json ? details_string(doc, "api_name") : "");
  fail_all(mapped,
           what + ": Zoho answered " + std::to_string(status) +
               (json ? " (" + item_message(doc) + ")" : ""),
           retry);
}

void ZohoConnector::delete_batch(const ModuleInfo &module, std::vector<PushItem *> items,
                                 bool &written) {
  if (items.empty()) return;
  std::string ids;
  std::map<std::string, PushItem *> by_id;
  for (PushItem *item : items) {
    if (!by_id.emplace(item->id, item).second) continue;
    ids += (ids.empty() ? "" : ",") + item->id;
  }
  // wf_trigger=false: no workflow runs on our deletes (guess: Zoho's parameter, not in the sheet).
  const std::string path =
      std::string("/") + module.module + "?ids=" + url_encode(ids) + "&wf_trigger=false";
  sdk::HttpResponse response;
  try {
    response = api("DELETE", path, {}, 0);
  } catch (const Error &e) {
    if (!written) throw;
    for (PushItem *item : items) item->error("transport", e.what(), true);
    return;
  }
  const int status = response.status;
  if (!written && (status == 401 || status == 403 || status == 429 || status >= 500))
    fail(response, "DELETE /" + std::string(module.module));
  rapidjson::Document doc;
  const bool json = sdk::try_parse_json(response.body, doc) == sdk::JsonParse::ok && doc.IsObject();
  if (json && doc.HasMember("data") && doc["data"].IsArray())
    for (const auto &answer : doc["data"].GetArray()) {
      auto it = by_id.find(details_string(answer, "id"));
      if (it == by_id.end() || it->second->done) continue;
      const std::string code = get_string(answer, "code");
      // Already gone is what a delete wants: a repeated delete must not dead-letter (guess:
      // Zoho answers INVALID_DATA for an id it no longer holds).
      if (code == "SUCCESS" || code == "INVALID_DATA" || code == "RECORD_NOT_FOUND") {
        it->second->succeed(it->second->id, false);
        written = true;
      } else {
        const auto [mapped, retry] = classify(code, details_string(answer, "api_name"));
        it->second->error(mapped, item_message(answer), retry);
      }
    }
  // Ids named twice share the first one's outcome.
  for (PushItem *item : items) {
    PushItem *first = by_id[item->id];
    if (item == first || item->done || !first->done) continue;
    if (first->ok)
      item->succeed(first->result_id, false);
    else
      item->error(first->code, first->message, first->retryable);
  }
  for (PushItem *item : items)
    if (!item->done)
      item->error("remote",
                  "DELETE /" + std::string(module.module) + ": Zoho answered " +
                      std::to_string(status) + " without a result for this record",
                  status >= 500 || status == 429 || (status >= 200 && status <= 299));
}

// The records holding the inputs' match values, found with search criteria (10 values a call,
// Zoho's limit); `equals` behaves like contains at Zoho, so every result is compared here. The
// oldest record wins when several hold a value. Search has an index lag: a record written moments
// ago may be missed.
void ZohoConnector::resolve_by_key(const ModuleInfo &module, const std::string &key,
                                   const sdk::MatchNormalize &normalize,
                                   std::vector<PushItem> &items) {
  std::vector<PushItem *> wanted;
  std::vector<std::string> values;
  std::set<std::string> distinct;
  for (auto &item : items)
    if (!item.done && item.id.empty() && !item.match_key.empty()) {
      wanted.push_back(&item);
      const std::string value = normalize.any() ? item.match_key : item.match_value;
      if (distinct.insert(item.match_key).second) values.push_back(value);
    }
  if (wanted.empty()) return;
  std::map<std::string, std::pair<std::string, std::string>> best;  // key -> (created, id)
  for (size_t start = 0; start < values.size(); start += 10) {
    std::string criteria;
    for (size_t i = start; i < std::min(values.size(), start + 10); ++i)
      criteria += (criteria.empty() ? "" : "or") + std::string("(") + key +
                  ":equals:" + criteria_value(values[i]) + ")";
    if (std::min(values.size(), start + 10) - start > 1) criteria = "(" + criteria + ")";
    for (unsigned page = 1; page <= 10; ++page) {
      const rapidjson::Document found =
          api_json("GET",
                   std::string("/") + module.module + "/search?criteria=" + url_encode(criteria) +
                       "&fields=" + url_encode(key + ",Created_Time") +
                       "&per_page=200&page=" + std::to_string(page),
                   {}, 0);
      if (!found.HasMember("data") || !found["data"].IsArray()) break;
      for (const auto &r : found["data"].GetArray()) {
        if (!r.IsObject() || !r.HasMember(key.c_str())) continue;
        const std::string value = sdk::scalar_text(r[key.c_str()]);
        const std::string compared =
            normalize.any() ? normalize.apply(value) : sdk::lower_ascii(value);
        const std::string id = sdk::scalar_text(r["id"]);
        const auto created = parse_time_ms(get_string(r, "Created_Time"));
        const std::string order =
            created ? format_iso_ms(*created) : std::string("~");  // unknown sorts last
        auto [it, inserted] = best.emplace(compared, std::make_pair(order, id));
        if (!inserted && (order < it->second.first ||
                          (order == it->second.first && compare_ids(id, it->second.second) < 0)))
          it->second = {order, id};
      }
      const auto info = found.FindMember("info");
      if (info == found.MemberEnd() || !info->value.IsObject() ||
          !info->value.HasMember("more_records") || !info->value["more_records"].IsTrue())
        break;
    }
  }
  for (PushItem *item : wanted)
    if (auto it = best.find(item->match_key); it != best.end()) item->id = it->second.second;
}

// match mode: the inputs that came with an id are ok when Zoho still holds that record.
void ZohoConnector::confirm_ids(const ModuleInfo &module, std::vector<PushItem> &items) {
  std::vector<std::string> ids;
  for (const auto &item : items)
    if (!item.done && !item.id.empty()) ids.push_back(item.id);
  if (ids.empty()) return;
  std::set<std::string> present;
  for (size_t start = 0; start < ids.size(); start += 100) {
    const std::vector<std::string> chunk(ids.begin() + start,
                                         ids.begin() + std::min(ids.size(), start + 100));
    const rapidjson::Document found = read_ids(module, chunk, "Modified_Time");
    for (const auto &r : found.GetArray()) present.insert(sdk::scalar_text(r["id"]));
  }
  for (auto &item : items)
    if (!item.done && !item.id.empty() && !present.count(item.id))
      item.error("not_found", "no " + std::string(module.object) + " has id " + item.id, false);
}

}  // namespace crmhost::zoho
