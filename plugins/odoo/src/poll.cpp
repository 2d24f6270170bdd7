// poll: search_read on the compound cursor (write_date, id), with a lookback at the head and
// periodic id reconciliation for deletions.
//
// write_date is the transaction's timestamp, to the second: a transaction writing many records
// gives them all one write_date, so the cursor carries the last id within that second; one that
// started earlier but committed later shows up behind the cursor, so after the head the next read
// starts lookback_seconds before it (the records read twice carry the same write_date and data,
// so the host's dedupe absorbs them). Archived records are read too (active in [true, false]) and
// come as upserts carrying active=false. Odoo keeps no tombstones: every
// reconcile_interval_seconds, at the head, the ids present are compared with those known (the
// last snapshot plus the ids polled since), and the vanished ones become delete events.
#include <algorithm>
#include <random>

#include "connector.hpp"

namespace crmhost::odoo {

using rapidjson::Value;
using sdk::Error;

namespace {

// State values are at most 64 KiB: snapshots are split into slices below that.
constexpr size_t kSliceBytes = 60000;

Value term(const char *field, const char *op, Value value, rapidjson::Document::AllocatorType &a) {
  Value t(rapidjson::kArrayType);
  t.PushBack(Value(field, a), a).PushBack(Value(op, a), a).PushBack(value, a);
  return t;
}

std::string key(const char *kind, const Target &t, const std::string &token,
                const std::string &part) {
  return std::string(kind) + ":" + t.info->name + ":" + token + ":" + part;
}

}  // namespace

std::string OdooConnector::new_token() const {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

OdooConnector::IdMemo &OdooConnector::id_memo(const Target &t, const std::string &token) {
  IdMemo &memo = id_memos_[t.info->name];
  if (memo.token == token) return memo;
  memo = IdMemo{};
  memo.token = token;
  std::string bytes;
  const size_t slices = std::stoul(state_get(key("r", t, token, "n")).value_or("0"));
  for (size_t i = 0; i < slices; ++i)
    bytes += state_get(key("r", t, token, std::to_string(i))).value_or("");
  memo.snapshot = decode_ids(bytes);
  memo.seen_chunks = std::stoul(state_get(key("s", t, token, "n")).value_or("0"));
  for (size_t i = 0; i < memo.seen_chunks; ++i)
    for (int64_t id : decode_ids(state_get(key("s", t, token, std::to_string(i))).value_or("")))
      memo.seen.insert(id);
  return memo;
}

void OdooConnector::note_seen(const Target &t, IdMemo &memo, const std::vector<int64_t> &ids) {
  std::vector<int64_t> fresh;
  for (int64_t id : ids)
    if (!std::binary_search(memo.snapshot.begin(), memo.snapshot.end(), id) && !memo.seen.count(id))
      fresh.push_back(id);
  if (fresh.empty()) return;
  std::sort(fresh.begin(), fresh.end());
  fresh.erase(std::unique(fresh.begin(), fresh.end()), fresh.end());
  // Appended as a chunk of its own: no write grows with the number of ids already known.
  // A page holds at most 5000 ids: a few bytes each, well below a state value's limit.
  const std::string chunk = encode_ids(fresh);
  state_put(key("s", t, memo.token, std::to_string(memo.seen_chunks)), chunk);
  state_put(key("s", t, memo.token, "n"), std::to_string(memo.seen_chunks + 1));
  ++memo.seen_chunks;
  memo.seen.insert(fresh.begin(), fresh.end());
}

void OdooConnector::write_snapshot(const Target &t, const std::string &token,
                                   const std::vector<int64_t> &ids) {
  const std::string bytes = encode_ids(ids);
  size_t slices = 0;
  for (size_t at = 0; at < bytes.size(); at += kSliceBytes)
    state_put(key("r", t, token, std::to_string(slices++)), bytes.substr(at, kSliceBytes));
  state_put(key("s", t, token, "n"), "0");
  state_put(key("r", t, token, "n"), std::to_string(slices));
}

void OdooConnector::drop_snapshot(const Target &t, const std::string &token) {
  for (const char *kind : {"r", "s"}) {
    const auto n = state_get(key(kind, t, token, "n"));
    if (!n) continue;
    for (size_t i = 0, count = std::stoul(*n); i < count; ++i)
      state_remove(key(kind, t, token, std::to_string(i)));
    state_remove(key(kind, t, token, "n"));
  }
}

crm_status OdooConnector::poll(const Value &request, rapidjson::Document &result) {
  const Target &t = target_of(request, "poll");
  Cursor pos;
  if (auto it = request.FindMember("cursor");
      it != request.MemberEnd() && it->value.IsString() && it->value.GetStringLength() > 0)
    pos = decode_cursor({it->value.GetString(), it->value.GetStringLength()});
  unsigned limit = settings_.page_size;
  if (auto it = request.FindMember("limit");
      it != request.MemberEnd() && it->value.IsUint() && it->value.GetUint() > 0)
    limit = std::min(limit, it->value.GetUint());

  // The host stored this cursor, so the snapshot before its own is no longer needed.
  if (!pos.previous_token.empty()) {
    drop_snapshot(t, pos.previous_token);
    pos.previous_token.clear();
  }
  if (pos.token.empty()) pos.token = new_token();

  rapidjson::Document args(rapidjson::kObjectType);
  auto &a = args.GetAllocator();
  Value domain(rapidjson::kArrayType), fields(rapidjson::kArrayType);
  auto position_terms = [&](Value &into, int64_t write_s, int64_t id, bool inclusive) {
    const std::string when = format_odoo_time(write_s);
    if (inclusive) {
      into.PushBack(term("write_date", ">=", Value(when.c_str(), a), a), a);
      return;
    }
    into.PushBack("|", a);
    into.PushBack(term("write_date", ">", Value(when.c_str(), a), a), a);
    into.PushBack("&", a);
    into.PushBack(term("write_date", "=", Value(when.c_str(), a), a), a);
    into.PushBack(term("id", ">", Value(id), a), a);
  };
  if (pos.started) domain.PushBack("&", a);
  base_domain(t, domain, a);
  if (pos.started) {
    if (pos.head)
      position_terms(domain, std::max<int64_t>(0, pos.write_s - settings_.lookback_s), 0, true);
    else
      position_terms(domain, pos.write_s, pos.id, false);
  }
  for (const auto &f : t.fields) fields.PushBack(Value(f.c_str(), a), a);
  args.AddMember("domain", domain, a);
  args.AddMember("fields", fields, a);
  args.AddMember("limit", limit, a);
  args.AddMember("order", "write_date asc, id asc", a);
  const rapidjson::Document page = call(t.model, "search_read", args, true);
  if (!page.IsArray())
    throw Error(CRM_ERR_REMOTE, "poll: Odoo's search_read answer is not a list", 0, 0, 1);

  auto &alloc = result.GetAllocator();
  Value records(rapidjson::kArrayType);
  std::vector<int64_t> ids;
  int64_t last_s = 0, last_id = 0;
  for (const auto &r : page.GetArray()) {
    // Plain values rather than optionals: GCC -O2 misreads optionals here (maybe-uninitialized).
    int64_t id = 0, when = 0;
    bool readable = r.IsObject() && r.HasMember("id") && r["id"].IsInt64() &&
                    r.HasMember("write_date") && r["write_date"].IsString();
    if (readable) {
      id = r["id"].GetInt64();
      const auto parsed = parse_odoo_time(r["write_date"].GetString());
      readable = parsed.has_value();
      when = parsed.value_or(0);
    }
    if (!readable)
      throw Error(CRM_ERR_REMOTE, "poll: an Odoo " + t.model + " record lacks id or write_date", 0,
                  0, 1);
    records.PushBack(record_json(t, r, alloc), alloc);
    ids.push_back(id);
    last_s = when;
    last_id = id;
  }
  add_country_codes(records, alloc);
  note_seen(t, id_memo(t, pos.token), ids);

  const bool full = page.Size() >= limit;
  Cursor next = pos;
  if (full) {
    next.write_s = last_s;
    next.id = last_id;
    next.head = false;
    next.started = true;
  } else {
    // The head: the exact position stays (a rewound read may end behind it); the next read
    // starts lookback_seconds before it.
    if (!page.Empty() &&
        (!pos.started || std::make_pair(last_s, last_id) > std::make_pair(pos.write_s, pos.id))) {
      next.write_s = last_s;
      next.id = last_id;
      next.started = true;
    }
    next.head = true;
  }

  const int64_t now = sdk::Host::now_ms();
  if (!full && settings_.reconcile_interval_s > 0 &&
      (pos.reconciled_ms == 0 ||
       now - pos.reconciled_ms >= settings_.reconcile_interval_s * 1000)) {
    IdMemo &memo = id_memo(t, pos.token);
    const std::vector<int64_t> present = search_ids(t);
    std::vector<int64_t> known(memo.snapshot);
    known.insert(known.end(), memo.seen.begin(), memo.seen.end());
    std::sort(known.begin(), known.end());
    known.erase(std::unique(known.begin(), known.end()), known.end());
    std::vector<int64_t> gone;
    std::set_difference(known.begin(), known.end(), present.begin(), present.end(),
                        std::back_inserter(gone));
    next.previous_token = pos.token;
    next.token = new_token();
    next.reconciled_ms = now;
    write_snapshot(t, next.token, present);
    // Deletes carry no time: an id is never reused, so a repeated delete dedupes.
    for (int64_t id : gone) {
      Value record(rapidjson::kObjectType);
      record.AddMember("id", Value(std::to_string(id).c_str(), alloc), alloc);
      record.AddMember("event", "delete", alloc);
      records.PushBack(record, alloc);
    }
    if (!gone.empty())
      log(CRM_LOG_INFO, "reconciliation: " + std::to_string(gone.size()) + " " + t.info->name +
                            " records deleted in Odoo");
  }

  std::optional<uint64_t> remaining;
  if (full) {
    // Cheap enough once per full page: the same domain after the new position.
    rapidjson::Document count_args(rapidjson::kObjectType);
    auto &ca = count_args.GetAllocator();
    Value count_domain(rapidjson::kArrayType);
    count_domain.PushBack("&", ca);
    base_domain(t, count_domain, ca);
    {
      const std::string when = format_odoo_time(next.write_s);
      count_domain.PushBack("|", ca);
      count_domain.PushBack(term("write_date", ">", Value(when.c_str(), ca), ca), ca);
      count_domain.PushBack("&", ca);
      count_domain.PushBack(term("write_date", "=", Value(when.c_str(), ca), ca), ca);
      count_domain.PushBack(term("id", ">", Value(next.id), ca), ca);
    }
    count_args.AddMember("domain", count_domain, ca);
    Reply count = rpc(t.model, "search_count", count_args, true);
    if (!count.fault && count.result.IsUint64()) remaining = count.result.GetUint64();
  } else {
    remaining = 0;
  }

  result.AddMember("records", records, alloc);
  result.AddMember("next_cursor", Value(encode_cursor(next).c_str(), alloc), alloc);
  if (remaining) result.AddMember("remaining", *remaining, alloc);
  return full ? CRM_MORE : CRM_OK;
}

}  // namespace crmhost::odoo
