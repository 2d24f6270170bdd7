// poll: HubSpot's search API on the modification time, anchored afresh on every page.
//
// Every search starts at offset 0 from the cursor's time, so no query comes near the 10,000
// results one search may page through, and a record modified while we page only moves later.
// Records sharing one millisecond are read in hs_object_id order (a second filter), so a page
// boundary inside such a group neither skips nor loops. At the head the cursor is moved back by
// lookback_seconds before the newest record seen: records HubSpot indexes late are read on the
// next run; the ones read twice are absorbed by the host's dedupe keys.
#include <algorithm>

#include "connector.hpp"

namespace crmhost::hubspot {

using rapidjson::Value;
using sdk::Error;

namespace {

Value filter(const char *property, const char *op, const std::string &value,
             rapidjson::Document::AllocatorType &alloc) {
  Value f(rapidjson::kObjectType);
  f.AddMember("propertyName", Value(property, alloc), alloc);
  f.AddMember("operator", Value(op, alloc), alloc);
  f.AddMember("value", Value(value.c_str(), alloc), alloc);
  return f;
}

std::string id_of(const Value &r) {
  auto it = r.FindMember("id");
  if (it == r.MemberEnd()) return "";
  if (it->value.IsString()) return it->value.GetString();
  if (it->value.IsUint64()) return std::to_string(it->value.GetUint64());
  return "";
}

// Records of one millisecond are read in id order from this sentinel (ids are positive).
const char kGroupStart[] = "0";

}  // namespace

HubSpotConnector::SearchPage HubSpotConnector::search(const ObjectInfo &object, Value filters,
                                                      const char *sort_by, unsigned limit) {
  rapidjson::Document body(rapidjson::kObjectType);
  auto &a = body.GetAllocator();
  Value group(rapidjson::kObjectType), groups(rapidjson::kArrayType), sorts(rapidjson::kArrayType),
      sort(rapidjson::kObjectType), properties(rapidjson::kArrayType);
  Value copied(filters, a);
  group.AddMember("filters", copied, a);
  groups.PushBack(group, a);
  sort.AddMember("propertyName", Value(sort_by, a), a);
  sort.AddMember("direction", "ASCENDING", a);
  sorts.PushBack(sort, a);
  for (const auto &p : properties_of(object)) properties.PushBack(Value(p.c_str(), a), a);
  body.AddMember("filterGroups", groups, a);
  body.AddMember("sorts", sorts, a);
  body.AddMember("properties", properties, a);
  body.AddMember("limit", limit, a);
  SearchPage page;
  // Search has its own, smaller limit at HubSpot: its own bucket (see describe's rate_limits).
  page.doc = api_json("POST", std::string("/crm/v3/objects/") + object.path + "/search",
                      sdk::to_json(body), CRM_HTTP_IDEMPOTENT, "search");
  if (page.doc.HasMember("total") && page.doc["total"].IsUint64())
    page.total = page.doc["total"].GetUint64();
  if (page.doc.HasMember("results") && page.doc["results"].IsArray())
    for (const auto &r : page.doc["results"].GetArray())
      if (r.IsObject()) page.results.push_back(&r);
  return page;
}

crm_status HubSpotConnector::poll(const Value &request, rapidjson::Document &result) {
  const ObjectInfo &object = object_of(request, "poll");
  Cursor pos;
  if (auto it = request.FindMember("cursor");
      it != request.MemberEnd() && it->value.IsString() && it->value.GetStringLength() > 0)
    pos = decode_cursor(it->value.GetString());
  unsigned want = 100;
  if (request.HasMember("limit") && request["limit"].IsUint() && request["limit"].GetUint() > 0)
    want = request["limit"].GetUint();

  auto &alloc = result.GetAllocator();
  Value records(rapidjson::kArrayType);
  bool head = false;
  std::optional<uint64_t> remaining;
  auto emit = [&](const Value &r) {
    records.PushBack(record_json(object, r, alloc), alloc);
    if (remaining && *remaining > 0) --*remaining;
  };

  // Each round either emits records or narrows to one millisecond's group, so it ends; the cap
  // only bounds a call's length (the cursor then says where to go on).
  for (int round = 0; round < 64 && records.Size() < want && !head; ++round) {
    check_cancel();
    // A search for a handful of records costs as much as a full one: leave them to the next call.
    if (round > 0 && (want - records.Size()) * 4 < settings_.page_size) break;
    const unsigned n = std::min<unsigned>(settings_.page_size, want - records.Size());
    if (!pos.id.empty()) {
      // The rest of the records modified at exactly pos.modified_ms, in id order.
      Value filters(rapidjson::kArrayType);
      const std::string ms = std::to_string(pos.modified_ms);
      filters.PushBack(filter(object.modified_prop, "EQ", ms, alloc), alloc);
      if (pos.id != kGroupStart)
        filters.PushBack(filter("hs_object_id", "GT", pos.id, alloc), alloc);
      SearchPage page = search(object, std::move(filters), "hs_object_id", n);
      for (const Value *r : page.results) {
        const std::string id = id_of(*r);
        if (pos.id != kGroupStart && compare_ids(id, pos.id) <= 0) continue;  // defensive
        emit(*r);
        pos.id = id;
      }
      if (page.results.size() < n) pos = {pos.modified_ms + 1, ""};  // that millisecond is done
      continue;
    }
    Value filters(rapidjson::kArrayType);
    filters.PushBack(filter(object.modified_prop, "GTE", std::to_string(pos.modified_ms), alloc),
                     alloc);
    // One more than fits: the last millisecond of a full page is dropped (it is read whole, in
    // id order, next), so the records before it still fill the call.
    const unsigned asked = std::min<unsigned>(200, n + 1);
    SearchPage page = search(object, std::move(filters), object.modified_prop, asked);
    std::vector<std::pair<int64_t, const Value *>> found;
    for (const Value *r : page.results) {
      const auto ms = modified_ms(object, *r);
      if (!ms)
        throw Error(CRM_ERR_REMOTE, "poll: HubSpot record " + id_of(*r) + " has no readable " +
                                        object.modified_prop);
      found.emplace_back(*ms, r);
    }
    // HubSpot sorts, but a stable order here keeps the cursor right whatever it sends.
    std::stable_sort(found.begin(), found.end(),
                     [](const auto &x, const auto &y) { return x.first < y.first; });
    if (found.size() < asked) {
      // The head: everything from pos on was returned.
      for (const auto &[ms, r] : found) emit(*r);
      if (!found.empty())
        pos = {std::max<int64_t>(0, found.back().first + 1 - settings_.lookback_ms), ""};
      remaining = 0;
      head = true;
      break;
    }
    // A full page may end inside a millisecond: emit what precedes it, then read that
    // millisecond's group in id order.
    const int64_t last = found.back().first;
    remaining = page.total;
    size_t emitted = 0;
    for (const auto &[ms, r] : found)
      if (ms < last) {
        emit(*r);
        ++emitted;
      }
    pos = {last, emitted == 0 ? kGroupStart : ""};
  }

  result.AddMember("records", records, alloc);
  result.AddMember("next_cursor", Value(encode_cursor(pos).c_str(), alloc), alloc);
  if (remaining) result.AddMember("remaining", *remaining, alloc);
  return head ? CRM_OK : CRM_MORE;
}

}  // namespace crmhost::hubspot
