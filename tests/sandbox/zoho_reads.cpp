// The Zoho emulator's reads: list with page and page_token (and ids= for named records), get by
// id, search (criteria, email, phone, word) and the deleted records, with If-Modified-Since deltas.
#include <algorithm>
#include <charconv>
#include <functional>
#include <set>

#include "sandbox/zoho_internal.hpp"
#include "util/time.hpp"

namespace crmsandbox {

using namespace zoho;

namespace {

using Query = std::map<std::string, std::string>;

constexpr int64_t kMaxIdsPerList = 100;

ApiError param_error(const std::string &code, const std::string &message,
                     const std::string &param) {
  ApiError e;
  e.code = code;
  e.message = message;
  e.detail("param_name", param);
  return e;
}

ApiError limit_error(const std::string &code, const std::string &message, int64_t limit,
                     const std::string &param = "") {
  ApiError e;
  e.code = code;
  e.message = message;
  e.detail_raw("limit", std::to_string(limit));
  if (!param.empty()) e.detail("param_name", param);
  return e;
}

std::string value_of(const Query &q, const char *name) {
  const auto it = q.find(name);
  return it == q.end() ? std::string() : it->second;
}

std::vector<std::string> split_fields(const std::string &text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i)
    if (i == text.size() || text[i] == ',') {
      auto name = text.substr(start, i - start);
      while (!name.empty() && name.front() == ' ') name.erase(name.begin());
      while (!name.empty() && name.back() == ' ') name.pop_back();
      if (!name.empty() && std::find(out.begin(), out.end(), name) == out.end())
        out.push_back(name);
      start = i + 1;
    }
  return out;
}

// A whole number from 1 up in a query parameter; nullopt when absent, 0 when malformed.
std::optional<int64_t> positive(const Query &q, const char *name) {
  const auto text = value_of(q, name);
  if (text.empty()) return q.count(name) ? std::optional<int64_t>(0) : std::nullopt;
  if (text.find_first_not_of("0123456789") != std::string::npos || text.size() > 9) return 0;
  return std::stoll(text);
}

// Time text with or without an offset; without one it is read in the org's zone (doc v7: the
// docs read datetimes in the user's zone).
std::optional<int64_t> parse_org_time(const std::string &text, int utc_offset_minutes) {
  const auto ms = crmhost::timeutil::parse_iso8601_ms(text);
  if (!ms) return std::nullopt;
  const bool zoned = text.size() > 19 && (text.back() == 'Z' || text.back() == 'z' ||
                                          text.find_first_of("+-", 19) != std::string::npos);
  return zoned || text.size() <= 10 ? *ms : *ms - utc_offset_minutes * 60'000LL;
}

struct Paging {
  int64_t per_page = kMaxPerPage;
  int64_t page = 1;
  std::string sort_by = "id";
  std::string sort_order = "desc";
  std::optional<int64_t> since_ms;  // If-Modified-Since
  std::string since_text;
};

// per_page, page, sort_by, sort_order and If-Modified-Since, checked.
std::optional<ApiError> read_paging(const Query &q, const HttpRequest &request, const Org &o,
                                    Paging &out, bool sortable) {
  if (const auto per_page = positive(q, "per_page")) {
    if (*per_page == 0) return param_error("INVALID_DATA", "invalid data", "per_page");  // (guess)
    if (*per_page > kMaxPerPage)
      return limit_error("LIMIT_EXCEEDED", "the per_page limit has been exceeded", kMaxPerPage,
                         "per_page");  // (guess) the code; the limit is doc v7
    out.per_page = *per_page;
  }
  if (const auto page = positive(q, "page")) {
    if (*page == 0) return param_error("INVALID_DATA", "invalid data", "page");  // (guess)
    out.page = *page;
  }
  if (sortable) {
    if (q.count("sort_by")) out.sort_by = value_of(q, "sort_by");
    if (q.count("sort_order")) out.sort_order = value_of(q, "sort_order");
    if (out.sort_by != "id" && out.sort_by != "Created_Time" && out.sort_by != "Modified_Time") {
      auto e = param_error("INVALID_DATA", "invalid data", "sort_by");  // (guess) the shape
      e.detail_raw("supported_values", R"(["id","Created_Time","Modified_Time"])");
      return e;
    }
    if (out.sort_order != "asc" && out.sort_order != "desc") {
      auto e = param_error("INVALID_DATA", "invalid data", "sort_order");  // (guess)
      e.detail_raw("supported_values", R"(["asc","desc"])");
      return e;
    }
  }
  out.since_text = request.header("If-Modified-Since");
  if (!out.since_text.empty()) {
    out.since_ms = parse_org_time(out.since_text, o.spec.utc_offset_minutes);
    if (!out.since_ms)  // (guess) the shape of a malformed header
      return param_error("INVALID_DATA", "invalid data", "If-Modified-Since");
  }
  return std::nullopt;
}

int64_t sort_key(const Stored &r, const std::string &sort_by) {
  if (sort_by == "Created_Time") return r.created_ms;
  if (sort_by == "Modified_Time") return r.modified_ms;
  return r.id;
}

// Records in the asked order, ties broken by id in the same direction.
void sort_records(std::vector<const Stored *> &records, const Paging &p) {
  const bool asc = p.sort_order == "asc";
  std::stable_sort(records.begin(), records.end(), [&](const Stored *a, const Stored *b) {
    const auto ka = std::make_pair(sort_key(*a, p.sort_by), a->id);
    const auto kb = std::make_pair(sort_key(*b, p.sort_by), b->id);
    return asc ? ka < kb : ka > kb;
  });
}

// If-Modified-Since compares at Zoho's second precision and includes the second itself (guess:
// "modified after" might be strict).
bool modified_since(int64_t modified_ms, const std::optional<int64_t> &since_ms) {
  return !since_ms || modified_ms >= *since_ms / 1000 * 1000;
}

void write_nullable(JsonWriter &w, const std::string &text) {
  if (text.empty())
    w.Null();
  else
    w.String(text);
}

}  // namespace

HttpResponse ZohoSandbox::Impl::list(Org &o, const ModuleDef &module, const HttpRequest &request) {
  const auto q = parse_query(request.query);
  const auto fields = split_fields(value_of(q, "fields"));
  // `fields` is mandatory when listing (doc v7; the OAS marks it optional).
  if (fields.empty())
    return error_response(param_error("REQUIRED_PARAM_MISSING",
                                      "One of the expected parameter is missing", "fields"));
  if (static_cast<int64_t>(fields.size()) > kMaxFields)
    return error_response(limit_error("LIMIT_EXCEEDED", "the limit has been exceeded", kMaxFields,
                                      "fields"));  // (guess) the message
  Paging p;
  if (auto e = read_paging(q, request, o, p, true)) return error_response(*e);
  const auto page_token = value_of(q, "page_token");
  if (!page_token.empty() && q.count("page")) {
    ApiError e;  // (guess) the details
    e.code = "AMBIGUITY_DURING_PROCESSING";
    e.message = "ambiguity while processing the request";
    e.detail_raw("ambiguity_due_to", R"(["page","page_token"])");
    return error_response(e);
  }
  // `ids`: only these records (doc v8: comma-separated, at most 100); ids Zoho does not hold are
  // left out of the answer (guess), and a non-numeric one is INVALID_DATA (guess).
  const auto id_texts = split_fields(value_of(q, "ids"));
  if (static_cast<int64_t>(id_texts.size()) > kMaxIdsPerList)
    return error_response(limit_error("LIMIT_EXCEEDED", "the limit has been exceeded",
                                      kMaxIdsPerList, "ids"));  // (guess) the message
  std::set<int64_t> ids;
  for (const auto &text : id_texts) {
    int64_t id = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size() || id <= 0)
      return error_response(param_error("INVALID_DATA", "invalid data", "ids"));
    ids.insert(id);
  }
  std::string binding;
  for (const auto &f : fields) binding += f + ",";
  binding += "|" + p.sort_by + "|" + p.sort_order + "|" + p.since_text + "|";
  for (const auto &id : id_texts) binding += id + ",";
  const int64_t now = clock();

  std::vector<const Stored *> all;
  for (const auto &[id, record] : o.tables[module.name].records)
    if (modified_since(record.modified_ms, p.since_ms) && (ids.empty() || ids.count(record.id)))
      all.push_back(&record);
  sort_records(all, p);

  size_t start = 0;
  int64_t served = 0;
  int64_t page_number = p.page;
  if (!page_token.empty()) {
    const auto found = page_tokens.find(page_token);
    if (found == page_tokens.end())  // (guess) an unknown token
      return error_response(param_error("INVALID_DATA", "invalid data", "page_token"));
    const auto &t = found->second;
    if (t.expires_ms <= now)
      return error_response(
          param_error("EXPIRED_VALUE", "the given page token has expired", "page_token"));
    if (t.org_id != o.spec.id || t.module != module.name || t.binding != binding)
      return error_response(param_error("TOKEN_BOUND_DATA_MISMATCH",
                                        "the page token is not bound to the given parameters",
                                        "page_token"));
    if (t.served >= kPageTokenLimit)
      return error_response(limit_error("PAGINATION_LIMIT_EXCEEDED",
                                        "cannot fetch more than 100000 records", kPageTokenLimit));
    const bool asc = p.sort_order == "asc";
    const auto last = std::make_pair(t.last_key, t.last_id);
    while (start < all.size()) {
      const auto k = std::make_pair(sort_key(*all[start], p.sort_by), all[start]->id);
      if (asc ? k > last : k < last) break;
      ++start;
    }
    served = t.served;
    page_number = served / p.per_page + 1;  // (guess) what `page` says on a token's page
  } else {
    const int64_t first = (p.page - 1) * p.per_page;
    if (first >= kDiscretePageLimit)
      return error_response(
          limit_error("DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                      "cannot fetch more than 2000 records with page; use the page_token parameter",
                      kDiscretePageLimit));  // (guess) the message
    start = static_cast<size_t>(first);
    served = first;
  }
  size_t end = std::min(all.size(), start + static_cast<size_t>(p.per_page));
  // (guess) a page straddling the 2,000th record stops there; page_token goes on
  if (page_token.empty()) end = std::min(end, static_cast<size_t>(kDiscretePageLimit));
  if (start >= end) return {204, "", {}, ""};  // no content: an empty body (doc v7, 2nd)

  const bool more = end < all.size();
  std::string next;
  int64_t next_expiry = 0;
  if (more) {
    std::erase_if(page_tokens, [&](const auto &kv) { return kv.second.expires_ms <= now; });
    next = random_hex(24);
    next_expiry = now + page_token_ttl_ms;
    const auto *last = all[end - 1];
    page_tokens[next] = {o.spec.id,  module.name,
                         binding,    sort_key(*last, p.sort_by),
                         last->id,   served + static_cast<int64_t>(end - start),
                         next_expiry};
  }
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("data");
  w.StartArray();
  for (size_t i = start; i < end; ++i) write_record(w, o, module, *all[i], &fields);
  w.EndArray();
  w.Key("info");
  w.StartObject();
  w.Key("per_page");
  w.Int64(p.per_page);
  w.Key("next_page_token");
  write_nullable(w, next);
  w.Key("count");
  w.Uint64(end - start);
  w.Key("sort_by");
  w.String(p.sort_by);
  w.Key("page");
  w.Int64(page_number);
  w.Key("previous_page_token");
  write_nullable(w, page_token);  // (guess) the token that led here; null on a page= page
  w.Key("page_token_expiry");
  write_nullable(w, more ? zoho_time(next_expiry, o.spec.utc_offset_minutes) : "");
  w.Key("sort_order");
  w.String(p.sort_order);
  w.Key("more_records");
  w.Bool(more);
  w.EndObject();
  w.EndObject();
  return json_response(200, {buffer.GetString(), buffer.GetSize()});
}

HttpResponse ZohoSandbox::Impl::get(Org &o, const ModuleDef &module, const std::string &id,
                                    const HttpRequest &request) {
  const auto q = parse_query(request.query);
  const auto fields = split_fields(value_of(q, "fields"));
  if (static_cast<int64_t>(fields.size()) > kMaxFields)
    return error_response(
        limit_error("LIMIT_EXCEEDED", "the limit has been exceeded", kMaxFields, "fields"));
  const auto *record = find(o, module, id);
  if (!record) return {204, "", {}, ""};  // (guess) a missing or deleted record: no content
  const auto since_text = request.header("If-Modified-Since");
  if (!since_text.empty()) {
    const auto since = parse_org_time(since_text, o.spec.utc_offset_minutes);
    if (!since)
      return error_response(param_error("INVALID_DATA", "invalid data", "If-Modified-Since"));
    if (!modified_since(record->modified_ms, since))
      return {304, "", {}, ""};  // (? the OAS lists Not Modified)
  }
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("data");
  w.StartArray();
  write_record(w, o, module, *record, fields.empty() ? nullptr : &fields);
  w.EndArray();
  w.EndObject();
  return json_response(200, {buffer.GetString(), buffer.GetSize()});
}

namespace {

struct Matcher {
  const Org &o;
  const ModuleDef &module;
  const std::function<std::string(const ZohoFields &)> &full_name;

  std::vector<std::string> texts(const Stored &r, const std::string &field) const {
    if (field == "id") return {std::to_string(r.id)};
    if (field == "Full_Name") return {full_name(r.fields)};
    const auto it = r.fields.find(field);
    return it == r.fields.end() ? std::vector<std::string>{} : value_texts(it->second);
  }

  bool condition(const Stored &r, const Criteria &c) const {
    const bool is_time = c.field == "Created_Time" || c.field == "Modified_Time";
    std::vector<std::optional<double>> numbers;  // the condition's values as numbers
    for (const auto &v : c.values) {
      if (is_time) {
        const auto t = parse_org_time(v, o.spec.utc_offset_minutes);
        numbers.push_back(t ? std::optional<double>(static_cast<double>(*t)) : std::nullopt);
      } else {
        numbers.push_back(parse_number(v));
      }
    }
    std::vector<std::string> have;
    std::vector<std::optional<double>> have_numbers;
    if (is_time) {
      const auto ms = c.field == "Created_Time" ? r.created_ms : r.modified_ms;
      have = {std::to_string(ms)};
      have_numbers = {static_cast<double>(ms)};
    } else {
      have = texts(r, c.field);
      for (const auto &h : have) have_numbers.push_back(parse_number(h));
    }
    // -1, 0, 1 comparing stored value i to condition value j; numbers when both are.
    const auto compare = [&](size_t i, size_t j) {
      if (have_numbers[i] && numbers[j])
        return *have_numbers[i] < *numbers[j] ? -1 : *have_numbers[i] > *numbers[j] ? 1 : 0;
      if (is_time) return 2;  // an unparsable time matches nothing
      const auto a = lowercase(have[i]), b = lowercase(c.values[j]);
      return a < b ? -1 : a > b ? 1 : 0;
    };
    const auto any = [&](auto &&predicate) {
      for (size_t i = 0; i < have.size(); ++i)
        for (size_t j = 0; j < c.values.size(); ++j)
          if (predicate(i, j)) return true;
      return false;
    };
    const bool numeric_field = is_time || (!have_numbers.empty() && have_numbers[0]);
    if (c.op == "equals")
      // (doc v7) equals acts like contains on text; numbers and times compare exactly
      return any([&](size_t i, size_t j) {
        if (numeric_field && numbers[j]) return compare(i, j) == 0;
        return lowercase(have[i]).find(lowercase(c.values[j])) != std::string::npos;
      });
    if (c.op == "not_equal") return !any([&](size_t i, size_t j) { return compare(i, j) == 0; });
    if (c.op == "in") return any([&](size_t i, size_t j) { return compare(i, j) == 0; });
    if (c.op == "not_in") return !any([&](size_t i, size_t j) { return compare(i, j) == 0; });
    if (c.op == "starts_with")
      return any([&](size_t i, size_t j) {
        return lowercase(have[i]).rfind(lowercase(c.values[j]), 0) == 0;
      });
    if (c.op == "greater_than") return any([&](size_t i, size_t j) { return compare(i, j) == 1; });
    if (c.op == "greater_equal")
      return any([&](size_t i, size_t j) {
        const auto k = compare(i, j);
        return k == 0 || k == 1;
      });
    if (c.op == "less_than") return any([&](size_t i, size_t j) { return compare(i, j) == -1; });
    if (c.op == "less_equal") return any([&](size_t i, size_t j) { return compare(i, j) <= 0; });
    if (c.op == "between") {
      if (c.values.size() != 2) return false;
      for (size_t i = 0; i < have.size(); ++i) {
        const auto low = compare(i, 0), high = compare(i, 1);
        if ((low == 0 || low == 1) && high <= 0) return true;
      }
      return false;
    }
    return false;
  }

  bool matches(const Stored &r, const Criteria &c) const {
    if (c.kind == Criteria::Condition) return condition(r, c);
    if (c.kind == Criteria::And)
      return std::all_of(c.children.begin(), c.children.end(),
                         [&](const auto &child) { return matches(r, child); });
    return std::any_of(c.children.begin(), c.children.end(),
                       [&](const auto &child) { return matches(r, child); });
  }
};

const std::set<std::string> kOperators = {
    "equals",       "not_equal",     "in",        "not_in",     "starts_with",
    "greater_than", "greater_equal", "less_than", "less_equal", "between"};

std::optional<std::string> unknown_operator(const Criteria &c) {
  if (c.kind == Criteria::Condition)
    return kOperators.count(c.op) ? std::nullopt : std::optional<std::string>(c.op);
  for (const auto &child : c.children)
    if (auto op = unknown_operator(child)) return op;
  return std::nullopt;
}

std::string digits_of(const std::string &text) {
  std::string out;
  for (const char ch : text)
    if (std::isdigit(static_cast<unsigned char>(ch))) out += ch;
  return out;
}

}  // namespace

HttpResponse ZohoSandbox::Impl::search(Org &o, const ModuleDef &module,
                                       const HttpRequest &request) {
  const auto q = parse_query(request.query);
  const auto criteria_text = value_of(q, "criteria"), email = value_of(q, "email"),
             phone = value_of(q, "phone"), word = value_of(q, "word");
  if (criteria_text.empty() && email.empty() && phone.empty() && word.empty())
    return error_response(param_error("REQUIRED_PARAM_MISSING",
                                      "One of the expected parameter is missing",
                                      "criteria/email/phone/word"));  // (guess) the name
  if (q.count("page_token"))  // (doc) search has no page_token; (guess) the answer
    return error_response(param_error("INVALID_DATA", "invalid data", "page_token"));
  const auto fields = split_fields(value_of(q, "fields"));
  if (static_cast<int64_t>(fields.size()) > kMaxFields)
    return error_response(
        limit_error("LIMIT_EXCEEDED", "the limit has been exceeded", kMaxFields, "fields"));
  Paging p;
  if (auto e = read_paging(q, request, o, p, true)) return error_response(*e);
  const int64_t first = (p.page - 1) * p.per_page;
  if (first >= kSearchLimit)
    return error_response(limit_error("LIMIT_REACHED", "search results limit reached",
                                      kSearchLimit));  // (guess) the message
  std::optional<Criteria> criteria;
  if (!criteria_text.empty()) {
    std::string error;
    criteria = parse_criteria(criteria_text, error);
    ApiError e;  // (guess) the code and details of a bad criteria
    e.code = "INVALID_QUERY";
    e.message = "invalid query formed";
    if (!criteria) {
      e.detail("reason", error);
      return error_response(e);
    }
    if (static_cast<int64_t>(criteria->conditions()) > kMaxCriteria)
      return error_response(limit_error("LIMIT_EXCEEDED", "the limit has been exceeded",
                                        kMaxCriteria, "criteria"));  // (guess) the code
    if (const auto op = unknown_operator(*criteria)) {
      e.detail("operator", *op).detail("reason", "invalid operator found");
      return error_response(e);
    }
  }
  const std::function<std::string(const ZohoFields &)> full_name = [&](const ZohoFields &f) {
    return display_name(module, f);
  };
  const Matcher matcher{o, module, full_name};
  const int64_t now = clock();
  std::vector<const Stored *> found;
  for (const auto &[id, record] : o.tables[module.name].records) {
    // Fresh writes are missing until indexed (doc v7); (guess) the whole record is
    if (search_index_delay_ms > 0 && record.modified_ms + search_index_delay_ms > now) continue;
    if (!modified_since(record.modified_ms, p.since_ms)) continue;
    if (criteria && !matcher.matches(record, *criteria)) continue;
    if (!email.empty()) {
      bool hit = false;
      for (const char *f : {"Email", "Secondary_Email"})
        for (const auto &t : matcher.texts(record, f))
          hit = hit || lowercase(t) == lowercase(email);
      if (!hit) continue;
    }
    if (!phone.empty()) {
      bool hit = false;
      for (const char *f : {"Phone", "Mobile"})
        for (const auto &t : matcher.texts(record, f))
          hit = hit || (!digits_of(t).empty() && digits_of(t) == digits_of(phone));
      if (!hit) continue;
    }
    if (!word.empty()) {
      bool hit = false;
      for (const auto &[name, value] : record.fields)
        for (const auto &t : value_texts(value))
          hit = hit || lowercase(t).find(lowercase(word)) != std::string::npos;
      if (!hit) continue;
    }
    found.push_back(&record);
  }
  sort_records(found, p);
  if (found.size() > static_cast<size_t>(kSearchLimit)) found.resize(kSearchLimit);
  const auto start = static_cast<size_t>(first);
  const auto end = std::min(found.size(), start + static_cast<size_t>(p.per_page));
  if (start >= end) return {204, "", {}, ""};
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("data");
  w.StartArray();
  for (size_t i = start; i < end; ++i)
    write_record(w, o, module, *found[i], fields.empty() ? nullptr : &fields);
  w.EndArray();
  w.Key("info");
  w.StartObject();
  w.Key("per_page");
  w.Int64(p.per_page);
  w.Key("count");
  w.Uint64(end - start);
  w.Key("page");
  w.Int64(p.page);
  w.Key("more_records");
  w.Bool(end < found.size());
  w.EndObject();
  w.EndObject();
  return json_response(200, {buffer.GetString(), buffer.GetSize()});
}

HttpResponse ZohoSandbox::Impl::deleted(Org &o, const ModuleDef &module,
                                        const HttpRequest &request) {
  const auto q = parse_query(request.query);
  const auto type = q.count("type") ? value_of(q, "type") : std::string("all");
  if (type != "all" && type != "recycle" && type != "permanent")
    return error_response(param_error("INVALID_DATA", "invalid data", "type"));
  Paging p;
  if (auto e = read_paging(q, request, o, p, false)) return error_response(*e);
  const int64_t now = clock();
  constexpr int64_t kRecycleDays = 60, kPermanentDays = 120;  // (doc v7) how long entries stay
  auto &entries = o.tables[module.name].deleted;
  // Recycle-bin entries older than 60 days are purged: permanent from then on, for 120 days.
  for (auto &e : entries)
    if (e.type == "recycle" && now - e.deleted_ms >= kRecycleDays * kDayMs) e.type = "permanent";
  std::erase_if(entries, [&](const DeletedEntry &e) {
    return e.type == "permanent" && now - e.deleted_ms >= (kRecycleDays + kPermanentDays) * kDayMs;
  });
  std::vector<const DeletedEntry *> shown;
  for (auto it = entries.rbegin(); it != entries.rend(); ++it)  // newest first (guess)
    if ((type == "all" || it->type == type) && modified_since(it->deleted_ms, p.since_ms))
      shown.push_back(&*it);
  const auto start = static_cast<size_t>((p.page - 1) * p.per_page);
  const auto end = std::min(shown.size(), start + static_cast<size_t>(p.per_page));
  if (start >= end) return {204, "", {}, ""};
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("data");
  w.StartArray();
  for (size_t i = start; i < end; ++i) {
    const auto &e = *shown[i];
    w.StartObject();
    w.Key("deleted_by");
    w.StartObject();
    w.Key("name");
    w.String(o.spec.user_name);
    w.Key("id");
    w.String(o.user_id());
    w.EndObject();
    w.Key("id");
    w.String(std::to_string(e.id));
    w.Key("display_name");
    w.String(e.display_name);
    w.Key("type");
    w.String(e.type);
    w.Key("created_by");
    w.StartObject();
    w.Key("name");
    w.String(o.spec.user_name);
    w.Key("id");
    w.String(o.user_id());
    w.EndObject();
    w.Key("deleted_time");
    w.String(zoho_time(e.deleted_ms, o.spec.utc_offset_minutes));
    w.EndObject();
  }
  w.EndArray();
  w.Key("info");
  w.StartObject();
  w.Key("per_page");
  w.Int64(p.per_page);
  w.Key("count");
  w.Uint64(end - start);
  w.Key("page");
  w.Int64(p.page);
  w.Key("more_records");
  w.Bool(end < shown.size());
  w.EndObject();
  w.EndObject();
  return json_response(200, {buffer.GetString(), buffer.GetSize()});
}

}  // namespace crmsandbox
