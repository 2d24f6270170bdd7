// poll: Zoho's record list sorted on Modified_Time, anchored afresh from the cursor on every call,
// then the module's deleted records.
//
// Every call starts a new list with If-Modified-Since one second before the cursor (so whichever
// way Zoho reads the header, the cursor's own second is included) and drops what the cursor has
// already passed, so no call pages deep and a record modified while we page only moves later.
// Zoho sorts on Modified_Time alone, seconds precise: the records of one second come in no known
// order, so a call reads on until the page's last second is behind it and emits complete seconds
// in (Modified_Time, id) order; a call that has to stop inside a second resumes at the id it
// reached and re-reads that second whole. `page` reaches the first 2,000 records of a list;
// beyond, the next_page_token of the 2,000th is used. At the head the cursor is moved back by
// lookback_seconds before the newest record seen: the re-read records are identical events,
// absorbed by the host's dedupe keys.
#include <algorithm>
#include <memory>

#include "connector.hpp"

namespace crmhost::zoho {

using rapidjson::Value;
using sdk::Error;
using sdk::get_string;

namespace {

// Zoho's `page` may not go beyond the 2,000th record (DISCRETE_PAGINATION_LIMIT_EXCEEDED).
constexpr unsigned kDiscreteLimit = 2000;
// A page_token reaches 100,000 records; one call never reads further.
constexpr unsigned kMaxPagesPerCall = 500;

std::string id_of(const Value &r) {
  auto it = r.FindMember("id");
  if (it == r.MemberEnd()) return "";
  if (it->value.IsString()) return it->value.GetString();
  if (it->value.IsUint64()) return std::to_string(it->value.GetUint64());
  return "";
}

struct PageInfo {
  bool more = false;
  std::string next_page_token;
};

PageInfo info_of(const rapidjson::Document &doc) {
  PageInfo out;
  auto info = doc.FindMember("info");
  if (info == doc.MemberEnd() || !info->value.IsObject()) return out;
  auto more = info->value.FindMember("more_records");
  out.more = more != info->value.MemberEnd() && more->value.IsBool() && more->value.GetBool();
  out.next_page_token = get_string(info->value, "next_page_token");
  return out;
}

bool before(int64_t ms, const std::string &id, const Cursor &pos) {
  return ms < pos.modified_ms || (ms == pos.modified_ms && compare_ids(id, pos.id) <= 0);
}

}  // namespace

crm_status ZohoConnector::poll(const Value &request, rapidjson::Document &result) {
  const ModuleInfo &module = module_of(request, "poll");
  Cursor pos;
  if (auto it = request.FindMember("cursor");
      it != request.MemberEnd() && it->value.IsString() && it->value.GetStringLength() > 0)
    pos = decode_cursor(it->value.GetString());
  size_t want = 100;
  if (request.HasMember("limit") && request["limit"].IsUint() && request["limit"].GetUint() > 0)
    want = request["limit"].GetUint();

  Headers since;
  if (pos.modified_ms > 0)
    since.emplace_back("If-Modified-Since", format_zoho_time(pos.modified_ms - 1000));
  const unsigned per_page = settings_.page_size;
  const std::string base = list_path(module) + "&sort_by=Modified_Time&sort_order=asc&per_page=" +
                           std::to_string(per_page);

  std::vector<std::unique_ptr<rapidjson::Document>> pages;  // the candidates point into these
  std::vector<Candidate> candidates;
  bool head = false;
  int64_t horizon = 0;  // the last page's last second: the records before it are all read
  std::string page_token;
  for (unsigned page = 1; page <= kMaxPagesPerCall; ++page) {
    check_cancel();
    std::string path = base;
    if (page * per_page <= kDiscreteLimit)
      path += "&page=" + std::to_string(page);
    else if (!page_token.empty())
      path += "&page_token=" + url_encode(page_token);
    else
      break;  // no token to go on with: the next call restarts from the cursor
    auto doc = std::make_unique<rapidjson::Document>(api_json("GET", path, {}, 0, since));
    const auto data = doc->FindMember("data");
    if (data == doc->MemberEnd() || !data->value.IsArray() || data->value.Empty()) {
      head = true;  // 204: no records (past the cursor); 304: nothing modified since
      break;
    }
    for (const auto &r : data->value.GetArray()) {
      if (!r.IsObject()) continue;
      const std::string id = id_of(r);
      const auto ms = parse_time_ms(get_string(r, "Modified_Time"));
      if (!ms || id.empty())
        throw Error(CRM_ERR_REMOTE,
                    "poll: a Zoho " + std::string(module.module) + " record (" +
                        (id.empty() ? "no id" : id) + ") has no readable Modified_Time",
                    200, 0, 0);
      horizon = std::max(horizon, *ms);
      if (!before(*ms, id, pos)) candidates.push_back({*ms, id, &r});
    }
    pages.push_back(std::move(doc));
    const PageInfo info = info_of(*pages.back());
    if (!info.more) {
      head = true;
      break;
    }
    page_token = info.next_page_token;
    const size_t complete = std::count_if(candidates.begin(), candidates.end(),
                                          [&](const Candidate &c) { return c.ms < horizon; });
    if (complete >= want) break;
  }

  std::stable_sort(candidates.begin(), candidates.end(), [](const auto &a, const auto &b) {
    return a.ms != b.ms ? a.ms < b.ms : compare_ids(a.id, b.id) < 0;
  });
  // Not at the head, the last second read may go on in pages not read: it waits.
  size_t ready = candidates.size();
  if (!head)
    ready = std::count_if(candidates.begin(), candidates.end(),
                          [&](const Candidate &c) { return c.ms < horizon; });
  if (!head && ready == 0 && !candidates.empty())
    throw Error(CRM_ERR_REMOTE,
                "poll: more Zoho " + std::string(module.module) +
                    " records share the Modified_Time " + format_iso_ms(horizon) +
                    " than one list can page through without a next_page_token",
                200, 0, 0);

  auto &alloc = result.GetAllocator();
  Value records(rapidjson::kArrayType);
  const size_t emitted = std::min(ready, want);
  for (size_t i = 0; i < emitted; ++i)
    records.PushBack(record_json(module, *candidates[i].record, alloc), alloc);
  const bool reached_head = head && emitted == candidates.size();
  if (reached_head) {
    if (!candidates.empty()) {
      pos.modified_ms = std::max<int64_t>(0, candidates.back().ms - settings_.lookback_ms);
      pos.id.clear();
    }
    read_deletions(module, pos, records, alloc);
  } else if (emitted > 0) {
    pos.modified_ms = candidates[emitted - 1].ms;
    pos.id = candidates[emitted - 1].id;
  }
  result.AddMember("records", records, alloc);
  result.AddMember("next_cursor", Value(encode_cursor(pos).c_str(), alloc), alloc);
  if (reached_head) result.AddMember("remaining", 0, alloc);
  return reached_head ? CRM_OK : CRM_MORE;
}

// The module's deletions since pos.deleted_ms (recycle bin and permanent alike) as delete
// events. Zoho's order for this list is not documented, so every page is read before the cursor
// moves; If-Modified-Since keeps the list to the recent ones.
bool ZohoConnector::read_deletions(const ModuleInfo &module, Cursor &pos, Value &records,
                                   Alloc &alloc) {
  Headers since;
  if (pos.deleted_ms > 0)
    since.emplace_back("If-Modified-Since", format_zoho_time(pos.deleted_ms - 1000));
  int64_t newest = -1;
  bool complete = false;
  for (unsigned page = 1; page * 200 <= kDiscreteLimit; ++page) {
    check_cancel();
    const rapidjson::Document doc =
        api_json("GET",
                 std::string("/") + module.module +
                     "/deleted?type=all&per_page=200&page=" + std::to_string(page),
                 {}, 0, since);
    const auto data = doc.FindMember("data");
    if (data == doc.MemberEnd() || !data->value.IsArray() || data->value.Empty()) {
      complete = true;
      break;
    }
    for (const auto &d : data->value.GetArray()) {
      const std::string id = id_of(d);
      const auto ms = parse_time_ms(get_string(d, "deleted_time"));
      if (id.empty() || !ms || *ms < pos.deleted_ms) continue;
      Value record(rapidjson::kObjectType);
      record.AddMember("id", Value(id.c_str(), alloc), alloc);
      record.AddMember("event", "delete", alloc);
      record.AddMember("modified_at", Value(format_iso_ms(*ms).c_str(), alloc), alloc);
      records.PushBack(record, alloc);
      newest = std::max(newest, *ms);
    }
    if (!info_of(doc).more) {
      complete = true;
      break;
    }
  }
  if (!complete)
    log(CRM_LOG_WARN, std::string("poll: more than 2,000 deleted ") + module.module +
                          " since the cursor; the older ones are not read");
  if (newest >= 0) pos.deleted_ms = std::max<int64_t>(0, newest - settings_.lookback_ms);
  return complete;
}

}  // namespace crmhost::zoho
