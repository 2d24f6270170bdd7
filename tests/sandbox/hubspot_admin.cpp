// The sandbox's own JSON endpoints under /_sandbox/ (not HubSpot's API; no auth, loopback only):
//   GET    /_sandbox/state                       counts, knobs, statistics, webhook settings
//   PUT    /_sandbox/faults                      {p429, p5xx, latency_ms, drop, malformed, seed?}
//   PUT    /_sandbox/rate-limits                 {per_window, window_ms, search_per_second, daily}
//   POST   /_sandbox/rate-limits/reset
//   PUT    /_sandbox/indexing-delay              {ms}
//   POST   /_sandbox/tokens                      {token, portal}
//   POST   /_sandbox/oauth/clients               {client_id, client_secret, refresh_token, portal}
//   POST   /_sandbox/oauth/expire                every issued access token expires now
//   GET|PUT /_sandbox/webhooks                   {target_url, app_secret, signature_version,
//                                                 app_id, max_batch, batch_window_ms,
//                                                 retry_backoff_ms, max_attempts, timeout_ms}
//   GET|POST|DELETE /_sandbox/subscriptions[/ID] {type, propertyName}
//   GET|DELETE /_sandbox/deliveries
//   GET    /_sandbox/portals/P/OBJECT[?archived=true]
//   POST   /_sandbox/portals/P/OBJECT/seed        {count} or {records: [{properties}]}
//   POST   /_sandbox/portals/P/OBJECT             {properties}: as a user would (webhooks fire)
//   PATCH|DELETE /_sandbox/portals/P/OBJECT/ID   {properties}
//   POST   /_sandbox/portals/P/OBJECT/ID/restore
//   POST   /_sandbox/portals/P/OBJECT/merge       {primaryObjectId, objectIdToMerge}
// POST is accepted wherever PUT is.
#include "sandbox/hubspot_internal.hpp"

namespace crmsandbox {

namespace {

HttpResponse ok_json(std::string body) {
  return json_response(200, std::move(body));
}

HttpResponse bad_request(const std::string &message) {
  ApiError error;
  error.message = message;
  return error_response(error);
}

double number(const rapidjson::Value &body, const char *key, double fallback) {
  const auto it = body.FindMember(key);
  return it != body.MemberEnd() && it->value.IsNumber() ? it->value.GetDouble() : fallback;
}

std::string text(const rapidjson::Value &body, const char *key, const std::string &fallback = "") {
  const auto it = body.FindMember(key);
  if (it == body.MemberEnd()) return fallback;
  if (it->value.IsString()) return it->value.GetString();
  if (it->value.IsInt64()) return std::to_string(it->value.GetInt64());
  return fallback;
}

void write_record_json(JsonWriter &w, const HubSpotRecord &r) {
  w.StartObject();
  w.Key("id");
  w.String(r.id);
  w.Key("properties");
  w.StartObject();
  for (const auto &[name, value] : r.properties) {
    w.Key(name.c_str(), static_cast<rapidjson::SizeType>(name.size()));
    w.String(value);
  }
  w.EndObject();
  w.Key("createdAt");
  w.String(iso8601_ms(r.created_ms));
  w.Key("updatedAt");
  w.String(iso8601_ms(r.updated_ms));
  w.Key("archived");
  w.Bool(r.archived);
  w.EndObject();
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

void write_webhooks(JsonWriter &w, const HubSpotWebhookSettings &s) {
  w.StartObject();
  w.Key("target_url");
  w.String(s.target_url);
  w.Key("app_secret_set");  // the secret itself is never echoed
  w.Bool(!s.app_secret.empty());
  w.Key("signature_version");
  w.String(s.signature_version);
  w.Key("app_id");
  w.Int64(s.app_id);
  w.Key("max_batch");
  w.Uint64(s.max_batch);
  w.Key("batch_window_ms");
  w.Int64(s.batch_window.count());
  w.Key("retry_backoff_ms");
  w.Int64(s.retry_backoff.count());
  w.Key("max_attempts");
  w.Int(s.max_attempts);
  w.Key("timeout_ms");
  w.Int64(s.timeout.count());
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

HttpResponse HubSpotSandbox::Impl::admin(const HttpRequest &request) {
  auto &sandbox = *owner;
  const auto segments = path_segments(request.path);  // "_sandbox", ...
  const auto &m = request.method;
  const bool write = m == "POST" || m == "PUT" || m == "PATCH";
  rapidjson::Document body;
  body.SetObject();
  if (write && !request.body.empty()) {
    body.Parse(request.body.data(), request.body.size());
    if (body.HasParseError() || !body.IsObject())
      return bad_request("the body must be a JSON object");
  }
  const auto at = [&](size_t i) { return i < segments.size() ? segments[i] : std::string(); };
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  const auto done = [&] { return ok_json({buffer.GetString(), buffer.GetSize()}); };
  try {
    const auto what = at(1);
    if (what == "state" && m == "GET") {
      const auto counters = sandbox.stats();
      const auto current = sandbox.rate_limits();
      w.StartObject();
      w.Key("port");
      w.Int(sandbox.port());
      w.Key("portals");
      w.StartObject();
      std::vector<int64_t> portal_ids;
      {
        std::lock_guard lock(mutex);
        for (const auto &[id, portal] : portals) portal_ids.push_back(id);
      }
      for (const auto id : portal_ids) {
        w.Key(std::to_string(id).c_str());
        w.StartObject();
        for (const auto *object : {"contacts", "companies", "deals"}) {
          w.Key(object);
          w.Uint64(sandbox.count(id, object));
        }
        w.EndObject();
      }
      w.EndObject();
      w.Key("faults");
      write_faults(w, sandbox.faults());
      w.Key("rate_limits");
      w.StartObject();
      w.Key("per_window");
      w.Int64(current.per_window);
      w.Key("window_ms");
      w.Int64(current.window_ms);
      w.Key("search_per_second");
      w.Int64(current.search_per_second);
      w.Key("daily");
      w.Int64(current.daily);
      w.EndObject();
      {
        std::lock_guard lock(mutex);
        w.Key("indexing_delay_ms");
        w.Int64(indexing_delay_ms);
        w.Key("token_ttl_seconds");
        w.Int64(token_ttl_seconds);
      }
      w.Key("stats");
      w.StartObject();
      for (const auto &[name, value] : std::initializer_list<std::pair<const char *, uint64_t>>{
               {"requests", counters.requests},
               {"unauthorized", counters.unauthorized},
               {"limited_ten_secondly", counters.limited_ten_secondly},
               {"limited_secondly", counters.limited_secondly},
               {"limited_daily", counters.limited_daily},
               {"injected_429", counters.injected_429},
               {"injected_5xx", counters.injected_5xx},
               {"dropped", counters.dropped},
               {"malformed", counters.malformed}}) {
        w.Key(name);
        w.Uint64(value);
      }
      w.EndObject();
      w.Key("webhooks");
      write_webhooks(w, sandbox.webhook_settings());
      w.EndObject();
      return done();
    }
    if (what == "faults" && write) {
      FaultConfig f = sandbox.faults();
      f.p429 = number(body, "p429", f.p429);
      f.p5xx = number(body, "p5xx", f.p5xx);
      f.latency_ms = static_cast<int>(number(body, "latency_ms", f.latency_ms));
      f.drop = number(body, "drop", f.drop);
      f.malformed = number(body, "malformed", f.malformed);
      sandbox.set_faults(f);
      if (body.HasMember("seed"))
        sandbox.set_fault_seed(static_cast<uint64_t>(number(body, "seed", 0)));
      write_faults(w, f);
      return done();
    }
    if (what == "rate-limits" && at(2) == "reset" && m == "POST") {
      sandbox.reset_rate_windows();
      return ok_json("{}");
    }
    if (what == "rate-limits" && write) {
      auto updated = sandbox.rate_limits();
      updated.per_window =
          static_cast<int64_t>(number(body, "per_window", double(updated.per_window)));
      updated.window_ms =
          static_cast<int64_t>(number(body, "window_ms", double(updated.window_ms)));
      updated.search_per_second = static_cast<int64_t>(
          number(body, "search_per_second", double(updated.search_per_second)));
      updated.daily = static_cast<int64_t>(number(body, "daily", double(updated.daily)));
      sandbox.set_rate_limits(updated);
      return ok_json("{}");
    }
    if (what == "indexing-delay" && write) {
      sandbox.set_indexing_delay(
          std::chrono::milliseconds(static_cast<int64_t>(number(body, "ms", 0))));
      return ok_json("{}");
    }
    if (what == "tokens" && write) {
      const auto token = text(body, "token");
      if (token.empty()) return bad_request("token is required");
      sandbox.add_token(token, static_cast<int64_t>(number(body, "portal", 0)));
      return ok_json("{}");
    }
    if (what == "oauth" && at(2) == "clients" && write) {
      sandbox.add_oauth_client(text(body, "client_id"), text(body, "client_secret"),
                               text(body, "refresh_token"),
                               static_cast<int64_t>(number(body, "portal", 0)));
      return ok_json("{}");
    }
    if (what == "oauth" && at(2) == "expire" && m == "POST") {
      sandbox.expire_oauth_tokens();
      return ok_json("{}");
    }
    if (what == "webhooks" && (m == "GET" || write)) {
      auto s = sandbox.webhook_settings();
      if (write) {
        s.target_url = text(body, "target_url", s.target_url);
        s.app_secret = text(body, "app_secret", s.app_secret);
        s.signature_version = text(body, "signature_version", s.signature_version);
        s.app_id = static_cast<int64_t>(number(body, "app_id", double(s.app_id)));
        s.max_batch = static_cast<size_t>(number(body, "max_batch", double(s.max_batch)));
        s.batch_window = std::chrono::milliseconds(
            static_cast<int64_t>(number(body, "batch_window_ms", double(s.batch_window.count()))));
        s.retry_backoff = std::chrono::milliseconds(static_cast<int64_t>(
            number(body, "retry_backoff_ms", double(s.retry_backoff.count()))));
        s.max_attempts = static_cast<int>(number(body, "max_attempts", s.max_attempts));
        s.timeout = std::chrono::milliseconds(
            static_cast<int64_t>(number(body, "timeout_ms", double(s.timeout.count()))));
        sandbox.set_webhook_settings(s);
      }
      write_webhooks(w, s);
      return done();
    }
    if (what == "subscriptions") {
      if (m == "POST") {
        const auto id = sandbox.subscribe(text(body, "type"), text(body, "propertyName"));
        return ok_json("{\"id\":" + std::to_string(id) + "}");
      }
      if (m == "DELETE" && at(2).empty()) {
        sandbox.clear_subscriptions();
        return ok_json("{}");
      }
      if (m == "DELETE") {
        const auto id = parse_number(at(2));
        if (!id || !sandbox.unsubscribe(static_cast<int64_t>(*id)))
          return json_response(404, "{\"message\":\"no such subscription\"}");
        return ok_json("{}");
      }
      w.StartArray();
      for (const auto &s : sandbox.subscriptions()) {
        w.StartObject();
        w.Key("id");
        w.Int64(s.id);
        w.Key("type");
        w.String(s.type);
        w.Key("propertyName");
        w.String(s.property_name);
        w.EndObject();
      }
      w.EndArray();
      return done();
    }
    if (what == "deliveries") {
      if (m == "DELETE") {
        sandbox.clear_deliveries();
        return ok_json("{}");
      }
      w.StartArray();
      for (const auto &d : sandbox.deliveries()) {
        w.StartObject();
        w.Key("delivery_id");
        w.Int64(d.delivery_id);
        w.Key("attempt_number");
        w.Int(d.attempt_number);
        w.Key("events");
        w.Uint64(d.events);
        w.Key("url");
        w.String(d.url);
        w.Key("status");
        w.Int(d.status);
        w.Key("error");
        w.String(d.error);
        w.Key("will_retry");
        w.Bool(d.will_retry);
        w.Key("sent_at");
        w.String(iso8601_ms(d.sent_at_ms));
        w.Key("body");
        w.String(d.body);
        w.EndObject();
      }
      w.EndArray();
      return done();
    }
    if (what == "portals" && segments.size() >= 3) {
      const auto portal = parse_number(at(2));
      if (!portal) return bad_request("portal must be a number");
      const auto portal_id = static_cast<int64_t>(*portal);
      const auto object = at(3);
      if (!find_object_type(object)) return bad_request("unknown object " + object);
      const auto id = at(4);
      Properties properties;
      if (const auto it = body.FindMember("properties"); it != body.MemberEnd())
        if (auto error = read_properties(it->value, properties)) return bad_request(*error);
      if (id.empty() && m == "GET") {
        w.StartObject();
        w.Key("results");
        w.StartArray();
        const bool archived = parse_query(request.query)["archived"] == "true";
        for (const auto &r : sandbox.records(portal_id, object, archived))
          if (!archived || r.archived) write_record_json(w, r);
        w.EndArray();
        w.EndObject();
        return done();
      }
      if (id == "seed" && m == "POST") {
        std::vector<std::string> ids;
        if (const auto records = body.FindMember("records");
            records != body.MemberEnd() && records->value.IsArray()) {
          std::vector<HubSpotSeed> seeds;
          for (const auto &r : records->value.GetArray()) {
            HubSpotSeed seed;
            if (r.IsObject() && r.HasMember("properties"))
              if (auto error = read_properties(r["properties"], seed.properties))
                return bad_request(*error);
            seeds.push_back(std::move(seed));
          }
          ids = sandbox.seed(portal_id, object, seeds);
        } else {
          ids = sandbox.seed_generated(portal_id, object,
                                       static_cast<size_t>(number(body, "count", 0)));
        }
        w.StartObject();
        w.Key("ids");
        w.StartArray();
        for (const auto &i : ids) w.String(i);
        w.EndArray();
        w.EndObject();
        return done();
      }
      if (id == "merge" && m == "POST") {
        if (!sandbox.merge_records(portal_id, object, text(body, "primaryObjectId"),
                                   text(body, "objectIdToMerge")))
          return json_response(404, "{\"message\":\"no such records\"}");
        return ok_json("{}");
      }
      if (id.empty() && m == "POST") {
        const auto created = sandbox.create_record(portal_id, object, properties);
        write_record_json(w, *sandbox.record(portal_id, object, created));
        return done();
      }
      bool found = false;
      if (m == "PATCH") found = sandbox.update_record(portal_id, object, id, properties);
      if (m == "DELETE") found = sandbox.archive_record(portal_id, object, id);
      if (m == "POST" && at(5) == "restore") found = sandbox.restore_record(portal_id, object, id);
      if (m == "GET") found = sandbox.record(portal_id, object, id).has_value();
      if (!found) return json_response(404, "{\"message\":\"no such record\"}");
      write_record_json(w, *sandbox.record(portal_id, object, id));
      return done();
    }
  } catch (const std::invalid_argument &e) {
    return bad_request(e.what());
  }
  return json_response(404, "{\"message\":\"no such sandbox endpoint\"}");
}

}  // namespace crmsandbox
