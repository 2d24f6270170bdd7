// The Odoo emulator's own JSON endpoints under /_sandbox/odoo/ (not Odoo's API; no auth,
// loopback only). Bodies are JSON objects; values are JSON as in Odoo's create/write (many2one
// as ids); errors answer 400 or 404 with {"message"}.
//   GET    /_sandbox/odoo/state                   databases, counts, users, clock, faults, stats
//   PUT    /_sandbox/odoo/faults                  {p429, p5xx, latency_ms, drop, malformed, seed?}
//   PUT    /_sandbox/odoo/clock                   {offset_seconds?, frozen?: "YYYY-MM-DD HH:MM:SS"
//                                                  or "" to run again} -> {now}
//   POST   /_sandbox/odoo/databases               {name}
//   POST   /_sandbox/odoo/users                   {db, login, password, api_key?, read_only?}
//                                                  -> {uid}
//   GET    /_sandbox/odoo/db/DB/MODEL[?archived=true]   -> {records: [{id, field: value}]}
//   POST   /_sandbox/odoo/db/DB/MODEL/seed        {count} (res.partner, crm.lead) or
//                                                  {records: [values]}: no webhooks -> {ids}
//   POST   /_sandbox/odoo/db/DB/MODEL             {values} or {records: [values]}, as a user
//                                                  would in one transaction (webhooks) -> {ids}
//   PATCH  /_sandbox/odoo/db/DB/MODEL/ID          {values}
//   DELETE /_sandbox/odoo/db/DB/MODEL/ID
//   POST   /_sandbox/odoo/db/DB/transactions      {backdate_seconds?} -> {id, stamp}
//   POST   /_sandbox/odoo/transactions/ID/create  {model, values} -> {id}
//   POST   /_sandbox/odoo/transactions/ID/write   {model, ids, values}
//   POST   /_sandbox/odoo/transactions/ID/unlink  {model, ids}
//   POST   /_sandbox/odoo/transactions/ID/commit  (or /rollback)
//   POST   /_sandbox/odoo/db/DB/late-commit       {model, records: [values], backdate_seconds?
//                                                  (default 5)}: the trap in one call: created in
//                                                  a transaction stamped that long ago, committed
//                                                  now -> {ids, stamp}
//   GET|POST /_sandbox/odoo/webhooks              {model, url, header_name, header_value, fields,
//                                                  triggers, name} -> {id}
//   DELETE /_sandbox/odoo/webhooks[/ID]
//   GET|DELETE /_sandbox/odoo/deliveries
// POST is accepted wherever PUT is.
#include "sandbox/odoo_internal.hpp"

namespace crmsandbox {

using namespace odoo;

namespace {

HttpResponse answer(int status, const std::string &message) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("message");
  w.String(message);
  w.EndObject();
  return {status, "application/json", {}, {buffer.GetString(), buffer.GetSize()}};
}

void key(JsonWriter &w, const std::string &name) {
  w.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
}

double number(const rapidjson::Value &body, const char *key, double fallback) {
  const auto it = body.FindMember(key);
  return it != body.MemberEnd() && it->value.IsNumber() ? it->value.GetDouble() : fallback;
}

std::string text(const rapidjson::Value &body, const char *key, const std::string &fallback = "") {
  const auto it = body.FindMember(key);
  return it != body.MemberEnd() && it->value.IsString() ? it->value.GetString() : fallback;
}

OdooValues values_of(const rapidjson::Value &object) {
  if (!object.IsObject()) throw std::invalid_argument("values must be a JSON object");
  OdooValues out;
  for (const auto &m : object.GetObject())
    out[m.name.GetString()] = from_json(m.value, m.name.GetString());
  return out;
}

std::vector<OdooValues> records_of(const rapidjson::Value &body) {
  std::vector<OdooValues> out;
  const auto it = body.FindMember("records");
  if (it == body.MemberEnd()) return {values_of(body.HasMember("values") ? body["values"] : body)};
  if (!it->value.IsArray()) throw std::invalid_argument("records must be a list");
  for (const auto &r : it->value.GetArray()) out.push_back(values_of(r));
  return out;
}

std::vector<int64_t> ids_of(const rapidjson::Value &body) {
  std::vector<int64_t> out;
  const auto it = body.FindMember("ids");
  if (it == body.MemberEnd() || !it->value.IsArray())
    throw std::invalid_argument("ids must be a list of integers");
  for (const auto &id : it->value.GetArray()) {
    if (!id.IsInt64()) throw std::invalid_argument("ids must be a list of integers");
    out.push_back(id.GetInt64());
  }
  return out;
}

void write_ids(JsonWriter &w, const std::vector<int64_t> &ids) {
  w.Key("ids");
  w.StartArray();
  for (const auto id : ids) w.Int64(id);
  w.EndArray();
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

void write_delivery(JsonWriter &w, const OdooDelivery &d) {
  w.StartObject();
  w.Key("rule_id");
  w.Int64(d.rule_id);
  w.Key("database");
  w.String(d.database);
  w.Key("model");
  w.String(d.model);
  w.Key("record_id");
  w.Int64(d.record_id);
  w.Key("trigger");
  w.String(d.trigger);
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

void write_rule(JsonWriter &w, const OdooWebhookRule &r) {
  w.StartObject();
  w.Key("id");
  w.Int64(r.id);
  w.Key("model");
  w.String(r.model);
  w.Key("url");
  w.String(r.url);
  w.Key("header_name");
  w.String(r.header_name);
  w.Key("header_value_set");  // the secret itself is never echoed
  w.Bool(!r.header_value.empty());
  w.Key("fields");
  w.StartArray();
  for (const auto &f : r.fields) w.String(f);
  w.EndArray();
  w.Key("triggers");
  w.StartArray();
  for (const auto &t : r.triggers) w.String(t);
  w.EndArray();
  w.Key("name");
  w.String(r.name);
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

std::vector<std::string> strings_of(const rapidjson::Value &body, const char *key) {
  std::vector<std::string> out;
  const auto it = body.FindMember(key);
  if (it == body.MemberEnd() || !it->value.IsArray()) return out;
  for (const auto &s : it->value.GetArray())
    if (s.IsString()) out.emplace_back(s.GetString());
  return out;
}

}  // namespace

HttpResponse OdooSandbox::Impl::admin(const HttpRequest &request) {
  auto &sandbox = *owner;
  const auto segments = path_segments(request.path);  // "_sandbox", "odoo", ...
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
  const auto done = [&] {
    return HttpResponse{200, "application/json", {}, {buffer.GetString(), buffer.GetSize()}};
  };
  try {
    const auto what = at(2);
    if (what == "state" && m == "GET") {
      const auto stats_now = sandbox.stats();
      std::lock_guard lock(mutex);
      w.StartObject();
      w.Key("now");
      w.String(stamp_now());
      w.Key("clock_offset_seconds");
      w.Int64(clock_offset_s);
      w.Key("clock_frozen");
      w.Bool(frozen_s.has_value());
      w.Key("open_transactions");
      w.Uint64(transactions.size());
      w.Key("databases");
      w.StartObject();
      for (auto &[name, db] : databases) {
        key(w, name);
        w.StartObject();
        for (const auto &[model, table] : db.tables) {
          key(w, model);
          w.Uint64(table.rows.size());
        }
        w.Key("users");
        w.StartArray();
        for (const auto &[uid, user] : db.users) {
          w.StartObject();
          w.Key("uid");
          w.Int64(uid);
          w.Key("login");
          w.String(user.spec.login);
          w.Key("api_keys");
          w.Uint64(user.spec.api_keys.size());
          w.Key("read_only");
          w.Bool(user.spec.read_only);
          w.EndObject();
        }
        w.EndArray();
        w.EndObject();
      }
      w.EndObject();
      w.Key("faults");
      write_faults(w, faults.config());
      w.Key("stats");
      w.StartObject();
      for (const auto &[stat, value] : std::vector<std::pair<const char *, uint64_t>>{
               {"requests", stats_now.requests},
               {"jsonrpc", stats_now.jsonrpc},
               {"json2", stats_now.json2},
               {"access_denied", stats_now.access_denied},
               {"errors", stats_now.errors},
               {"injected_429", stats_now.injected_429},
               {"injected_5xx", stats_now.injected_5xx},
               {"dropped", stats_now.dropped},
               {"malformed", stats_now.malformed}}) {
        w.Key(stat);
        w.Uint64(value);
      }
      w.EndObject();
      w.EndObject();
      return done();
    }
    if (what == "faults" && post) {
      FaultConfig f;
      f.p429 = number(body, "p429", 0);
      f.p5xx = number(body, "p5xx", 0);
      f.latency_ms = static_cast<int>(number(body, "latency_ms", 0));
      f.drop = number(body, "drop", 0);
      f.malformed = number(body, "malformed", 0);
      sandbox.set_faults(f);
      if (body.HasMember("seed") && body["seed"].IsUint64())
        sandbox.set_fault_seed(body["seed"].GetUint64());
      write_faults(w, f);
      return done();
    }
    if (what == "clock" && post) {
      if (body.HasMember("offset_seconds"))
        sandbox.set_clock_offset(
            std::chrono::seconds(static_cast<int64_t>(number(body, "offset_seconds", 0))));
      if (body.HasMember("frozen")) sandbox.freeze_clock(text(body, "frozen"));
      w.StartObject();
      w.Key("now");
      w.String(sandbox.now());
      w.EndObject();
      return done();
    }
    if (what == "databases" && post) {
      if (text(body, "name").empty()) return answer(400, "name is required");
      sandbox.add_database(text(body, "name"));
      return answer(200, "ok");
    }
    if (what == "users" && post) {
      OdooUser user{text(body, "login"), text(body, "password"), {}, false};
      if (user.login.empty() || text(body, "db").empty())
        return answer(400, "db and login are required");
      if (!text(body, "api_key").empty()) user.api_keys.push_back(text(body, "api_key"));
      user.read_only =
          body.HasMember("read_only") && body["read_only"].IsBool() && body["read_only"].GetBool();
      const auto uid = sandbox.add_user(text(body, "db"), user);
      w.StartObject();
      w.Key("uid");
      w.Int64(uid);
      w.EndObject();
      return done();
    }
    if (what == "db" && n >= 4) {
      const auto db = at(3), model = at(4);
      if (model == "transactions" && n == 5 && post) {
        std::string stamp;  // no handle: it stays open until committed by id
        const auto id = begin(db, static_cast<int64_t>(number(body, "backdate_seconds", 0)), stamp);
        w.StartObject();
        w.Key("id");
        w.Int64(id);
        w.Key("stamp");
        w.String(stamp);
        w.EndObject();
        return done();
      }
      if (model == "late-commit" && n == 5 && post) {
        auto tx = sandbox.begin_transaction(
            db, std::chrono::seconds(static_cast<int64_t>(number(body, "backdate_seconds", 5))));
        std::vector<int64_t> ids;
        for (const auto &values : records_of(body))
          ids.push_back(tx.create(text(body, "model", "res.partner"), values));
        const auto stamp = tx.stamp();
        tx.commit();
        w.StartObject();
        write_ids(w, ids);
        w.Key("stamp");
        w.String(stamp);
        w.EndObject();
        return done();
      }
      if (n == 5 && m == "GET") {
        const bool archived = parse_query(request.query)["archived"] == "true";
        const auto rows = sandbox.records(db, model, archived);
        w.StartObject();
        w.Key("records");
        w.StartArray();
        for (const auto &r : rows) {
          w.StartObject();
          w.Key("id");
          w.Int64(r.id);
          for (const auto &[name, value] : r.values) {
            key(w, name);
            write_value(w, value);
          }
          w.EndObject();
        }
        w.EndArray();
        w.EndObject();
        return done();
      }
      if (n == 6 && at(5) == "seed" && post) {
        std::vector<int64_t> ids;
        if (body.HasMember("count") && body["count"].IsUint64()) {
          const auto count = static_cast<size_t>(body["count"].GetUint64());
          if (model == "res.partner")
            ids = sandbox.seed_partners(db, count);
          else if (model == "crm.lead")
            ids = sandbox.seed_leads(db, count);
          else
            return answer(400, "count seeds res.partner and crm.lead only");
        } else {
          ids = sandbox.seed(db, model, records_of(body));
        }
        w.StartObject();
        write_ids(w, ids);
        w.EndObject();
        return done();
      }
      if (n == 5 && post) {
        const auto ids = sandbox.create(db, model, records_of(body));
        w.StartObject();
        write_ids(w, ids);
        w.EndObject();
        return done();
      }
      if (n == 6 && (m == "PATCH" || m == "DELETE")) {
        const auto id = std::stoll(at(5));
        if (m == "PATCH")
          sandbox.write(db, model, {id}, records_of(body).front());
        else
          sandbox.unlink(db, model, {id});
        return answer(200, "ok");
      }
    }
    if (what == "transactions" && n == 5 && post) {
      const auto id = std::stoll(at(3));
      const auto action = at(4);
      if (action == "create") {
        const auto created = tx_create(id, text(body, "model"), records_of(body).front());
        w.StartObject();
        w.Key("id");
        w.Int64(created);
        w.EndObject();
        return done();
      }
      if (action == "write") {
        tx_write(id, text(body, "model"), ids_of(body), values_of(body["values"]));
        return answer(200, "ok");
      }
      if (action == "unlink") {
        tx_unlink(id, text(body, "model"), ids_of(body));
        return answer(200, "ok");
      }
      if (action == "commit") {
        tx_commit(id);
        return answer(200, "ok");
      }
      if (action == "rollback")
        return tx_rollback(id) ? answer(200, "ok") : answer(404, "no such open transaction");
    }
    if (what == "webhooks") {
      if (m == "GET" && n == 3) {
        w.StartArray();
        for (const auto &r : sandbox.webhooks()) write_rule(w, r);
        w.EndArray();
        return done();
      }
      if (post && n == 3) {
        OdooWebhookRule rule;
        rule.model = text(body, "model");
        rule.url = text(body, "url");
        rule.header_name = text(body, "header_name");
        rule.header_value = text(body, "header_value");
        rule.fields = strings_of(body, "fields");
        if (body.HasMember("triggers")) {
          const auto triggers = strings_of(body, "triggers");
          rule.triggers = {triggers.begin(), triggers.end()};
        }
        rule.name = text(body, "name", rule.name);
        const auto id = sandbox.add_webhook(rule);
        w.StartObject();
        w.Key("id");
        w.Int64(id);
        w.EndObject();
        return done();
      }
      if (m == "DELETE" && n == 3) {
        sandbox.clear_webhooks();
        return answer(200, "ok");
      }
      if (m == "DELETE" && n == 4)
        return sandbox.remove_webhook(std::stoll(at(3))) ? answer(200, "ok")
                                                         : answer(404, "no such webhook");
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
  } catch (const std::invalid_argument &e) {
    return answer(400, e.what());
  } catch (const Error &e) {
    return answer(400, e.name + ": " + e.what());
  } catch (const std::out_of_range &e) {
    return answer(400, e.what());
  }
  return answer(404, "no sandbox control " + m + " " + request.path);
}

}  // namespace crmsandbox
