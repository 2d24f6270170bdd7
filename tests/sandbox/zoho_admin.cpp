// The Zoho emulator's controls under /_sandbox/zoho/ (not Zoho's API; no auth, loopback only),
// answered on either host of every data centre:
//   GET    /_sandbox/zoho/state                   orgs and their counts, credits, channels;
//                                                 data centres and ports; clock, knobs, faults
//   GET|DELETE /_sandbox/zoho/stats               counters, 429s, requests by path
//   PUT    /_sandbox/zoho/faults                  {p429, p5xx, latency_ms, drop, malformed, seed?}
//   POST   /_sandbox/zoho/clock/advance           {ms} -> {now_ms}
//   PUT    /_sandbox/zoho/knobs                   {token_ttl_seconds, page_token_ttl_ms,
//                                                  search_index_delay_ms}
//   POST   /_sandbox/zoho/orgs                    {id, data_centre, utc_offset_minutes,
//                                                  credits_per_day, concurrency, user_name}
//   POST   /_sandbox/zoho/orgs/ORG/credits/reset
//   POST   /_sandbox/zoho/clients                 {client_id, client_secret, refresh_token, org}
//   POST   /_sandbox/zoho/tokens                  {org} -> {access_token}
//   POST   /_sandbox/zoho/tokens/expire           every issued access token expires now
//   PUT    /_sandbox/zoho/unique-fields           {module, fields: [..]}
//   GET    /_sandbox/zoho/orgs/ORG/MODULE         {data: [records as Zoho renders them]}
//   GET    /_sandbox/zoho/orgs/ORG/MODULE/deleted {data: [{id, display_name, type, ...}]}
//   POST   /_sandbox/zoho/orgs/ORG/MODULE/seed    {count, seed, multi_select} or {records: [..]}
//   POST   /_sandbox/zoho/orgs/ORG/MODULE         {fields}: as a UI user (webhooks fire)
//   PATCH|DELETE /_sandbox/zoho/orgs/ORG/MODULE/ID {fields}
//   POST   /_sandbox/zoho/orgs/ORG/MODULE/recycle-bin/empty
//   GET    /_sandbox/zoho/orgs/ORG/channels
//   GET|POST|DELETE /_sandbox/zoho/workflow-rules[/ID]  {org_id, module, events, url,
//                                                  header_name, header_value, payload_template}
//   GET|DELETE /_sandbox/zoho/deliveries
//   GET|DELETE /_sandbox/zoho/write-calls
// POST is accepted wherever PUT is.
#include "sandbox/zoho_internal.hpp"

namespace crmsandbox {

using namespace zoho;

namespace {

HttpResponse answer(int status, const std::string &message) {
  return json_response(status, R"({"message":)" + json_string(message) + "}");
}

double number(const rapidjson::Value &body, const char *name, double fallback) {
  const auto it = body.FindMember(name);
  return it != body.MemberEnd() && it->value.IsNumber() ? it->value.GetDouble() : fallback;
}

std::string text(const rapidjson::Value &body, const char *name, const std::string &fallback = "") {
  const auto it = body.FindMember(name);
  if (it == body.MemberEnd()) return fallback;
  if (it->value.IsString()) return it->value.GetString();
  if (it->value.IsInt64()) return std::to_string(it->value.GetInt64());
  return fallback;
}

std::vector<std::string> strings(const rapidjson::Value &body, const char *name) {
  std::vector<std::string> out;
  const auto it = body.FindMember(name);
  if (it == body.MemberEnd() || !it->value.IsArray()) return out;
  for (const auto &s : it->value.GetArray())
    if (s.IsString()) out.emplace_back(s.GetString());
  return out;
}

ZohoFields fields_of(const rapidjson::Value &object) {
  if (!object.IsObject()) throw std::invalid_argument("fields must be a JSON object");
  ZohoFields out;
  for (const auto &m : object.GetObject()) out[m.name.GetString()] = from_json(m.value);
  return out;
}

void write_faults(JsonWriter &w, const FaultConfig &f) {
  w.StartObject();
  w.Key("p429");
  w.Double(f.p429);
  w.Key("p5xx");
  w.Double(f.p5xx);
  w.Key("latency_ms");
  w.Int(f.latency_ms);
  w.Key("drop");
  w.Double(f.drop);
  w.Key("malformed");
  w.Double(f.malformed);
  w.EndObject();
}

void write_stats(JsonWriter &w, const ZohoStats &s) {
  w.StartObject();
  for (const auto &[name, value] : std::initializer_list<std::pair<const char *, uint64_t>>{
           {"requests", s.requests},
           {"token_requests", s.token_requests},
           {"unauthorized", s.unauthorized},
           {"limited_credits", s.limited_credits},
           {"limited_concurrency", s.limited_concurrency},
           {"injected_429", s.injected_429},
           {"injected_5xx", s.injected_5xx},
           {"dropped", s.dropped},
           {"malformed", s.malformed},
           {"too_many_requests", s.too_many_requests()}}) {
    w.Key(name);
    w.Uint64(value);
  }
  w.Key("by_path");
  w.StartObject();
  for (const auto &[path, n] : s.by_path) {
    key(w, path);
    w.Uint64(n);
  }
  w.EndObject();
  w.EndObject();
}

void write_delivery(JsonWriter &w, const ZohoDelivery &d) {
  w.StartObject();
  w.Key("kind");
  w.String(d.kind);
  w.Key("org_id");
  w.Int64(d.org_id);
  w.Key("channel_id");
  w.String(d.channel_id);
  w.Key("rule_id");
  w.Int64(d.rule_id);
  w.Key("module");
  w.String(d.module);
  w.Key("operation");
  w.String(d.operation);
  w.Key("ids");
  w.StartArray();
  for (const auto &id : d.ids) w.String(id);
  w.EndArray();
  w.Key("url");
  w.String(d.url);
  w.Key("body");
  w.String(d.body);
  w.Key("status");
  w.Int(d.status);
  w.Key("error");
  w.String(d.error);
  w.Key("sent_at_ms");
  w.Int64(d.sent_at_ms);
  w.EndObject();
}

std::vector<std::string> path_segments(std::string_view path) {
  std::vector<std::string> out;
  while (!path.empty()) {
    const auto slash = path.find('/');
    if (slash != 0) out.push_back(url_decode(path.substr(0, slash), false));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

}  // namespace

HttpResponse ZohoSandbox::Impl::admin(const HttpRequest &request) {
  auto &sandbox = *owner;
  const auto segments = path_segments(request.path);  // "_sandbox", "zoho", ...
  const auto &m = request.method;
  const bool post = m == "POST" || m == "PUT";
  rapidjson::Document body;
  body.SetObject();
  if ((post || m == "PATCH") && !request.body.empty()) {
    body.Parse(request.body.data(), request.body.size());
    if (body.HasParseError() || !body.IsObject())
      return answer(400, "the body must be a JSON object");
  }
  const auto at = [&](size_t i) { return i < segments.size() ? segments[i] : std::string(); };
  const size_t n = segments.size();
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  const auto done = [&] { return json_response(200, {buffer.GetString(), buffer.GetSize()}); };
  try {
    const auto what = at(2);
    if (what == "state" && m == "GET") {
      const auto counters = sandbox.stats();
      w.StartObject();
      w.Key("now_ms");
      w.Int64(sandbox.now_ms());
      w.Key("now");
      w.String(zoho_time(sandbox.now_ms(), 0));
      w.Key("data_centres");
      w.StartObject();
      for (const auto &dc : sandbox.data_centres()) {
        key(w, dc);
        w.StartObject();
        w.Key("api_port");
        w.Uint(sandbox.api_port(dc));
        w.Key("accounts_port");
        w.Uint(sandbox.accounts_port(dc));
        w.EndObject();
      }
      w.EndObject();
      w.Key("orgs");
      w.StartObject();
      for (const auto id : sandbox.orgs()) {
        const auto spec = sandbox.org(id);
        key(w, std::to_string(id));
        w.StartObject();
        w.Key("data_centre");
        w.String(spec.data_centre);
        w.Key("utc_offset_minutes");
        w.Int(spec.utc_offset_minutes);
        w.Key("credits_per_day");
        w.Int64(spec.credits_per_day);
        w.Key("credits_used");
        w.Int64(sandbox.credits_used(id));
        w.Key("concurrency");
        w.Int64(spec.concurrency);
        for (const auto &module : all_modules()) {
          key(w, module.name);
          w.Uint64(sandbox.count(id, module.name));
        }
        w.Key("channels");
        w.Uint64(sandbox.channels(id).size());
        w.EndObject();
      }
      w.EndObject();
      {
        std::lock_guard lock(mutex);
        w.Key("token_ttl_seconds");
        w.Int64(token_ttl_seconds);
        w.Key("page_token_ttl_ms");
        w.Int64(page_token_ttl_ms);
        w.Key("search_index_delay_ms");
        w.Int64(search_index_delay_ms);
      }
      w.Key("faults");
      write_faults(w, sandbox.faults());
      w.Key("stats");
      write_stats(w, counters);
      w.EndObject();
      return done();
    }
    if (what == "stats" && n == 3) {
      if (m == "DELETE") {
        sandbox.reset_stats();
        return answer(200, "ok");
      }
      write_stats(w, sandbox.stats());
      return done();
    }
    if (what == "faults" && post) {
      FaultConfig f = sandbox.faults();
      f.p429 = number(body, "p429", f.p429);
      f.p5xx = number(body, "p5xx", f.p5xx);
      f.latency_ms = static_cast<int>(number(body, "latency_ms", f.latency_ms));
      f.drop = number(body, "drop", f.drop);
      f.malformed = number(body, "malformed", f.malformed);
      sandbox.set_faults(f);
      if (body.HasMember("seed") && body["seed"].IsUint64())
        sandbox.set_fault_seed(body["seed"].GetUint64());
      write_faults(w, f);
      return done();
    }
    if (what == "clock" && at(3) == "advance" && m == "POST") {
      sandbox.advance_clock(std::chrono::milliseconds(static_cast<int64_t>(number(body, "ms", 0))));
      w.StartObject();
      w.Key("now_ms");
      w.Int64(sandbox.now_ms());
      w.EndObject();
      return done();
    }
    if (what == "knobs" && post) {
      if (body.HasMember("token_ttl_seconds"))
        sandbox.set_token_ttl(
            std::chrono::seconds(static_cast<int64_t>(number(body, "token_ttl_seconds", 3600))));
      if (body.HasMember("page_token_ttl_ms"))
        sandbox.set_page_token_ttl(std::chrono::milliseconds(
            static_cast<int64_t>(number(body, "page_token_ttl_ms", kDayMs))));
      if (body.HasMember("search_index_delay_ms"))
        sandbox.set_search_index_delay(std::chrono::milliseconds(
            static_cast<int64_t>(number(body, "search_index_delay_ms", 0))));
      return answer(200, "ok");
    }
    if (what == "orgs" && n == 3 && post) {
      const auto id = static_cast<int64_t>(number(body, "id", 0));
      if (id <= 0) return answer(400, "id is required");
      ZohoOrg spec = sandbox.org(id);
      spec.data_centre = text(body, "data_centre", spec.data_centre);
      spec.utc_offset_minutes =
          static_cast<int>(number(body, "utc_offset_minutes", spec.utc_offset_minutes));
      spec.credits_per_day =
          static_cast<int64_t>(number(body, "credits_per_day", double(spec.credits_per_day)));
      spec.concurrency =
          static_cast<int64_t>(number(body, "concurrency", double(spec.concurrency)));
      spec.user_name = text(body, "user_name", spec.user_name);
      sandbox.add_org(spec);
      return answer(200, "ok");
    }
    if (what == "clients" && post) {
      if (text(body, "client_id").empty()) return answer(400, "client_id is required");
      sandbox.add_client(text(body, "client_id"), text(body, "client_secret"),
                         text(body, "refresh_token"), static_cast<int64_t>(number(body, "org", 0)));
      return answer(200, "ok");
    }
    if (what == "tokens" && at(3) == "expire" && m == "POST") {
      sandbox.expire_tokens();
      return answer(200, "ok");
    }
    if (what == "tokens" && n == 3 && m == "POST") {
      w.StartObject();
      w.Key("access_token");
      w.String(sandbox.issue_token(static_cast<int64_t>(number(body, "org", 0))));
      w.EndObject();
      return done();
    }
    if (what == "unique-fields" && post) {
      sandbox.set_unique_fields(text(body, "module"), strings(body, "fields"));
      return answer(200, "ok");
    }
    if (what == "orgs" && n >= 4) {
      const auto org_id = parse_number(at(3));
      if (!org_id) return answer(400, "the org must be a number");
      const auto o = static_cast<int64_t>(*org_id);
      const auto module = at(4), id = at(5);
      if (module == "credits" && id == "reset" && m == "POST") {
        sandbox.reset_credits(o);
        return answer(200, "ok");
      }
      if (module == "channels" && n == 5 && m == "GET") {
        w.StartArray();
        for (const auto &c : sandbox.channels(o)) {
          w.StartObject();
          w.Key("channel_id");
          w.String(c.channel_id);
          w.Key("events");
          w.StartArray();
          for (const auto &e : c.events) w.String(e);
          w.EndArray();
          w.Key("expiry_ms");
          w.Int64(c.expiry_ms);
          w.Key("notify_url");
          w.String(c.notify_url);
          w.EndObject();
        }
        w.EndArray();
        return done();
      }
      const auto *def = find_module(module);
      if (!def) return answer(400, "unknown module " + module);
      if (n == 5 && m == "GET") {
        std::lock_guard lock(mutex);
        auto &org_state = org(o);
        w.StartObject();
        w.Key("data");
        w.StartArray();
        for (const auto &[rid, record] : org_state.tables[def->name].records)
          write_record(w, org_state, *def, record, nullptr);
        w.EndArray();
        w.EndObject();
        return done();
      }
      if (id == "deleted" && n == 6 && m == "GET") {
        w.StartObject();
        w.Key("data");
        w.StartArray();
        for (const auto &d : sandbox.deleted_records(o, module)) {
          w.StartObject();
          w.Key("id");
          w.String(d.id);
          w.Key("display_name");
          w.String(d.display_name);
          w.Key("type");
          w.String(d.type);
          w.Key("deleted_ms");
          w.Int64(d.deleted_ms);
          w.EndObject();
        }
        w.EndArray();
        w.EndObject();
        return done();
      }
      if (id == "recycle-bin" && at(6) == "empty" && m == "POST") {
        sandbox.empty_recycle_bin(o, module);
        return answer(200, "ok");
      }
      std::vector<std::string> ids;
      if (id == "seed" && n == 6 && m == "POST") {
        if (body.HasMember("records") && body["records"].IsArray()) {
          std::vector<ZohoFields> records;
          for (const auto &r : body["records"].GetArray()) records.push_back(fields_of(r));
          ids = sandbox.seed(o, module, records);
        } else {
          ZohoSeedOptions seed_options;
          seed_options.seed = static_cast<uint64_t>(number(body, "seed", 0));
          seed_options.multi_select = body.HasMember("multi_select") &&
                                      body["multi_select"].IsBool() &&
                                      body["multi_select"].GetBool();
          ids = sandbox.seed_generated(o, module, static_cast<size_t>(number(body, "count", 0)),
                                       seed_options);
        }
      } else if (n == 5 && m == "POST") {
        ids.push_back(sandbox.create_record(
            o, module, fields_of(body.HasMember("fields") ? body["fields"] : body)));
      } else if (n == 6 && m == "PATCH") {
        if (!sandbox.update_record(o, module, id,
                                   fields_of(body.HasMember("fields") ? body["fields"] : body)))
          return answer(404, "no such record");
        ids.push_back(id);
      } else if (n == 6 && m == "DELETE") {
        if (!sandbox.delete_record(o, module, id)) return answer(404, "no such record");
        ids.push_back(id);
      } else {
        return answer(404, "no sandbox control " + m + " " + request.path);
      }
      w.StartObject();
      w.Key("ids");
      w.StartArray();
      for (const auto &i : ids) w.String(i);
      w.EndArray();
      w.EndObject();
      return done();
    }
    if (what == "workflow-rules") {
      if (m == "GET" && n == 3) {
        w.StartArray();
        for (const auto &r : sandbox.workflow_rules()) {
          w.StartObject();
          w.Key("id");
          w.Int64(r.id);
          w.Key("org_id");
          w.Int64(r.org_id);
          w.Key("module");
          w.String(r.module);
          w.Key("events");
          w.StartArray();
          for (const auto &e : r.events) w.String(e);
          w.EndArray();
          w.Key("url");
          w.String(r.url);
          w.Key("header_name");
          w.String(r.header_name);
          w.Key("header_value_set");  // the secret itself is never echoed
          w.Bool(!r.header_value.empty());
          w.Key("payload_template");
          w.String(r.payload_template);
          w.EndObject();
        }
        w.EndArray();
        return done();
      }
      if (post && n == 3) {
        ZohoWorkflowRule rule;
        rule.org_id = static_cast<int64_t>(number(body, "org_id", 0));
        rule.module = text(body, "module");
        if (body.HasMember("events")) {
          const auto events = strings(body, "events");
          rule.events = {events.begin(), events.end()};
        }
        rule.url = text(body, "url");
        rule.header_name = text(body, "header_name");
        rule.header_value = text(body, "header_value");
        rule.payload_template = text(body, "payload_template");
        rule.content_type = text(body, "content_type", rule.content_type);
        const auto id = sandbox.add_workflow_rule(rule);
        w.StartObject();
        w.Key("id");
        w.Int64(id);
        w.EndObject();
        return done();
      }
      if (m == "DELETE" && n == 3) {
        sandbox.clear_workflow_rules();
        return answer(200, "ok");
      }
      if (m == "DELETE" && n == 4) {
        const auto id = parse_number(at(3));
        return id && sandbox.remove_workflow_rule(static_cast<int64_t>(*id))
                   ? answer(200, "ok")
                   : answer(404, "no such workflow rule");
      }
    }
    if (what == "deliveries" && n == 3) {
      if (m == "DELETE") {
        sandbox.clear_deliveries();
        return answer(200, "ok");
      }
      if (m == "GET") {
        w.StartArray();
        for (const auto &d : sandbox.deliveries()) write_delivery(w, d);
        w.EndArray();
        return done();
      }
    }
    if (what == "write-calls" && n == 3) {
      if (m == "DELETE") {
        sandbox.clear_write_calls();
        return answer(200, "ok");
      }
      if (m == "GET") {
        w.StartArray();
        for (const auto &c : sandbox.write_calls()) {
          w.StartObject();
          w.Key("org_id");
          w.Int64(c.org_id);
          w.Key("module");
          w.String(c.module);
          w.Key("operation");
          w.String(c.operation);
          w.Key("trigger");
          if (c.trigger) {
            w.StartArray();
            for (const auto &t : *c.trigger) w.String(t);
            w.EndArray();
          } else {
            w.Null();
          }
          w.Key("ids");
          w.StartArray();
          for (const auto &id : c.ids) w.String(id);
          w.EndArray();
          w.Key("body");
          w.String(c.body);
          w.Key("at_ms");
          w.Int64(c.at_ms);
          w.EndObject();
        }
        w.EndArray();
        return done();
      }
    }
  } catch (const std::invalid_argument &e) {
    return answer(400, e.what());
  } catch (const std::out_of_range &e) {
    return answer(400, e.what());
  }
  return answer(404, "no sandbox control " + m + " " + request.path);
}

}  // namespace crmsandbox
