#pragma once
// HubSpot and Odoo sandboxes on loopback, hubspot.so and odoo.so over the host's real HTTP
// client, a SQLite store and a two-way contact sync between them configured from YAML: the
// world the end-to-end CRM tests run in, and how they look at both sides. HubSpot -> Odoo also
// takes HubSpot's webhooks on a loopback server (as `crmhost run` serves them), which is how
// HubSpot's deletions reach the host: a test turns HubSpot's deliveries on when it needs them.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <catch2/catch.hpp>

#include "config/config.hpp"
#include "net/http_client.hpp"
#include "net/http_server.hpp"
#include "pipeline/engine.hpp"
#include "pipeline/store_state.hpp"
#include "plugins/plugin_registry.hpp"
#include "sandbox/hubspot.hpp"
#include "sandbox/odoo.hpp"
#include "store/store.hpp"
#include "util/time.hpp"
#include "webhook_receiver.hpp"

using namespace std::chrono_literals;
using crmhost::store::EventStatus;

namespace {

constexpr int64_t kPortal = 101;
const char kDb[] = "crm";
const char kHubSpotToken[] = "pat-two-way-test";
const char kOdooKey[] = "odoo-key-two-way";
const char kHubSpotAppSecret[] = "hubspot-app-secret-two-way";
const char kHubSpotHooks[] = "/hooks/hubspot";
const char kToOdoo[] = "contacts-hubspot-to-odoo";
const char kToHubSpot[] = "contacts-odoo-to-hubspot";
constexpr auto kPollEvery = 1s;  // the loader's shortest poll interval

using Clock = std::chrono::steady_clock;

inline int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline std::string text(const crmsandbox::OdooValues &values, const std::string &field) {
  auto it = values.find(field);
  if (it == values.end()) return "";
  if (const auto *s = std::get_if<std::string>(&it->second)) return *s;
  return "";
}

inline std::string property(const crmsandbox::Properties &p, const std::string &name) {
  auto it = p.find(name);
  return it == p.end() ? "" : it->second;
}

// Odoo's "YYYY-MM-DD HH:MM:SS" (UTC) as Unix ms; 0 when it is not one.
inline int64_t odoo_time_ms(const std::string &odoo_time) {
  std::string iso = odoo_time;
  if (iso.size() > 10) iso[10] = 'T';
  return crmhost::timeutil::parse_iso8601_ms(iso + "Z").value_or(0);
}

// One contact as both sides should hold it.
struct Expected {
  std::string name;  // HubSpot "firstname lastname", Odoo `name`
  std::string city;
  std::string title;  // HubSpot jobtitle, Odoo function
};

// What a side holds for one email.
struct Seen {
  int count = 0;
  std::string id;
  Expected values;
  std::string stamp;  // HubSpot updated_ms / Odoo write_date: changes when the record is written
};

struct World {
  std::filesystem::path dir;
  WebhookReceiver hooks;
  crmsandbox::HubSpotSandbox hubspot{hubspot_options()};
  crmsandbox::OdooSandbox odoo{odoo_options()};
  std::shared_ptr<crmhost::plugins::HostServices> services =
      std::make_shared<crmhost::plugins::HostServices>();
  std::shared_ptr<crmhost::plugins::PluginRegistry> registry;
  std::shared_ptr<crmhost::store::Store> db;
  std::unique_ptr<crmhost::pipeline::Engine> engine;
  // What the next start() configures: each direction on or off, and the delete policy.
  bool to_odoo = true, to_hubspot = true;
  std::string on_delete = "keep_edited";

  static crmsandbox::HubSpotOptions hubspot_options() {
    crmsandbox::HubSpotOptions o;
    o.seed = 20'260'101;  // the faults each request draws: fixed
    // The test is about faults it injects, not HubSpot's own limits.
    o.rate_limits.per_window = 1'000'000;
    o.rate_limits.search_per_second = 1'000'000;
    o.rate_limits.daily = 100'000'000;
    return o;
  }
  static crmsandbox::OdooOptions odoo_options() {
    crmsandbox::OdooOptions o;
    o.seed = 20'260'102;
    return o;
  }
  // The host still retries 429, 5xx and dropped connections, but quickly.
  static crmhost::net::ClientOptions http_options() {
    crmhost::net::ClientOptions o;
    o.backoff_base = 20ms;
    o.backoff_cap = 100ms;
    o.default_timeout = 15s;
    return o;
  }

  World() {
    dir = std::filesystem::temp_directory_path() /
          ("crmhost-crm-two-way-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    // The plugins' state is encrypted in the store with this key (a fixed one, for tests only).
    ::setenv("CRMHOST_SECRET_KEY",
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 1);
    hubspot.add_token(kHubSpotToken, kPortal);
    hubspot.start();
    odoo.add_user(kDb, {"admin", "admin-password", {kOdooKey}});
    odoo.start();
    services->http = std::make_shared<crmhost::net::HttpClient>(http_options());
    registry = std::make_shared<crmhost::plugins::PluginRegistry>(services);
    const std::filesystem::path plugins(CRMHOST_PLUGIN_OUTPUT_DIR);
    registry->load_file(plugins / "hubspot.so");
    registry->load_file(plugins / "odoo.so");
    for (const auto &refusal : registry->refusals()) FAIL(refusal.to_string());
  }

  ~World() {
    hooks.serve(nullptr);  // waits for a delivery being ingested; later ones are answered 503
    if (engine) engine->stop();
    engine.reset();
    db.reset();
    hubspot.stop();
    odoo.stop();
    std::filesystem::remove_all(dir);
  }

  void write_file(const std::string &name, const std::string &content) const {
    std::ofstream out(dir / name);
    out << content;
  }

  crmhost::config::Config load_config() {
    write_file("hubspot-token", kHubSpotToken);
    write_file("odoo-key", kOdooKey);
    write_file("hubspot-app-secret", kHubSpotAppSecret);
    const std::string every = std::to_string(kPollEvery.count()) + "s";
    std::ostringstream yaml;
    yaml << "store: \"sqlite://" << (dir / "state.db").string() << "\"\n"
         << "shutdown_grace: 5s\nclaim_lease: 30s\n"
         << "connections:\n"
         << "  hubspot:\n    plugin: hubspot\n    settings:\n"
         << "      base_url: \"" << hubspot.base_url() << "\"\n"
         << "      auth: { token: \"${file:" << (dir / "hubspot-token").string() << "}\" }\n"
         << "      lookback_seconds: 5\n"
         << "      app_secret: \"${file:" << (dir / "hubspot-app-secret").string() << "}\"\n"
         << "      signature_versions: [v3]\n"
         << "      public_base_url: \"" << hooks.base_url() << "\"\n"
         << "  odoo:\n    plugin: odoo\n    settings:\n"
         << "      url: \"" << odoo.base_url() << "\"\n"
         << "      database: " << kDb << "\n      login: admin\n"
         << "      api_key: \"${file:" << (dir / "odoo-key").string() << "}\"\n"
         << "      lookback_seconds: 5\n"
         << "      reconcile_interval_seconds: 1\n"  // deletions seen within a second
         << "pipelines:\n"
         << "  " << kToOdoo << ":\n"
         << "    enabled: " << (to_odoo ? "true" : "false") << "\n"
         << "    source:\n"
         << "      webhook: { connection: hubspot, path: " << kHubSpotHooks << " }\n"
         << "      poll: { connection: hubspot, object: contact, every: " << every
         << ", jitter: 100ms }\n"
         << "    map:\n      fields:\n"
         << "        email: { from: email, transform: [trim, lower], required: true }\n"
         << "        _first_name: { from: firstname, transform: [trim] }\n"
         << "        _last_name: { from: lastname, transform: [trim] }\n"
         << "        function: jobtitle\n"
         << "        city: city\n"
         << "    sink: { push: { connection: odoo, object: contact, match_on: email, "
            "conflict: newest_wins, on_delete: "
         << on_delete << " } }\n"
         << "    retry: { attempts: 12, backoff: 50ms..400ms }\n"
         << "  " << kToHubSpot << ":\n"
         << "    enabled: " << (to_hubspot ? "true" : "false") << "\n"
         << "    source: { poll: { connection: odoo, object: contact, every: " << every
         << ", jitter: 100ms } }\n"
         << "    map:\n      fields:\n"
         << "        email: { from: email, transform: [trim, lower], required: true }\n"
         << "        firstname: { from: _first_name, transform: [trim] }\n"
         << "        lastname: { from: _last_name, transform: [trim] }\n"
         << "        jobtitle: function\n"
         << "        city: city\n"
         << "    sink: { push: { connection: hubspot, object: contact, match_on: email, "
            "conflict: newest_wins, on_delete: "
         << on_delete << " } }\n"
         << "    retry: { attempts: 12, backoff: 50ms..400ms }\n";
    write_file("crmhost.yaml", yaml.str());
    auto loaded = crmhost::config::load({dir / "crmhost.yaml"}, registry.get());
    for (const auto &problem : loaded.problems) FAIL(problem.to_string());
    REQUIRE(loaded.config);
    return *loaded.config;
  }

  void start() {
    auto config = load_config();
    db = crmhost::store::open_store(config.store);
    // The plugins keep state (Odoo's snapshots of ids, for deletions) in the store, as in a host.
    services->state = std::make_shared<crmhost::pipeline::StoreStateBackend>(db);
    crmhost::pipeline::EngineOptions options;
    options.idle_delay = 50ms;
    engine = std::make_unique<crmhost::pipeline::Engine>(config, registry, db, options);
    engine->start();
    hooks.serve(engine.get());
  }

  // HubSpot sends its contact deletions to the host from now on: v3-signed with the app secret,
  // batched and retried as HubSpot does (the sandbox's own deliveries).
  void receive_hubspot_deletions() {
    hubspot.set_webhook_target(hooks.base_url() + kHubSpotHooks, kHubSpotAppSecret, "v3");
    hubspot.subscribe("contact.deletion");
  }

  // Deletes (archives) HubSpot contact `id` as a user would, and waits until HubSpot's
  // contact.deletion delivery naming it was answered 200: the event is stored in the host. That
  // delivery; nullopt when none was answered 200 within `limit`.
  std::optional<crmsandbox::HubSpotDelivery> delete_in_hubspot(
      const std::string &id, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    if (!hubspot.archive_record(kPortal, "contacts", id)) return std::nullopt;
    const std::string names = "\"objectId\":" + id + ",";
    const auto deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      for (const auto &d : hubspot.deliveries())
        if (d.status == 200 && d.body.find(names) != std::string::npos &&
            d.body.find("\"contact.deletion\"") != std::string::npos)
          return d;
      std::this_thread::sleep_for(20ms);
    }
    return std::nullopt;
  }

  int64_t count(const std::string &pipeline, std::initializer_list<EventStatus> statuses) {
    int64_t n = 0;
    for (const auto &c : db->count_by_status(pipeline))
      for (auto s : statuses)
        if (c.status == s) n += c.count;
    return n;
  }
  int64_t unsettled(const std::vector<std::string> &pipelines = {kToOdoo, kToHubSpot}) {
    int64_t n = 0;
    for (const auto &p : pipelines)
      n += count(p, {EventStatus::pending, EventStatus::in_flight, EventStatus::failed});
    return n;
  }
  int64_t events(const std::vector<std::string> &pipelines = {kToOdoo, kToHubSpot}) {
    int64_t n = 0;
    for (const auto &p : pipelines)
      n += count(p, {EventStatus::pending, EventStatus::in_flight, EventStatus::failed,
                     EventStatus::done, EventStatus::dead});
    return n;
  }
  size_t poll_runs(const std::string &pipeline) {
    size_t n = 0;
    for (const auto &run : db->list_sync_runs(pipeline, 1000))
      n += run.kind == crmhost::store::SyncRunKind::poll &&
           run.status != crmhost::store::SyncRunStatus::running;
    return n;
  }

  // Quiescent: nothing of `pipelines` pending, in flight or failed, and no new event, while each
  // of them finished at least two more polls (which would have found any change not yet
  // synced).
  bool wait_quiescent(std::chrono::seconds limit,
                      std::vector<std::string> pipelines = {kToOdoo, kToHubSpot}) {
    const auto deadline = Clock::now() + limit;
    auto runs = [&] {
      std::vector<size_t> out;
      for (const auto &p : pipelines) out.push_back(poll_runs(p));
      return out;
    };
    auto events_then = events(pipelines);
    auto runs_then = runs();
    while (Clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
      const auto events_now = events(pipelines);
      const auto runs_now = runs();
      if (unsettled(pipelines) != 0 || events_now != events_then) {
        events_then = events_now;
        runs_then = runs_now;
        continue;
      }
      bool enough = true;
      for (size_t i = 0; i < runs_now.size(); ++i) enough &= runs_now[i] >= runs_then[i] + 2;
      if (enough) return true;
    }
    return false;
  }

  std::map<std::string, Seen> hubspot_side() const {
    std::map<std::string, Seen> out;
    for (const auto &r : hubspot.records(kPortal, "contacts")) {
      auto &s = out[property(r.properties, "email")];
      ++s.count;
      s.id = r.id;
      s.values = {property(r.properties, "firstname") + " " + property(r.properties, "lastname"),
                  property(r.properties, "city"), property(r.properties, "jobtitle")};
      s.stamp = std::to_string(r.updated_ms);
    }
    return out;
  }
  std::map<std::string, Seen> odoo_side() const {
    std::map<std::string, Seen> out;
    for (const auto &r : odoo.records(kDb, "res.partner")) {
      auto company = r.values.find("is_company");
      if (company != r.values.end() && std::get_if<bool>(&company->second) &&
          std::get<bool>(company->second))
        continue;
      auto &s = out[text(r.values, "email")];
      ++s.count;
      s.id = std::to_string(r.id);
      s.values = {text(r.values, "name"), text(r.values, "city"), text(r.values, "function")};
      s.stamp = text(r.values, "write_date");
    }
    return out;
  }
};

inline std::string email_of(int i) {
  return "person" + std::to_string(i) + "@example.com";
}

inline std::string describe(const Expected &e) {
  return "{name \"" + e.name + "\", city \"" + e.city + "\", title \"" + e.title + "\"}";
}

inline bool operator==(const Expected &a, const Expected &b) {
  return a.name == b.name && a.city == b.city && a.title == b.title;
}

}  // namespace
