#include "http_api/router.hpp"

#include <algorithm>
#include <charconv>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <openssl/crypto.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <spdlog/spdlog.h>

#include "util/log_throttle.hpp"

#include "pipeline/event_payload.hpp"
#include "util/logging.hpp"
#include "util/metrics.hpp"
#include "util/text.hpp"
#include "util/time.hpp"

namespace crmhost::http_api {

namespace {

// RapidJSON's Writer, but every string and key is written whole (embedded NULs too) and as
// valid UTF-8: invalid bytes from stored payloads or request paths become U+FFFD, so each
// answer is JSON that strict parsers accept. It hides the base String and Key overloads, so no
// call can bypass it.
class Writer : public rapidjson::Writer<rapidjson::StringBuffer> {
 public:
  using Base = rapidjson::Writer<rapidjson::StringBuffer>;
  using Base::Base;
  bool String(std::string_view s) { return write(s, false); }
  bool Key(std::string_view s) { return write(s, true); }

 private:
  bool write(std::string_view s, bool key) {
    if (!text::is_valid_utf8(s)) {
      const std::string valid = text::to_valid_utf8(s);
      return key ? Base::Key(valid.data(), size(valid)) : Base::String(valid.data(), size(valid));
    }
    return key ? Base::Key(s.data(), size(s)) : Base::String(s.data(), size(s));
  }
  static rapidjson::SizeType size(std::string_view s) {
    return static_cast<rapidjson::SizeType>(s.size());
  }
};

net::HttpResponse json_response(int status, const rapidjson::StringBuffer &body) {
  return {status, "application/json", {}, std::string(body.GetString(), body.GetSize()) + "\n"};
}

net::HttpResponse error(int status, const std::string &message) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  w.Key("error");
  w.String(message);
  w.EndObject();
  return json_response(status, buffer);
}

std::string query_param(const std::string &query, const std::string &name) {
  size_t pos = 0;
  while (pos <= query.size()) {
    const size_t end = std::min(query.find('&', pos), query.size());
    const std::string pair = query.substr(pos, end - pos);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) return eq == std::string::npos ? "" : pair.substr(eq + 1);
    pos = end + 1;
  }
  return "";
}

std::vector<std::string> split_path(const std::string &path) {
  std::vector<std::string> parts;
  size_t pos = 1;
  while (pos <= path.size()) {
    const size_t end = std::min(path.find('/', pos), path.size());
    if (end > pos) parts.push_back(path.substr(pos, end - pos));
    pos = end + 1;
  }
  return parts;
}

void write_time(Writer &w, const char *key, store::Timestamp t) {
  w.Key(key);
  w.String(timeutil::format_iso8601_ms(store::to_unix_ms(t)));
}

void write_pipeline(Writer &w, const std::string &name, pipeline::Engine &engine,
                    store::Store &db) {
  const auto snapshot = engine.config();
  const auto &config = *snapshot;
  auto it = config.pipelines.find(name);
  w.StartObject();
  w.Key("name");
  w.String(name);
  w.Key("enabled");
  w.Bool(it != config.pipelines.end() && it->second.enabled);
  w.Key("paused");
  w.Bool(engine.is_paused(name));
  w.Key("queue");
  w.StartObject();
  for (const auto status :
       {store::EventStatus::pending, store::EventStatus::in_flight, store::EventStatus::failed,
        store::EventStatus::dead, store::EventStatus::done}) {
    int64_t n = 0;
    for (const auto &c : db.count_by_status(name))
      if (c.status == status) n += c.count;
    w.Key(store::to_string(status));
    w.Int64(n);
  }
  w.EndObject();
  if (it != config.pipelines.end() && it->second.poll) {
    if (auto cursor = db.get_cursor(name, it->second.poll->object)) {
      w.Key("cursor");
      w.StartObject();
      w.Key("value");
      w.String(cursor->value);
      write_time(w, "updated_at", cursor->updated_at);
      w.Key("lag_seconds");
      w.Int64((store::to_unix_ms(store::now_ms()) - store::to_unix_ms(cursor->updated_at)) / 1000);
      w.EndObject();
    }
  }
  if (auto polls = engine.poll_times(name)) {
    w.Key("polls");
    w.StartObject();
    w.Key("last");
    polls->last_ms ? (void)w.String(timeutil::format_iso8601_ms(polls->last_ms)) : (void)w.Null();
    w.Key("next");
    polls->next_ms ? (void)w.String(timeutil::format_iso8601_ms(polls->next_ms)) : (void)w.Null();
    w.EndObject();
  }
  // Since the host started; the same counters /metrics exposes.
  auto &registry = metrics::global();
  const auto received = [&](const char *outcome) {
    return registry.counter_sum("crmhost_events_received_total",
                                {{"pipeline", name}, {"outcome", outcome}});
  };
  const auto processed = [&](const char *outcome) {
    return registry.counter_sum("crmhost_events_total", {{"pipeline", name}, {"outcome", outcome}});
  };
  w.Key("counts");
  w.StartObject();
  const std::pair<const char *, double> counts[] = {
      {"received", received("new") + received("duplicate")},
      {"deduplicated", received("duplicate")},
      {"pushed", processed("pushed")},
      {"failed", processed("retried")},
      {"dead", processed("dead")},
      {"echoes", processed("echo")},
      {"conflicts", processed("stale") + processed("conflict") +
                        registry.counter_sum("crmhost_conflicts_total", {{"pipeline", name}})}};
  for (const auto &[key, n] : counts) {
    w.Key(key);
    w.Int64(static_cast<int64_t>(n));
  }
  w.EndObject();
  w.Key("latency_seconds");  // receipt to push, over the latest pushes
  w.StartObject();
  for (const auto &[key, q] : {std::pair{"p50", 0.5}, std::pair{"p95", 0.95}}) {
    w.Key(key);
    if (auto v = registry.recent_quantile("event_latency", name, q))
      w.Double(*v);
    else
      w.Null();
  }
  w.EndObject();
  auto runs = db.list_sync_runs(name, 1);
  if (!runs.empty()) {
    w.Key("last_run");
    w.StartObject();
    w.Key("id");
    w.Int64(runs[0].id);
    w.Key("kind");
    w.String(store::to_string(runs[0].kind));
    w.Key("status");
    w.String(store::to_string(runs[0].status));
    write_time(w, "started_at", runs[0].started_at);
    w.EndObject();
  }
  w.EndObject();
}

void write_event(Writer &w, const store::Event &e, bool with_payload) {
  w.StartObject();
  w.Key("id");
  w.Int64(e.id);
  w.Key("pipeline");
  w.String(e.pipeline);
  w.Key("source");
  w.String(store::to_string(e.source));
  w.Key("connection");
  w.String(e.connection);
  w.Key("object");
  w.String(e.object);
  w.Key("record_id");
  w.String(e.record_id);
  w.Key("event_type");
  w.String(e.event_type);
  w.Key("status");
  w.String(store::to_string(e.status));
  w.Key("attempts");
  w.Int(e.attempts);
  w.Key("last_error");
  w.String(logging::redact(e.last_error));
  w.Key("request_id");
  w.String(e.request_id);
  write_time(w, "received_at", e.received_at);
  if (with_payload) {
    // Credentials and email addresses are masked: operators see the shape, not the data.
    w.Key("payload");
    w.String(logging::redact(e.payload));
  }
  w.EndObject();
}

// One admin route: its handler gets the request, the context and the pattern's {parameters}.
using AdminHandler = net::HttpResponse (*)(const net::HttpRequest &, RouterContext &,
                                           const std::vector<std::string> &args);

net::HttpResponse json_of(int status, const std::function<void(Writer &)> &write) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  write(w);
  return json_response(status, buffer);
}

std::optional<net::HttpResponse> unknown_pipeline(RouterContext &ctx, const std::string &name) {
  const auto names = ctx.engine.pipeline_names();
  if (std::find(names.begin(), names.end(), name) != names.end()) return std::nullopt;
  return error(404, "no running pipeline named " + name);
}

std::optional<int64_t> number_of(const std::string &text) {
  int64_t value = 0;
  const auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
  if (parsed.ec != std::errc() || parsed.ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

net::HttpResponse health(const net::HttpRequest &, RouterContext &ctx,
                         const std::vector<std::string> &args) {
  auto connector = ctx.engine.connector(args[0]);
  if (!connector) return error(404, "no connection named " + args[0]);
  const auto checked = connector->check();
  const bool ok = checked && checked.value().ok;
  return json_of(ok ? 200 : 503, [&](Writer &w) {
    w.StartObject();
    w.Key("connection");
    w.String(args[0]);
    w.Key("ok");
    w.Bool(ok);
    w.Key("message");
    w.String(checked ? checked.value().message : checked.error().describe());
    w.EndObject();
  });
}

// The live connections with their plugin and, where the plugin keeps something alive at the
// provider (a notification channel), the last upkeep status.
net::HttpResponse list_connections(const net::HttpRequest &, RouterContext &ctx,
                                   const std::vector<std::string> &) {
  return json_of(200, [&](Writer &w) {
    w.StartArray();
    for (const auto &c : ctx.engine.connections()) {
      w.StartObject();
      w.Key("connection");
      w.String(c.name);
      w.Key("plugin");
      w.String(c.plugin);
      w.Key("upkeep");
      if (c.upkeep_json)
        w.RawValue(c.upkeep_json->data(), c.upkeep_json->size(), rapidjson::kObjectType);
      else
        w.Null();
      w.EndObject();
    }
    w.EndArray();
  });
}

net::HttpResponse list_pipelines(const net::HttpRequest &, RouterContext &ctx,
                                 const std::vector<std::string> &) {
  return json_of(200, [&](Writer &w) {
    w.StartArray();
    for (const auto &name : ctx.engine.pipeline_names())
      write_pipeline(w, name, ctx.engine, ctx.store);
    w.EndArray();
  });
}

net::HttpResponse get_pipeline(const net::HttpRequest &, RouterContext &ctx,
                               const std::vector<std::string> &args) {
  if (auto missing = unknown_pipeline(ctx, args[0])) return *missing;
  return json_of(200, [&](Writer &w) { write_pipeline(w, args[0], ctx.engine, ctx.store); });
}

net::HttpResponse pause_pipeline(const net::HttpRequest &, RouterContext &ctx,
                                 const std::vector<std::string> &args) {
  if (auto missing = unknown_pipeline(ctx, args[0])) return *missing;
  ctx.engine.pause(args[0]);
  return json_of(200, [&](Writer &w) { write_pipeline(w, args[0], ctx.engine, ctx.store); });
}

net::HttpResponse resume_pipeline(const net::HttpRequest &, RouterContext &ctx,
                                  const std::vector<std::string> &args) {
  if (auto missing = unknown_pipeline(ctx, args[0])) return *missing;
  ctx.engine.resume(args[0]);
  return json_of(200, [&](Writer &w) { write_pipeline(w, args[0], ctx.engine, ctx.store); });
}

net::HttpResponse backfill_pipeline(const net::HttpRequest &request, RouterContext &ctx,
                                    const std::vector<std::string> &args) {
  if (auto missing = unknown_pipeline(ctx, args[0])) return *missing;
  const auto dry = query_param(request.query, "dry_run");
  std::optional<int64_t> since;
  if (const auto text = query_param(request.query, "since"); !text.empty()) {
    since = timeutil::parse_iso8601_ms(text);
    if (!since) return error(400, "since must be an ISO 8601 time");
  }
  std::string problem;
  const auto run = ctx.engine.start_backfill(args[0], dry == "true" || dry == "1", since, problem);
  if (!run) return error(409, problem);
  return json_of(202, [&](Writer &w) {
    w.StartObject();
    w.Key("run_id");
    w.Int64(*run);
    w.EndObject();
  });
}

net::HttpResponse replay_pipeline(const net::HttpRequest &request, RouterContext &ctx,
                                  const std::vector<std::string> &args) {
  if (auto missing = unknown_pipeline(ctx, args[0])) return *missing;
  store::ReplayFilter filter;
  filter.pipeline = args[0];
  try {
    if (auto status = query_param(request.query, "status"); !status.empty())
      filter.statuses = {store::parse_event_status(status)};
  } catch (const store::StoreError &e) {
    return error(400, e.what());
  }
  for (const char *bound : {"since", "until"}) {
    const auto text = query_param(request.query, bound);
    if (text.empty()) continue;
    const auto when = timeutil::parse_iso8601_ms(text);
    if (!when) return error(400, std::string(bound) + " must be an ISO 8601 time");
    (std::string(bound) == "since" ? filter.received_from : filter.received_to) =
        store::from_unix_ms(*when);
  }
  const auto replayed = ctx.store.replay(filter);
  ctx.engine.wake(args[0]);
  return json_of(200, [&](Writer &w) {
    w.StartObject();
    w.Key("replayed");
    w.Int64(replayed);
    w.EndObject();
  });
}

net::HttpResponse kill_switch(RouterContext &ctx, bool pause) {
  pause ? ctx.engine.pause_all() : ctx.engine.resume_all();
  return json_of(200, [&](Writer &w) {
    w.StartObject();
    w.Key("paused_all");
    w.Bool(pause);
    w.EndObject();
  });
}

net::HttpResponse pause_all(const net::HttpRequest &, RouterContext &ctx,
                            const std::vector<std::string> &) {
  return kill_switch(ctx, true);
}

net::HttpResponse resume_all(const net::HttpRequest &, RouterContext &ctx,
                             const std::vector<std::string> &) {
  return kill_switch(ctx, false);
}

net::HttpResponse list_events(const net::HttpRequest &request, RouterContext &ctx,
                              const std::vector<std::string> &) {
  store::EventQuery query;
  if (auto p = query_param(request.query, "pipeline"); !p.empty()) query.pipeline = p;
  try {
    if (auto s = query_param(request.query, "status"); !s.empty())
      query.status = store::parse_event_status(s);
  } catch (const store::StoreError &) {
    return error(400, "status must be pending, in_flight, done, failed or dead");
  }
  if (auto l = query_param(request.query, "limit"); !l.empty()) {
    const auto limit = number_of(l);
    if (!limit) return error(400, "limit must be a number from 1 to 1000");
    query.limit = static_cast<int>(std::clamp<int64_t>(*limit, 1, 1000));
  }
  if (auto a = query_param(request.query, "after"); !a.empty()) {
    const auto after = number_of(a);
    if (!after) return error(400, "after must be an event id (a number)");
    query.after_id = *after;
  }
  return json_of(200, [&](Writer &w) {
    w.StartArray();
    for (const auto &e : ctx.store.list_events(query)) write_event(w, e, false);
    w.EndArray();
  });
}

net::HttpResponse get_event(const net::HttpRequest &, RouterContext &ctx,
                            const std::vector<std::string> &args) {
  const auto id = number_of(args[0]);
  if (!id) return error(400, "event ids are numbers");
  auto event = ctx.store.get_event(*id);
  if (!event) return error(404, "no event " + args[0]);
  return json_of(200, [&](Writer &w) { write_event(w, *event, true); });
}

net::HttpResponse replay_event(const net::HttpRequest &, RouterContext &ctx,
                               const std::vector<std::string> &args) {
  const auto id = number_of(args[0]);
  if (!id) return error(400, "event ids are numbers");
  auto event = ctx.store.get_event(*id);
  if (!event) return error(404, "no event " + args[0]);
  if (!ctx.store.replay(*id)) return error(409, "event " + args[0] + " is in flight");
  ctx.engine.wake(event->pipeline);
  return json_of(200, [&](Writer &w) {
    w.StartObject();
    w.Key("replayed");
    w.Int64(*id);
    w.EndObject();
  });
}

net::HttpResponse get_run(const net::HttpRequest &, RouterContext &ctx,
                          const std::vector<std::string> &args) {
  const auto id = number_of(args[0]);
  if (!id) return error(400, "run ids are numbers");
  auto run = ctx.store.get_sync_run(*id);
  if (!run) return error(404, "no run " + args[0]);
  return json_of(200, [&](Writer &w) {
    w.StartObject();
    w.Key("id");
    w.Int64(run->id);
    w.Key("pipeline");
    w.String(run->pipeline);
    w.Key("kind");
    w.String(store::to_string(run->kind));
    w.Key("status");
    w.String(store::to_string(run->status));
    w.Key("fetched");
    w.Int64(run->counts.fetched);
    w.Key("enqueued");
    w.Int64(run->counts.enqueued);
    w.Key("duplicates");
    w.Int64(run->counts.duplicates);
    w.Key("error");
    w.String(run->error);
    write_time(w, "started_at", run->started_at);
    w.EndObject();
  });
}

// The admin API, as docs/admin-api.yaml describes it. A {parameter} matches one path segment.
struct AdminRoute {
  const char *method;
  const char *pattern;
  AdminHandler handler;
};
const AdminRoute kAdminRoutes[] = {
    {"GET", "/health/{connection}", health},
    {"GET", "/connections", list_connections},
    {"GET", "/pipelines", list_pipelines},
    {"GET", "/pipelines/{name}", get_pipeline},
    {"POST", "/pipelines/{name}/pause", pause_pipeline},
    {"POST", "/pipelines/{name}/resume", resume_pipeline},
    {"POST", "/pipelines/{name}/backfill", backfill_pipeline},
    {"POST", "/pipelines/{name}/replay", replay_pipeline},
    {"POST", "/pause-all", pause_all},
    {"POST", "/resume-all", resume_all},
    {"GET", "/events", list_events},
    {"GET", "/events/{id}", get_event},
    {"POST", "/events/{id}/replay", replay_event},
    {"GET", "/runs/{id}", get_run},
};

// The {parameters} of `pattern` in `parts`, or nullopt when the path does not match it.
std::optional<std::vector<std::string>> match(const char *pattern,
                                              const std::vector<std::string> &parts) {
  const auto segments = split_path(pattern);
  if (segments.size() != parts.size()) return std::nullopt;
  std::vector<std::string> args;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (segments[i].size() > 1 && segments[i].front() == '{')
      args.push_back(parts[i]);
    else if (segments[i] != parts[i])
      return std::nullopt;
  }
  return args;
}

net::HttpResponse admin(const net::HttpRequest &request, RouterContext &ctx,
                        const std::vector<std::string> &parts) {
  std::string allowed;
  for (const auto &route : kAdminRoutes) {
    auto args = match(route.pattern, parts);
    if (!args) continue;
    if (request.method == route.method) return route.handler(request, ctx, *args);
    allowed += (allowed.empty() ? "" : ", ") + std::string(route.method);
  }
  if (!allowed.empty()) {
    auto refused = error(405, request.method + " is not allowed on " + request.path);
    refused.headers.emplace_back("Allow", allowed);
    return refused;
  }
  return error(404, "no such admin route: " + request.method + " " + request.path);
}

// The registry's counters and histograms, plus gauges read from the engine and store now.
net::HttpResponse metrics_response(RouterContext &ctx) {
  std::ostringstream out;
  out << metrics::global().render();
  out << "# HELP crmhost_build_info crmhost version and plugin ABI.\n# TYPE crmhost_build_info "
         "gauge\n"
      << "crmhost_build_info{version=\"" << CRMHOST_VERSION << "\",abi=\""
      << plugins::format_version(CRM_ABI_VERSION) << "\"} 1\n";
  const auto names = ctx.engine.pipeline_names();
  out << "# HELP crmhost_pipeline_paused 1 when the pipeline is paused (by itself or the kill "
         "switch).\n"
      << "# TYPE crmhost_pipeline_paused gauge\n";
  for (const auto &name : names)
    out << "crmhost_pipeline_paused{pipeline=\"" << name << "\"} "
        << (ctx.engine.is_paused(name) ? 1 : 0) << "\n";
  out << "# HELP crmhost_queue_depth Events in the queue by status.\n# TYPE crmhost_queue_depth "
         "gauge\n";
  for (const auto &name : names) {
    std::map<store::EventStatus, int64_t> counts;
    for (const auto &c : ctx.store.count_by_status(name)) counts[c.status] += c.count;
    for (const auto status : {store::EventStatus::pending, store::EventStatus::in_flight,
                              store::EventStatus::failed, store::EventStatus::dead})
      out << "crmhost_queue_depth{pipeline=\"" << name << "\",status=\"" << store::to_string(status)
          << "\"} " << counts[status] << "\n";
  }
  out << "# HELP crmhost_cursor_lag_seconds Seconds since the pipeline's poll cursor last moved.\n"
      << "# TYPE crmhost_cursor_lag_seconds gauge\n";
  const auto snapshot = ctx.engine.config();
  const auto &config = *snapshot;
  const auto now = store::to_unix_ms(store::now_ms());
  for (const auto &name : names) {
    auto it = config.pipelines.find(name);
    if (it == config.pipelines.end() || !it->second.poll) continue;
    if (auto cursor = ctx.store.get_cursor(name, it->second.poll->object))
      out << "crmhost_cursor_lag_seconds{pipeline=\"" << name << "\"} "
          << static_cast<double>(now - store::to_unix_ms(cursor->updated_at)) / 1000.0 << "\n";
  }
  return {200, "text/plain; version=0.0.4; charset=utf-8", {}, out.str()};
}

}  // namespace

bool constant_time_equals(const std::string &a, const std::string &b) {
  // CRYPTO_memcmp needs equal lengths; compare the length without an early exit on content.
  const std::string &longer = a.size() >= b.size() ? a : b;
  std::string padded = a.size() >= b.size() ? b : a;
  padded.resize(longer.size(), '\0');
  return CRYPTO_memcmp(padded.data(), longer.data(), longer.size()) == 0 && a.size() == b.size();
}

namespace {

// The first segments of the admin routes: anything else is a webhook path.
const std::set<std::string> kAdminRoots = [] {
  std::set<std::string> roots;
  for (const auto &route : kAdminRoutes) roots.insert(split_path(route.pattern).front());
  return roots;
}();

bool is_webhook(const net::HttpRequest &request) {
  if (request.method != "POST") return false;
  const auto parts = split_path(request.path);
  return parts.empty() || !kAdminRoots.count(parts[0]);
}

plugins::WebhookRequest webhook_of(const net::HttpRequest &request, const std::string &scheme) {
  plugins::WebhookRequest webhook;
  webhook.method = request.method;
  const std::string host = request.header("Host");
  webhook.url = scheme + "://" + (host.empty() ? std::string("localhost") : host) + request.target;
  webhook.headers = request.headers;
  webhook.body = request.body;
  webhook.received_at_ms = request.received_at_ms;
  return webhook;
}

net::HttpResponse webhook_response(const std::string &request_id, const std::string &path,
                                   const pipeline::WebhookIngest &ingest) {
  if (ingest.http_status == 200) {
    spdlog::debug("request {} POST {}: 200 ({} new, {} duplicate)", request_id, path, ingest.events,
                  ingest.duplicates);
  } else {
    // Refusals come at the rate a sender chooses: a few lines per path and status per 10 s.
    static logging::LogThrottle throttle(5, std::chrono::seconds(10));
    if (auto note = throttle.admit(path + " " + std::to_string(ingest.http_status)))
      spdlog::warn("request {} POST {}: {}{}", request_id, path, ingest.http_status, *note);
  }
  if (ingest.http_status == 200 && ingest.reply)
    return {ingest.reply->status, "text/plain; charset=utf-8", ingest.reply->headers,
            ingest.reply->body};
  return {ingest.http_status,
          "text/plain; charset=utf-8",
          {},
          ingest.http_status == 200 ? "ok\n" : ingest.body + "\n"};
}

bool bearer_matches(const net::HttpRequest &request, const std::string &token) {
  const std::string auth = request.header("Authorization");
  const std::string prefix = "Bearer ";
  return auth.compare(0, prefix.size(), prefix) == 0 &&
         constant_time_equals(auth.substr(prefix.size()), token);
}

net::HttpResponse unauthorized() {
  return {
      401, "application/json", {{"WWW-Authenticate", "Bearer"}}, "{\"error\":\"unauthorized\"}\n"};
}

}  // namespace

net::HttpResponse route(const net::HttpRequest &request, RouterContext &ctx) {
  try {
    if (request.method == "GET" && request.path == "/healthz")
      return {200, "text/plain", {}, "ok\n"};
    if (request.method == "GET" && request.path == "/readyz") {
      try {
        ctx.store.schema_version();
        // Reads still work on a full disk; the last write says whether events can be stored.
        if (auto failure = ctx.store.write_failure())
          return {503, "text/plain", {}, "store cannot write: " + logging::redact(*failure) + "\n"};
        return {200, "text/plain", {}, "ready\n"};
      } catch (const std::exception &) {
        return {503, "text/plain", {}, "store unreachable\n"};
      }
    }
    const auto token = [&ctx](const std::string RouterContext::*which) {
      std::lock_guard lock(ctx.tokens_mutex);
      return ctx.*which;
    };
    if (request.method == "GET" && request.path == "/metrics") {
      const auto metrics_token = token(&RouterContext::metrics_token);
      if (!metrics_token.empty() && !bearer_matches(request, metrics_token)) return unauthorized();
      return metrics_response(ctx);
    }
    const auto parts = split_path(request.path);
    if (!parts.empty() && kAdminRoots.count(parts[0])) {
      const auto admin_token = token(&RouterContext::admin_token);
      if (admin_token.empty()) return error(403, "the admin API is disabled: set admin_token");
      if (!bearer_matches(request, admin_token)) return unauthorized();
      return admin(request, ctx, parts);
    }
    if (request.method != "POST") return {404, "text/plain", {}, "not found\n"};
    return webhook_response(request.request_id, request.path,
                            ctx.engine.ingest_webhook(request.path, webhook_of(request, ctx.scheme),
                                                      request.request_id));
  } catch (const store::StoreError &e) {
    return {e.retryable() ? 503 : 500, "text/plain", {}, "store error\n"};
  }
}

void route_async(const net::HttpRequest &request, RouterContext &ctx, net::Respond respond) {
  if (!is_webhook(request)) return respond(route(request, ctx));
  try {
    ctx.engine.ingest_webhook_async(
        request.path, webhook_of(request, ctx.scheme), request.request_id,
        [respond, id = request.request_id, path = request.path](pipeline::WebhookIngest ingest) {
          respond(webhook_response(id, path, ingest));
        });
  } catch (const store::StoreError &e) {
    respond({e.retryable() ? 503 : 500, "text/plain", {}, "store error\n"});
  }
}

}  // namespace crmhost::http_api
