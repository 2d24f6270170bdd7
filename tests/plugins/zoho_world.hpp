#pragma once
// Zoho and HubSpot sandboxes on loopback, zoho.so and hubspot.so over the host's real HTTP
// client, a SQLite store and a two-way contact sync between Zoho Contacts and HubSpot contacts
// configured from YAML: the world the Zoho end-to-end tests run in, and how they look at both
// sides. Zoho -> HubSpot also takes Zoho's actions/watch notifications on a loopback server (as
// `crmhost run` serves them); the channel is subscribed by the plugin's maintenance when the
// engine starts.
//
// The pipelines map fields explicitly, each the other's inverse: a pipeline names at most one
// preset and presets do not compose through the canonical model (docs/mapping.md).
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
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
#include "sandbox/zoho.hpp"
#include "store/store.hpp"
#include "webhook_receiver.hpp"

using namespace std::chrono_literals;
using crmhost::store::EventStatus;

namespace zohoworld {

constexpr int64_t kPortal = 202;
constexpr int64_t kOrg = 777;
const char kHubSpotToken[] = "pat-zoho-two-way";
const char kZohoClient[] = "1000.ZOHOTWOWAY";
const char kZohoSecret[] = "zoho-client-secret-two-way";
const char kZohoRefresh[] = "1000.refresh.two-way";
const char kChannelId[] = "1000000068001";
const char kChannelToken[] = "zoho-channel-token-two-way";
const char kZohoHooks[] = "/hooks/zoho";
const char kToHubSpot[] = "contacts-zoho-to-hubspot";
const char kToZoho[] = "contacts-hubspot-to-zoho";
constexpr auto kPollEvery = 1s;  // the loader's shortest poll interval

using Clock = std::chrono::steady_clock;

inline std::string lower(std::string s) {
  for (auto &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

inline std::string property(const crmsandbox::Properties &p, const std::string &name) {
  auto it = p.find(name);
  return it == p.end() ? "" : it->second;
}

inline std::string field(const crmsandbox::ZohoFields &f, const std::string &name) {
  auto it = f.find(name);
  if (it == f.end()) return "";
  if (const auto *s = std::get_if<std::string>(&it->second)) return *s;
  return "";
}

// One contact as both sides should hold it (the mapped fields but the email, the key).
struct Expected {
  std::string first, last, city, title;
  bool operator==(const Expected &) const = default;
};

inline std::string describe(const Expected &e) {
  return "{\"" + e.first + "\" \"" + e.last + "\", city \"" + e.city + "\", title \"" + e.title +
         "\"}";
}

// What a side holds for one email (compared in lower case: the first link keeps each side's own
// spelling of an equal key).
struct Seen {
  int count = 0;
  std::string id;
  Expected values;
  int64_t stamp = 0;  // the record's modification time: changes when it is written
};

struct World {
  std::filesystem::path dir;
  WebhookReceiver hooks;
  crmsandbox::HubSpotSandbox hubspot{hubspot_options()};
  crmsandbox::ZohoSandbox zoho{zoho_options()};
  std::shared_ptr<crmhost::plugins::HostServices> services =
      std::make_shared<crmhost::plugins::HostServices>();
  std::shared_ptr<crmhost::plugins::PluginRegistry> registry;
  std::shared_ptr<crmhost::store::Store> db;
  std::unique_ptr<crmhost::pipeline::Engine> engine;

  static crmsandbox::HubSpotOptions hubspot_options() {
    crmsandbox::HubSpotOptions o;
    // The faults each request draws: fixed. Each sandbox draws them in request order from one
    // generator, so what its first requests meet is fixed too: these seeds put a 429 and a 5xx
    // (and a dropped connection) among the first ten, which every run makes.
    o.seed = 20'260'234;
    // The test is about the faults it injects, not HubSpot's own limits.
    o.rate_limits.per_window = 1'000'000;
    o.rate_limits.search_per_second = 1'000'000;
    o.rate_limits.daily = 100'000'000;
    return o;
  }
  static crmsandbox::ZohoOptions zoho_options() {
    crmsandbox::ZohoOptions o;
    o.seed = 20'260'229;
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
          ("crmhost-zoho-two-way-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    // The plugins' state (Zoho's token and channel) is encrypted in the store with this key.
    ::setenv("CRMHOST_SECRET_KEY",
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 1);
    hubspot.add_token(kHubSpotToken, kPortal);
    hubspot.start();
    crmsandbox::ZohoOrg org;
    org.id = kOrg;
    org.utc_offset_minutes = 330;  // Modified_Time in +05:30: the plugin converts to UTC
    org.credits_per_day = 100'000'000;
    org.concurrency = 1000;
    zoho.add_org(org);
    zoho.add_client(kZohoClient, kZohoSecret, kZohoRefresh, kOrg);
    zoho.start();
    services->http = std::make_shared<crmhost::net::HttpClient>(http_options());
    registry = std::make_shared<crmhost::plugins::PluginRegistry>(services);
    const std::filesystem::path plugins(CRMHOST_PLUGIN_OUTPUT_DIR);
    registry->load_file(plugins / "hubspot.so");
    registry->load_file(plugins / "zoho.so");
    for (const auto &refusal : registry->refusals()) FAIL(refusal.to_string());
  }

  ~World() {
    hooks.serve(nullptr);  // waits for a callback being ingested; later ones are answered 503
    if (engine) engine->stop();
    engine.reset();
    db.reset();
    hubspot.stop();
    zoho.stop();
    std::filesystem::remove_all(dir);
  }

  void write_file(const std::string &name, const std::string &content) const {
    std::ofstream out(dir / name);
    out << content;
  }

  crmhost::config::Config load_config() {
    write_file("hubspot-token", kHubSpotToken);
    write_file("zoho-secret", kZohoSecret);
    write_file("zoho-refresh", kZohoRefresh);
    write_file("zoho-channel-token", kChannelToken);
    const std::string every = std::to_string(kPollEvery.count()) + "s";
    const auto file = [&](const char *name) { return (dir / name).string(); };
    std::ostringstream yaml;
    yaml << "store: \"sqlite://" << file("state.db") << "\"\n"
         << "shutdown_grace: 5s\nclaim_lease: 30s\n"
         << "connections:\n"
         << "  hubspot:\n    plugin: hubspot\n    settings:\n"
         << "      base_url: \"" << hubspot.base_url() << "\"\n"
         << "      auth: { token: \"${file:" << file("hubspot-token") << "}\" }\n"
         << "      lookback_seconds: 5\n"
         << "  zoho:\n    plugin: zoho\n    settings:\n"
         << "      data_centre: us\n"
         << "      accounts_url: \"" << zoho.accounts_base_url() << "\"\n"
         << "      auth:\n"
         << "        client_id: \"" << kZohoClient << "\"\n"
         << "        client_secret: \"${file:" << file("zoho-secret") << "}\"\n"
         << "        refresh_token: \"${file:" << file("zoho-refresh") << "}\"\n"
         << "      objects: [contact]\n"
         << "      lookback_seconds: 5\n"
         << "      notifications:\n"
         << "        channel_id: \"" << kChannelId << "\"\n"
         << "        token: \"${file:" << file("zoho-channel-token") << "}\"\n"
         << "        notify_url: \"" << hooks.base_url() << kZohoHooks << "\"\n"
         << "pipelines:\n"
         << "  " << kToHubSpot << ":\n"
         << "    source:\n"
         << "      webhook: { connection: zoho, path: " << kZohoHooks << " }\n"
         << "      poll: { connection: zoho, object: contact, every: " << every
         << ", jitter: 100ms }\n"
         << "    map:\n      fields:\n"
         << "        email: { from: Email, transform: [trim, lower], required: true }\n"
         << "        firstname: { from: First_Name, transform: [trim] }\n"
         << "        lastname: { from: Last_Name, transform: [trim] }\n"
         << "        jobtitle: Title\n"
         << "        city: Mailing_City\n"
         << "    sink: { push: { connection: hubspot, object: contact, match_on: email, "
            "conflict: newest_wins } }\n"
         << "    retry: { attempts: 12, backoff: 50ms..400ms }\n"
         << "  " << kToZoho << ":\n"
         << "    source: { poll: { connection: hubspot, object: contact, every: " << every
         << ", jitter: 100ms } }\n"
         << "    map:\n      fields:\n"
         << "        Email: { from: email, transform: [trim, lower], required: true }\n"
         << "        First_Name: { from: firstname, transform: [trim] }\n"
         << "        Last_Name: { from: lastname, transform: [trim] }\n"
         << "        Title: jobtitle\n"
         << "        Mailing_City: city\n"
         << "    sink: { push: { connection: zoho, object: contact, match_on: Email, "
            "conflict: newest_wins } }\n"
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
    // The plugins keep state (Zoho's access token and channel) in the store, as in a host.
    services->state = std::make_shared<crmhost::pipeline::StoreStateBackend>(db);
    crmhost::pipeline::EngineOptions options;
    options.idle_delay = 50ms;
    engine = std::make_unique<crmhost::pipeline::Engine>(config, registry, db, options);
    engine->start();
    hooks.serve(engine.get());
  }

  int64_t count(const std::string &pipeline, std::initializer_list<EventStatus> statuses) {
    int64_t n = 0;
    for (const auto &c : db->count_by_status(pipeline))
      for (auto s : statuses)
        if (c.status == s) n += c.count;
    return n;
  }
  int64_t unsettled() {
    int64_t n = 0;
    for (const auto *p : {kToHubSpot, kToZoho})
      n += count(p, {EventStatus::pending, EventStatus::in_flight, EventStatus::failed});
    return n;
  }
  int64_t events() {
    int64_t n = 0;
    for (const auto *p : {kToHubSpot, kToZoho})
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

  // Quiescent: nothing pending, in flight or failed, and no new event, while each pipeline
  // finished at least two more polls (which would have found any change not yet synced).
  bool wait_quiescent(std::chrono::seconds limit) {
    const auto deadline = Clock::now() + limit;
    auto runs = [&] { return std::vector<size_t>{poll_runs(kToHubSpot), poll_runs(kToZoho)}; };
    auto events_then = events();
    auto runs_then = runs();
    while (Clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
      const auto events_now = events();
      const auto runs_now = runs();
      if (unsettled() != 0 || events_now != events_then) {
        events_then = events_now;
        runs_then = runs_now;
        continue;
      }
      if (runs_now[0] >= runs_then[0] + 2 && runs_now[1] >= runs_then[1] + 2) return true;
    }
    return false;
  }

  std::map<std::string, Seen> hubspot_side() const {
    std::map<std::string, Seen> out;
    for (const auto &r : hubspot.records(kPortal, "contacts")) {
      auto &s = out[lower(property(r.properties, "email"))];
      ++s.count;
      s.id = r.id;
      s.values = {property(r.properties, "firstname"), property(r.properties, "lastname"),
                  property(r.properties, "city"), property(r.properties, "jobtitle")};
      s.stamp = r.updated_ms;
    }
    return out;
  }
  std::map<std::string, Seen> zoho_side() const {
    std::map<std::string, Seen> out;
    for (const auto &r : zoho.records(kOrg, "Contacts")) {
      auto &s = out[lower(field(r.fields, "Email"))];
      ++s.count;
      s.id = r.id;
      s.values = {field(r.fields, "First_Name"), field(r.fields, "Last_Name"),
                  field(r.fields, "Mailing_City"), field(r.fields, "Title")};
      s.stamp = r.modified_ms;
    }
    return out;
  }
};

}  // namespace zohoworld
