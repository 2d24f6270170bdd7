// Sync into a rate-limited provider: N contacts queued in a pipeline whose sink is hubspot.so or
// zoho.so, pushed over the host's real HTTP client (with the per-connection rate limiters
// `crmhost run` configures) into the in-process HubSpot or Zoho sandbox, which enforces the
// provider's budget. Reports records/s as a share of the bound the budget sets, the requests
// made and the 429s the sandbox answered (see docs/benchmarks.md).
//   sync_bench [--provider hubspot|zoho|all] [--windows N] [--batches 100,50]
//              [--per-window N] [--window-ms MS] [--match] [--zoho-credits N]
//              [--zoho-concurrency N] [--zoho-pipelines N] [--dir DIR]
//
// HubSpot: the sandbox admits --per-window requests (100) per rolling --window-ms (10,000) per
// token, and the plugin upserts contacts 100 a request (batch/upsert on email), so the bound is
// per_window x 100 / window records/s. Any interval of k whole windows holds at most k x
// per_window requests, so the headline share is measured over the first k whole windows after
// the first push (records created in [t0, t0 + k x window) / (k x window)); the plain first ->
// last rate is printed beside it. N = (windows + 1) x per_window x batch records are queued.
// A window other than the plugin's declared 100 per 10 s is given to the connection as its
// `rate_limit`, as an operator would for a portal with another limit.
//
// Zoho: the budget is a total, --zoho-credits API credits per rolling 24 h (1 per call, 100
// records per upsert), and a cap of --zoho-concurrency calls in flight per org. 1.2 x credits x
// 100 records are queued; the bound is credits x 100 records within the day, and the run shows
// how much of it is spent on records, how fast, and whether the connection stops at the budget
// without a 429. With --zoho-pipelines P, P pipelines share the org (P lanes pushing at once).
// SYNC_BENCH_METRICS=1 also prints the host's histogram sums and counts after a HubSpot row.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "cli/cli.hpp"
#include "config/config.hpp"
#include "net/http_client.hpp"
#include "pipeline/engine.hpp"
#include "pipeline/event_payload.hpp"
#include "pipeline/store_state.hpp"
#include "plugins/plugin_registry.hpp"
#include "sandbox/hubspot.hpp"
#include "sandbox/zoho.hpp"
#include "store/store.hpp"
#include "util/logging.hpp"
#include "util/metrics.hpp"
#include "util/time.hpp"

using namespace crmhost;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kPortal = 101;
constexpr int64_t kOrg = 777;
const char kToken[] = "pat-sync-bench";

struct Options {
  std::string provider = "all";
  int windows = 6;
  std::vector<int> batches = {100};
  int64_t per_window = 100;
  int64_t window_ms = 10'000;
  bool match = false;
  int64_t zoho_credits = 500;
  int64_t zoho_concurrency = 10;
  int zoho_pipelines = 1;
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("crmhost-sync-bench-" + std::to_string(getpid()));
};

std::vector<int> int_list(const std::string &s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');) out.push_back(std::stoi(part));
  return out;
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The host side of one run: plugins loaded with the real HTTP client, a SQLite store, an engine.
struct Host {
  std::filesystem::path dir;
  std::shared_ptr<plugins::HostServices> services = std::make_shared<plugins::HostServices>();
  std::shared_ptr<net::HttpClient> http;
  std::shared_ptr<plugins::PluginRegistry> registry;
  std::shared_ptr<store::Store> db;
  std::unique_ptr<pipeline::Engine> engine;
  std::optional<config::Config> config;

  explicit Host(std::filesystem::path d) : dir(std::move(d)) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    ::setenv("CRMHOST_SECRET_KEY",
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 1);
    // `crmhost run`'s client options, but a short deadline so a stall shows rather than hangs.
    net::ClientOptions o;
    o.default_timeout = 60s;
    http = std::make_shared<net::HttpClient>(o);
    services->http = http;
    registry = std::make_shared<plugins::PluginRegistry>(services);
    const std::filesystem::path plugins(CRMHOST_PLUGIN_OUTPUT_DIR);
    registry->load_file(plugins / "crmhost-memory.so");
    registry->load_file(plugins / "hubspot.so");
    registry->load_file(plugins / "zoho.so");
    for (const auto &refusal : registry->refusals()) throw std::runtime_error(refusal.to_string());
  }
  ~Host() {
    if (engine) engine->stop();
    engine.reset();
    db.reset();
    std::filesystem::remove_all(dir);
  }

  void load(const std::string &yaml) {
    {
      std::ofstream out(dir / "crmhost.yaml");
      out << "store: \"sqlite://" << (dir / "state.db").string() << "\"\n"
          << "shutdown_grace: 5s\nclaim_lease: 60s\n"
          << yaml;
    }
    auto loaded = config::load({dir / "crmhost.yaml"}, registry.get());
    for (const auto &problem : loaded.problems) throw std::runtime_error(problem.to_string());
    config = *loaded.config;
    // What `crmhost run` does: the plugins' declared budgets, overridden by `rate_limit`.
    http->set_rate_limits(cli::outbound_rate_limits(*config, *registry));
    db = store::open_store(config->store);
    services->state = std::make_shared<pipeline::StoreStateBackend>(db);
  }

  // Queues `n` distinct contacts on `pipeline`, as its webhook source would have.
  void enqueue(const std::string &pipeline, size_t first, size_t n) {
    const std::string now = timeutil::format_iso8601_ms(wall_ms());
    std::vector<store::NewEvent> events;
    for (size_t i = first; i < first + n; ++i) {
      pipeline::EventPayload p;
      p.object = "contact";
      p.id = std::to_string(i);
      p.modified_at = now;
      p.data_json = R"({"email":"person)" + std::to_string(i) +
                    R"(@example.com","firstname":"First)" + std::to_string(i) +
                    R"(","lastname":"Last)" + std::to_string(i) + R"("})";
      events.push_back(
          pipeline::make_event(pipeline, store::EventSource::webhook, "src", p, "sync-bench"));
      if (events.size() == 1000) {
        db->enqueue(events);
        events.clear();
      }
    }
    if (!events.empty()) db->enqueue(events);
  }

  void start() {
    pipeline::EngineOptions options;
    options.idle_delay = 50ms;
    engine = std::make_unique<pipeline::Engine>(*config, registry, db, options);
    engine->start();
  }

  int64_t count(store::EventStatus status) {
    int64_t n = 0;
    for (const auto &c : db->count_by_status())
      if (c.status == status) n += c.count;
    return n;
  }
};

std::string pipeline_yaml(const std::string &name, const std::string &sink,
                          const std::string &object, const std::string &fields, int batch,
                          bool match, const std::string &match_key) {
  std::ostringstream y;
  y << "  " << name << ":\n"
    << "    source: { webhook: { connection: src, path: /hooks/" << name << " } }\n"
    << "    batch_size: " << batch << "\n"
    << "    map:\n      fields:\n"
    << fields << "    sink: { push: { connection: " << sink << ", object: " << object
    << (match ? ", match_on: " + match_key : std::string()) << " } }\n"
    << "    retry: { attempts: 12, backoff: 1s..30s }\n";
  return y.str();
}

void print_header() {
  std::printf(
      "| provider | batch | match_on | records | requests | rec/req | 429s | span s | rec/s "
      "first->last | rec/s in whole windows | bound rec/s | share | throttled | wait s |\n");
  std::printf(
      "|----------|------:|----------|--------:|---------:|--------:|-----:|-------:|------------"
      "-:|-----------------------:|------------:|------:|----------:|-------:|\n");
}

void run_hubspot(const Options &opt, int batch) {
  crmsandbox::HubSpotOptions so;
  so.rate_limits.per_window = opt.per_window;
  so.rate_limits.window_ms = opt.window_ms;
  so.rate_limits.daily = 100'000'000;
  crmsandbox::HubSpotSandbox hubspot(so);
  hubspot.add_token(kToken, kPortal);
  hubspot.start();

  Host host(opt.dir);
  { std::ofstream(host.dir / "token") << kToken; }
  std::ostringstream y;
  y << "connections:\n"
    << "  src: { plugin: memory, settings: { webhook_secret: \"s3cret-s3cret\" } }\n"
    << "  hubspot:\n    plugin: hubspot\n    settings:\n"
    << "      base_url: \"" << hubspot.base_url() << "\"\n"
    << "      auth: { token: \"${file:" << (host.dir / "token").string() << "}\" }\n";
  if (opt.per_window != 100 || opt.window_ms != 10'000)
    y << "    rate_limit: { requests: " << opt.per_window << ", per: " << opt.window_ms << "ms }\n";
  y << "pipelines:\n"
    << pipeline_yaml("to-hubspot", "hubspot", "contact",
                     "        email: email\n        firstname: firstname\n"
                     "        lastname: lastname\n",
                     batch, opt.match, "email");
  host.load(y.str());

  // Whole windows the run spans at the bound, plus one: the first push's window.
  const double bound =
      static_cast<double>(opt.per_window) * 100.0 * 1000.0 / static_cast<double>(opt.window_ms);
  const size_t n = static_cast<size_t>(opt.windows + 1) * static_cast<size_t>(opt.per_window) *
                   static_cast<size_t>(batch);
  host.enqueue("to-hubspot", 0, n);
  host.start();
  const auto deadline =
      Clock::now() +
      std::chrono::milliseconds(opt.window_ms) * (opt.windows + 1) * 100 / batch * 3 + 60s;
  while (Clock::now() < deadline && hubspot.count(kPortal, "contacts") < n &&
         host.count(store::EventStatus::dead) == 0)
    std::this_thread::sleep_for(50ms);
  host.engine->stop();

  std::vector<int64_t> stamps;
  for (const auto &r : hubspot.records(kPortal, "contacts")) stamps.push_back(r.created_ms);
  std::sort(stamps.begin(), stamps.end());
  const auto stats = hubspot.stats();
  const auto m = host.http->metrics();
  const uint64_t limited =
      stats.limited_ten_secondly + stats.limited_secondly + stats.limited_daily;
  const double span = stamps.size() > 1 ? (stamps.back() - stamps.front()) / 1000.0 : 0;
  const int64_t k = stamps.empty() ? 0 : (stamps.back() - stamps.front()) / opt.window_ms;
  size_t in_windows = 0;
  for (int64_t t : stamps) in_windows += k > 0 && t < stamps.front() + k * opt.window_ms;
  const double windowed = k > 0 ? in_windows * 1000.0 / static_cast<double>(k * opt.window_ms) : 0;
  std::printf(
      "| hubspot  | %5d | %-8s | %7zu | %8llu | %7.1f | %4llu | %6.1f | %12.0f | %14.0f (%lld w) "
      "| %11.0f | %4.1f%% | %9llu | %6.1f |\n",
      batch, opt.match ? "email" : "-", stamps.size(), (unsigned long long)stats.requests,
      stats.requests ? stamps.size() / static_cast<double>(stats.requests) : 0.0,
      (unsigned long long)limited, span, span > 0 ? stamps.size() / span : 0.0, windowed,
      (long long)k, bound, 100.0 * windowed / bound, (unsigned long long)m.throttled,
      m.rate_limit_wait_seconds);
  if (std::getenv("SYNC_BENCH_METRICS")) {
    std::istringstream lines(metrics::global().render());
    for (std::string line; std::getline(lines, line);)
      if (line.find("_sum") != std::string::npos || line.find("_count") != std::string::npos)
        std::printf("  %s\n", line.c_str());
  }
  if (stamps.size() < n || host.count(store::EventStatus::dead) > 0)
    std::printf("  (incomplete: %zu of %zu pushed, %lld dead, %lld failed, %lld pending)\n",
                stamps.size(), n, (long long)host.count(store::EventStatus::dead),
                (long long)host.count(store::EventStatus::failed),
                (long long)host.count(store::EventStatus::pending));
  std::fflush(stdout);
}

void run_zoho(const Options &opt, int batch) {
  crmsandbox::ZohoSandbox zoho;
  crmsandbox::ZohoOrg org;
  org.id = kOrg;
  org.credits_per_day = opt.zoho_credits;
  org.concurrency = opt.zoho_concurrency;
  zoho.add_org(org);
  zoho.add_client("client-1", "secret-1", "refresh-1", kOrg);
  zoho.start();

  Host host(opt.dir);
  std::ostringstream y;
  y << "connections:\n"
    << "  src: { plugin: memory, settings: { webhook_secret: \"s3cret-s3cret\" } }\n"
    << "  zoho:\n    plugin: zoho\n    settings:\n"
    << "      data_centre: us\n"
    << "      accounts_url: \"" << zoho.accounts_base_url() << "\"\n"
    << "      auth: { client_id: client-1, client_secret: secret-1, refresh_token: refresh-1 }\n"
    << "pipelines:\n";
  std::vector<std::string> names;
  for (int p = 0; p < opt.zoho_pipelines; ++p) {
    names.push_back("to-zoho-" + std::to_string(p));
    y << pipeline_yaml(names.back(), "zoho", "lead",
                       "        Email: email\n        First_Name: firstname\n"
                       "        Last_Name: lastname\n",
                       batch, opt.match, "Email");
  }
  host.load(y.str());

  const size_t bound_records = static_cast<size_t>(opt.zoho_credits) * 100;
  const size_t n = bound_records * 6 / 5;
  const size_t each = n / names.size();
  for (size_t p = 0; p < names.size(); ++p) host.enqueue(names[p], p * each, each);
  host.start();
  // Until the credits are spent (or everything is written), then 3 s more: a connection that
  // did not stop at the budget shows as 429s in them.
  const auto deadline = Clock::now() + 600s;
  while (Clock::now() < deadline && zoho.credits_used(kOrg) < opt.zoho_credits &&
         zoho.count(kOrg, "Leads") < each * names.size())
    std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(3s);
  host.engine->stop();

  const auto calls = zoho.write_calls();
  size_t written = 0;
  int64_t first = 0, last = 0;
  for (const auto &c : calls) {
    written += c.ids.size();
    if (!first) first = c.at_ms;
    last = c.at_ms;
  }
  const auto stats = zoho.stats();
  const auto m = host.http->metrics();
  const double span = (last - first) / 1000.0;
  std::printf(
      "| zoho     | %5d | %-8s | %7zu | %8llu | %7.1f | %4llu | %6.1f | %12.0f | %23s | %11s | "
      "%4.1f%% | %9llu | %6.1f |\n",
      batch, opt.match ? "Email" : "-", written, (unsigned long long)stats.requests,
      stats.requests ? written / static_cast<double>(stats.requests) : 0.0,
      (unsigned long long)stats.too_many_requests(), span, span > 0 ? written / span : 0.0, "-",
      "-", 100.0 * static_cast<double>(written) / static_cast<double>(bound_records),
      (unsigned long long)m.throttled, m.rate_limit_wait_seconds);
  std::printf(
      "  zoho: %lld credits per 24 h (bound %zu records), concurrency cap %lld, %d pipeline(s); "
      "credits used %lld; %zu write calls; 429s: %llu credits, %llu concurrency; "
      "events %lld done, %lld failed/pending (waiting for credits), %lld dead\n",
      (long long)opt.zoho_credits, bound_records, (long long)opt.zoho_concurrency,
      opt.zoho_pipelines, (long long)zoho.credits_used(kOrg), calls.size(),
      (unsigned long long)stats.limited_credits, (unsigned long long)stats.limited_concurrency,
      (long long)host.count(store::EventStatus::done),
      (long long)(host.count(store::EventStatus::failed) + host.count(store::EventStatus::pending)),
      (long long)host.count(store::EventStatus::dead));
  for (const auto &[path, count] : stats.by_path)
    std::printf("    %-40s %llu\n", path.c_str(), (unsigned long long)count);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char **argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--match") {
      opt.match = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "sync_bench: %s needs a value\n", a.c_str());
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--provider")
      opt.provider = v;
    else if (a == "--windows")
      opt.windows = std::stoi(v);
    else if (a == "--batches")
      opt.batches = int_list(v);
    else if (a == "--per-window")
      opt.per_window = std::stoll(v);
    else if (a == "--window-ms")
      opt.window_ms = std::stoll(v);
    else if (a == "--zoho-credits")
      opt.zoho_credits = std::stoll(v);
    else if (a == "--zoho-concurrency")
      opt.zoho_concurrency = std::stoll(v);
    else if (a == "--zoho-pipelines")
      opt.zoho_pipelines = std::max(1, std::stoi(v));
    else if (a == "--dir")
      opt.dir = v;
    else {
      std::fprintf(stderr, "sync_bench: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  logging::setup("error");
  print_header();
  for (int batch : opt.batches) {
    if (opt.provider == "all" || opt.provider == "hubspot") run_hubspot(opt, batch);
    if (opt.provider == "all" || opt.provider == "zoho") run_zoho(opt, batch);
  }
  return 0;
}
