// push: Odoo has no upsert. Records without an id are looked up on the match key (one
// search_read for the batch), then written one by one (write applies one set of values) or
// created together with create([...]); a batch Odoo refuses is split to find the bad record.
// many2one fields given as text are written as the id of the record of that name (cached).
// archive writes active=false; match only looks up.
#include <algorithm>
#include <cctype>
#include <map>

#include "connector.hpp"

namespace crmhost::odoo {

using rapidjson::Value;
using sdk::Error;

struct OdooConnector::PushItem : sdk::PushOutcome {
  std::string id, match_value;
  std::string match_key;  // match_value as compared: normalised, or lower-cased by default
  const Value *data = nullptr;
  rapidjson::Document vals{rapidjson::kObjectType};
};

namespace {

using Alloc = rapidjson::Document::AllocatorType;

std::string get_text(const Value &v, const char *key) {
  if (!v.IsObject()) return std::string();
  auto it = v.FindMember(key);
  return it != v.MemberEnd() ? sdk::scalar_text(it->value) : std::string();
}

// Fields Odoo computes itself, and the connector's own; writing them is refused or pointless.
bool read_only(std::string_view name) {
  return name == "id" || name == "write_date" || name == "create_date" || name == "write_uid" ||
         name == "create_uid" || name == "display_name" || name == "__last_update";
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() < 19 &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string fault_text(const Fault &f) {
  std::string name = f.name;
  if (auto dot = name.rfind('.'); dot != std::string::npos) name = name.substr(dot + 1);
  if (name.empty()) name = "HTTP " + std::to_string(f.http_status);
  return f.message.empty() || f.message == name ? name : name + ": " + f.message;
}

}  // namespace

// Data -> Odoo values: null clears (false), many2one text -> id. Returns a problem, or "".
std::string OdooConnector::to_vals(const Target &t, const Value &data, Value &vals, Alloc &alloc) {
  const auto &types = field_types(t.model);
  vals.SetObject();
  for (const auto &m : data.GetObject()) {
    const std::string name(m.name.GetString(), m.name.GetStringLength());
    if (read_only(name)) continue;
    const Value &v = m.value;
    Value out;
    auto type = types.find(name);
    const bool many2one = type != types.end() && type->second.type == "many2one";
    if (v.IsNull()) {
      out.SetBool(false);
    } else if (many2one && v.IsArray() && !v.Empty() && v[0].IsInt64()) {
      out.SetInt64(v[0].GetInt64());  // Odoo's own [id, "name"] read form
    } else if (many2one && v.IsString()) {
      const std::string text(v.GetString(), v.GetStringLength());
      if (text.empty()) {
        out.SetBool(false);
      } else if (all_digits(text)) {
        out.SetInt64(std::stoll(text));
      } else {
        const auto id = lookup_many2one(type->second.relation, text);
        if (!id)
          return name + ": no " + type->second.relation + " record is named \"" + text + "\"";
        out.SetInt64(*id);
      }
    } else if (v.IsObject()) {
      return "field \"" + name + "\" is an object; Odoo fields take scalars or lists";
    } else {
      out.CopyFrom(v, alloc);
    }
    vals.AddMember(Value(name.c_str(), alloc), out, alloc);
  }
  // The name parts of the contact presets (README) make the one name Odoo keeps.
  const std::string first = get_text(data, "_first_name"), last = get_text(data, "_last_name");
  if (vals.HasMember("_first_name")) vals.RemoveMember("_first_name");
  if (vals.HasMember("_last_name")) vals.RemoveMember("_last_name");
  if (vals.HasMember("_domain")) vals.RemoveMember("_domain");
  if (vals.HasMember("_country_code")) vals.RemoveMember("_country_code");
  if (!vals.HasMember("name") && (!first.empty() || !last.empty())) {
    const std::string name = first.empty() ? last : last.empty() ? first : first + " " + last;
    vals.AddMember("name", Value(name.c_str(), alloc), alloc);
  }
  // A partner created here is of the object's kind.
  if (t.partner_kind() && !vals.HasMember("is_company"))
    vals.AddMember("is_company", t.info->is_company == 1, alloc);
  return "";
}

crm_status OdooConnector::push(const Value &request, rapidjson::Document &result) {
  const Target &t = target_of(request, "push");
  std::string mode = get_text(request, "mode");
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
  std::string match_on = get_text(request, "match_on");
  if (match_on.empty() && std::string_view(t.info->name) == "contact") match_on = "email";
  if (match_on.empty() && std::string_view(t.info->name) == "company") match_on = "name";

  std::vector<PushItem> items(records.Size());
  for (rapidjson::SizeType i = 0; i < records.Size(); ++i) {
    PushItem &item = items[i];
    const Value &r = records[i];
    item.ref = get_text(r, "ref");
    item.id = get_text(r, "id");
    if (r.IsObject() && r.HasMember("data") && r["data"].IsObject()) item.data = &r["data"];
    if (item.data && !match_on.empty()) item.match_value = get_text(*item.data, match_on.c_str());
    item.match_key =
        normalize.any() ? normalize.apply(item.match_value) : sdk::lower_ascii(item.match_value);
    if (!names_only && !item.data)
      item.error("invalid_input", "\"data\" must be an object", false);
    else if (!item.id.empty() && !all_digits(item.id))
      item.error("invalid_input", "\"" + item.id + "\" is not an Odoo record id", false);
  }

  if (mode == "match") confirm_ids(t, items);  // before the lookup below fills in ids
  if (mode != "create" && !match_on.empty()) resolve_by_match_key(t, match_on, normalize, items);
  if (mode == "match") {
    for (auto &item : items) {
      if (item.done) continue;
      if (item.id.empty())
        item.error("not_found",
                   "no " + std::string(t.info->name) + " has this " +
                       (match_on.empty() ? std::string("match key") : match_on),
                   false);
      else
        item.succeed(item.id, false);
    }
  }

  bool written = false;
  std::vector<PushItem *> creates, deletes;
  // Inputs that share a match key no record has yet: the first creates it, the later ones are
  // written to it afterwards, in order (creating each would make duplicates).
  std::map<std::string, PushItem *> creating;              // by match_key
  std::vector<std::pair<PushItem *, PushItem *>> repeats;  // (item, the one that creates)
  for (auto &item : items) {
    if (item.done) continue;
    if (mode == "delete" || mode == "archive") {
      if (item.id.empty())
        item.error("not_found", "no " + std::string(t.info->name) + " matches this record", false);
      else
        deletes.push_back(&item);
      continue;
    }
    Value vals;
    if (std::string problem = to_vals(t, *item.data, vals, item.vals.GetAllocator());
        !problem.empty()) {
      item.error("invalid_input", problem, false);
      continue;
    }
    static_cast<Value &>(item.vals) = vals;
    if (mode == "create" || (item.id.empty() && mode == "upsert")) {
      if (mode == "create") item.id.clear();
      if (mode == "upsert" && !item.match_key.empty()) {
        auto [first, inserted] = creating.emplace(item.match_key, &item);
        if (!inserted) {
          repeats.emplace_back(&item, first->second);
          continue;
        }
      }
      creates.push_back(&item);
    } else if (item.id.empty()) {
      item.error("not_found",
                 "no " + std::string(t.info->name) + " has this id or " +
                     (match_on.empty() ? std::string("match key") : match_on),
                 false);
    } else {
      write_one(t, item, written);
    }
  }
  for (size_t at = 0; at < creates.size(); at += 100)
    create_batch(t, {creates.begin() + at, creates.begin() + std::min(creates.size(), at + 100)},
                 written);
  for (auto &[item, creator] : repeats) {
    if (!creator->ok) {
      item->error(creator->done ? creator->code : "remote",
                  "not written: the record it shares " + match_on + " with was not created (" +
                      creator->message + ")",
                  creator->done ? creator->retryable : true);
      continue;
    }
    item->id = creator->result_id;
    write_one(t, *item, written);
  }
  if (!deletes.empty() && mode == "archive" && !field_types(t.model).count("active")) {
    for (PushItem *item : deletes)
      item->error("unsupported",
                  t.model + " has no active field, so its records cannot be archived; delete them",
                  false);
  } else if (!deletes.empty()) {
    remove_batch(t, deletes, mode == "archive", written);
  }

  auto &alloc = result.GetAllocator();
  Value results(rapidjson::kArrayType);
  for (const auto &item : items)
    results.PushBack(item.to_json(alloc, "Odoo returned no result"), alloc);
  result.AddMember("results", results, alloc);
  return CRM_OK;
}

// One search_read finds the records already holding the batch's match values (archived ones
// too, so a match is never duplicated); the oldest wins when several do. Without normalisation
// the domain asks for the exact values (`in`); with it, one ilike term per normalised value (a
// case-insensitive substring: a superset) and the candidates are compared normalised here.
void OdooConnector::resolve_by_match_key(const Target &t, const std::string &match_on,
                                         const sdk::MatchNormalize &normalize,
                                         std::vector<PushItem> &items) {
  rapidjson::Document args(rapidjson::kObjectType);
  auto &a = args.GetAllocator();
  Value values(rapidjson::kArrayType), domain(rapidjson::kArrayType), fields(rapidjson::kArrayType);
  std::set<std::string> distinct;
  for (const auto &item : items) {
    if (item.done || !item.id.empty() || item.match_key.empty()) continue;
    const std::string &wanted = normalize.any() ? item.match_key : item.match_value;
    if (distinct.insert(wanted).second) values.PushBack(Value(wanted.c_str(), a), a);
  }
  if (values.Empty()) return;
  domain.PushBack("&", a);
  if (normalize.any()) {
    // Polish notation: n terms need n-1 leading '|'.
    for (rapidjson::SizeType i = 1; i < values.Size(); ++i) domain.PushBack("|", a);
    for (auto &v : values.GetArray()) {
      // A backslash escapes in LIKE; as '_' (any one character) it still matches itself.
      std::string pattern(v.GetString(), v.GetStringLength());
      std::replace(pattern.begin(), pattern.end(), '\\', '_');
      Value term(rapidjson::kArrayType);
      term.PushBack(Value(match_on.c_str(), a), a)
          .PushBack("ilike", a)
          .PushBack(Value(pattern.c_str(), a), a);
      domain.PushBack(term, a);
    }
  } else {
    Value term(rapidjson::kArrayType);
    term.PushBack(Value(match_on.c_str(), a), a).PushBack("in", a).PushBack(values, a);
    domain.PushBack(term, a);
  }
  base_domain(t, domain, a);
  fields.PushBack(Value(match_on.c_str(), a), a);
  args.AddMember("domain", domain, a);
  args.AddMember("fields", fields, a);
  args.AddMember("order", "id asc", a);
  const rapidjson::Document found = call(t.model, "search_read", args, true);
  std::map<std::string, std::string> id_by_key;
  if (found.IsArray())
    for (const auto &r : found.GetArray()) {
      const std::string value = get_text(r, match_on.c_str());
      id_by_key.emplace(normalize.any() ? normalize.apply(value) : sdk::lower_ascii(value),
                        get_text(r, "id"));
    }
  for (auto &item : items)
    if (!item.done && item.id.empty() && !item.match_key.empty())
      if (auto it = id_by_key.find(item.match_key); it != id_by_key.end()) item.id = it->second;
}

// match mode: the inputs that came with an id are ok when that record exists (archived or
// not, of the object's kind); one search for the batch.
void OdooConnector::confirm_ids(const Target &t, std::vector<PushItem> &items) {
  rapidjson::Document args(rapidjson::kObjectType);
  auto &a = args.GetAllocator();
  Value ids(rapidjson::kArrayType), term(rapidjson::kArrayType), domain(rapidjson::kArrayType);
  for (const auto &item : items)
    if (!item.done && !item.id.empty()) ids.PushBack(static_cast<int64_t>(std::stoll(item.id)), a);
  if (ids.Empty()) return;
  term.PushBack("id", a).PushBack("in", a).PushBack(ids, a);
  domain.PushBack("&", a).PushBack(term, a);
  base_domain(t, domain, a);
  args.AddMember("domain", domain, a);
  const rapidjson::Document found = call(t.model, "search", args, true);
  std::set<std::string> present;
  if (found.IsArray())
    for (const auto &id : found.GetArray())
      if (id.IsInt64()) present.insert(std::to_string(id.GetInt64()));
  for (auto &item : items)
    if (!item.done && !item.id.empty() && !present.count(item.id))
      item.error("not_found", "no " + std::string(t.info->name) + " has id " + item.id, false);
}

void OdooConnector::write_one(const Target &t, PushItem &item, bool &written) {
  rapidjson::Document args(rapidjson::kObjectType);
  auto &a = args.GetAllocator();
  Value ids(rapidjson::kArrayType);
  ids.PushBack(static_cast<int64_t>(std::stoll(item.id)), a);
  args.AddMember("ids", ids, a);
  args.AddMember("vals", Value(item.vals, a), a);
  Reply reply;
  try {
    // The same values written twice leave the same record: safe for the host to repeat.
    reply = rpc(t.model, "write", args, true);
  } catch (const Error &e) {
    if (!written) throw;  // nothing written yet: the whole call fails and is retried as one
    item.error(e.status() == CRM_ERR_RATE_LIMITED ? "rate_limited" : "transport", e.what(), true);
    return;
  }
  if (!reply.fault) {
    written = true;
    item.succeed(item.id, false);
    return;
  }
  const Classified c = classify_fault(*reply.fault);
  if (!written && (c.retryable || c.status == CRM_ERR_UNAUTHORIZED))
    fail(*reply.fault, t.model + ".write");
  item.error(c.code, fault_text(*reply.fault), c.retryable);
}

void OdooConnector::create_batch(const Target &t, std::vector<PushItem *> items, bool &written) {
  if (items.empty()) return;
  rapidjson::Document args(rapidjson::kObjectType);
  auto &a = args.GetAllocator();
  Value list(rapidjson::kArrayType);
  for (PushItem *item : items) list.PushBack(Value(item->vals, a), a);
  args.AddMember("vals_list", list, a);
  Reply reply;
  try {
    // Not idempotent: a create repeated after a lost answer would make a duplicate.
    reply = rpc(t.model, "create", args, false);
  } catch (const Error &e) {
    if (!written) throw;
    for (PushItem *item : items)
      item->error(e.status() == CRM_ERR_RATE_LIMITED ? "rate_limited" : "transport", e.what(),
                  true);
    return;
  }
  if (!reply.fault) {
    written = true;
    std::vector<int64_t> ids;
    if (reply.result.IsArray()) {
      for (const auto &id : reply.result.GetArray())
        if (id.IsInt64()) ids.push_back(id.GetInt64());
    } else if (reply.result.IsInt64()) {
      ids.push_back(reply.result.GetInt64());  // a server answering one id for one record
    }
    // create([...]) answers the new ids in the order of the values.
    for (size_t i = 0; i < items.size(); ++i) {
      if (ids.size() == items.size())
        items[i]->succeed(std::to_string(ids[i]), true);
      else
        items[i]->error("remote",
                        "Odoo answered " + std::to_string(ids.size()) + " ids for " +
                            std::to_string(items.size()) + " records",
                        false);
    }
    return;
  }
  const Classified c = classify_fault(*reply.fault);
  // One bad record fails the whole transaction: each alone shows which it was.
  if (!c.retryable && c.status != CRM_ERR_UNAUTHORIZED && items.size() > 1) {
    for (PushItem *item : items) create_batch(t, {item}, written);
    return;
  }
  if (!written && (c.retryable || c.status == CRM_ERR_UNAUTHORIZED))
    fail(*reply.fault, t.model + ".create");
  for (PushItem *item : items) item->error(c.code, fault_text(*reply.fault), c.retryable);
}

// unlink, or (archive) write active=false. Already gone counts as done either way.
void OdooConnector::remove_batch(const Target &t, std::vector<PushItem *> items, bool archive,
                                 bool &written) {
  rapidjson::Document args(rapidjson::kObjectType);
  auto &a = args.GetAllocator();
  Value ids(rapidjson::kArrayType);
  for (PushItem *item : items) ids.PushBack(static_cast<int64_t>(std::stoll(item->id)), a);
  args.AddMember("ids", ids, a);
  if (archive) {
    Value vals(rapidjson::kObjectType);
    vals.AddMember("active", false, a);
    args.AddMember("vals", vals, a);
  }
  const std::string method = archive ? "write" : "unlink";
  Reply reply;
  try {
    reply = rpc(t.model, method, args, true);
  } catch (const Error &e) {
    if (!written) throw;
    for (PushItem *item : items) item->error("transport", e.what(), true);
    return;
  }
  const Classified c = reply.fault ? classify_fault(*reply.fault) : Classified{CRM_OK, "", false};
  // Already gone is what a delete wants: a repeated delete must not dead-letter.
  if (!reply.fault || c.code == "not_found") {
    if (reply.fault && items.size() > 1) {
      for (PushItem *item : items) remove_batch(t, {item}, archive, written);
      return;
    }
    written = true;
    for (PushItem *item : items) item->succeed(item->id, false);
    return;
  }
  if (!c.retryable && c.status != CRM_ERR_UNAUTHORIZED && items.size() > 1) {
    for (PushItem *item : items) remove_batch(t, {item}, archive, written);
    return;
  }
  if (!written && (c.retryable || c.status == CRM_ERR_UNAUTHORIZED))
    fail(*reply.fault, t.model + "." + method);
  for (PushItem *item : items) item->error(c.code, fault_text(*reply.fault), c.retryable);
}

}  // namespace crmhost::odoo
