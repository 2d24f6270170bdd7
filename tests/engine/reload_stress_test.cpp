// Reloads every few milliseconds (unchanged, a changed pipeline restarted, a plugin loaded and a
// connection and pipeline added on it, then removed again) while webhooks (through the router's
// synchronous route() and through route_async, the server's path in `crmhost run`), admin calls
// (the health check of the connection that comes and goes among them) and /metrics scrapes run
// on other threads. Under the tsan preset this is the data-race check of the engine's control
// plane; in every preset it checks that each acknowledged webhook is processed exactly once and
// that every admin answer is a sane one.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "engine_support.hpp"

#include "http_api/router.hpp"
#include "pipeline/engine.hpp"
#include "plugins/plugin_registry.hpp"
#include "util/metrics.hpp"

using namespace crmhost;
using namespace std::chrono_literals;
using crmhost::testing::eventually;

namespace {

constexpr const char *kToken = "an-admin-token-of-32-characters!";

net::HttpRequest request(const std::string &method, const std::string &target,
                         const std::string &body = "") {
  net::HttpRequest r;
  r.method = method;
  r.target = target;
  r.path = target.substr(0, target.find('?'));
  if (const auto q = target.find('?'); q != std::string::npos) r.query = target.substr(q + 1);
  r.headers = {{"Authorization", std::string("Bearer ") + kToken},
               {"X-Memory-Secret", "s3cret-s3cret"}};
  r.body = body;
  r.request_id = "stress";
  return r;
}

config::ConnectionConfig connection(const std::string &name, const std::string &plugin) {
  return {name, plugin, R"({"webhook_secret":"s3cret-s3cret"})", std::nullopt, {}};
}

config::PipelineConfig webhook_pipeline(const std::string &name, const std::string &source,
                                        const std::string &path, const std::string &sink,
                                        uint32_t batch_size) {
  config::PipelineConfig p;
  p.name = name;
  p.webhook = config::WebhookSource{source, path, {}, {}};
  p.sink = config::PushSink{sink,
                            "contact",
                            config::PushMode::upsert,
                            std::string("email"),
                            config::ConflictPolicy::source_wins,
                            {},
                            {"trim", "lower"},
                            config::DeletePolicy::keep_edited,
                            {}};
  p.retry = config::RetryPolicy{5, 5ms, 20ms};
  p.batch_size = batch_size;
  return p;
}

// Variant 0 and 1 differ in the webhook pipeline's batch size (it restarts); variant 2 adds a
// connection on the memory-sdk plugin, loaded meanwhile, and a pipeline on it.
config::Config variant(int which) {
  config::Config c;
  c.plugin_workers = 3;
  c.shutdown_grace = 5s;
  c.claim_lease = 30s;
  c.connections = {{"src", connection("src", "memory")}, {"dst", connection("dst", "memory")}};
  auto hooks = webhook_pipeline("hooks", "src", "/hooks/memory", "dst", which == 1 ? 20 : 10);
  c.pipelines = {{hooks.name, hooks}};
  if (which == 2) {
    c.connections["sdk"] = connection("sdk", "memory-sdk");
    auto more = webhook_pipeline("more", "sdk", "/hooks/sdk", "sdk", 10);
    c.pipelines[more.name] = more;
  }
  return c;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<size_t>(p * values.size()))];
}

}  // namespace

TEST_CASE("reloads every few milliseconds while webhooks, admin calls and scrapes run",
          "[engine][stress]") {
  const auto dir = testing::fresh_test_dir("reload-stress");
  auto registry = std::make_shared<plugins::PluginRegistry>();
  registry->load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "memory.so");
  std::shared_ptr<store::Store> db = store::open_store("sqlite://" + (dir / "state.db").string());
  pipeline::Engine engine(variant(0), registry, db);
  engine.start();
  http_api::RouterContext ctx{engine, *db, kToken};
  const double pushed_before = metrics::global().counter_sum(
      "crmhost_events_total", {{"pipeline", "hooks"}, {"outcome", "pushed"}});

  std::atomic<bool> done{false};
  std::mutex acknowledged_mutex;
  std::set<std::string> acknowledged;
  std::vector<double> sync_ms, async_ms;
  std::atomic<int> refused{0}, admin_calls{0}, scrapes{0}, reloads{0}, async_hooks{0};
  std::atomic<int> sdk_checked{0}, sdk_absent{0};
  // Answers that are neither right nor a clean 404, by target, with the first one's body (Catch2
  // asserts only on the test thread).
  std::mutex wrong_mutex;
  std::map<std::string, int> wrong;
  std::string first_wrong;
  const auto note_wrong = [&](const std::string &target, const net::HttpResponse &answer) {
    std::lock_guard lock(wrong_mutex);
    if (wrong.empty())
      first_wrong = target + ": " + std::to_string(answer.status) + " " + answer.body;
    ++wrong[target];
  };

  // Sender 1 goes through route(), sender 2 through route_async: ingest_webhook_async answers
  // once the delivery's events are committed, without holding a thread meanwhile.
  auto sender = [&](int id, bool async) {
    for (int i = 0; !done; ++i) {
      const std::string record = "r" + std::to_string(id) + "-" + std::to_string(i);
      const auto delivery = request("POST", "/hooks/memory",
                                    R"([{"object":"contact","id":")" + record +
                                        R"(","data":{"email":")" + record + R"(@example.com"}}])");
      const auto start = std::chrono::steady_clock::now();
      net::HttpResponse answer;
      if (async) {
        std::promise<net::HttpResponse> answered;
        auto future = answered.get_future();
        http_api::route_async(delivery, ctx, [&answered](net::HttpResponse response) {
          answered.set_value(std::move(response));  // a second answer would throw here
        });
        answer = future.get();
        ++async_hooks;
      } else {
        answer = http_api::route(delivery, ctx);
      }
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      std::lock_guard lock(acknowledged_mutex);
      (async ? async_ms : sync_ms).push_back(ms);
      if (answer.status == 200)
        acknowledged.insert(record);
      else
        ++refused;
    }
  };
  auto admin_caller = [&] {
    while (!done) {
      // Real admin routes (kAdminRoutes), each always there: 200 every time.
      for (const char *target :
           {"/pipelines", "/health/dst", "/pipelines/hooks", "/events?pipeline=hooks&limit=5"}) {
        const auto answer = http_api::route(request("GET", target), ctx);
        ++admin_calls;
        if (answer.status != 200) note_wrong(target, answer);
      }
      // The connection a reload adds and the next removes: its check may run on a connector the
      // reload erases meanwhile (the call keeps it alive). Present: 200 and its answer; absent:
      // 404; nothing else.
      const auto sdk = http_api::route(request("GET", "/health/sdk"), ctx);
      ++admin_calls;
      if (sdk.status == 200 &&
          sdk.body.find(R"("connection":"sdk","ok":true)") != std::string::npos)
        ++sdk_checked;
      else if (sdk.status == 404 && sdk.body.find("no connection named sdk") != std::string::npos)
        ++sdk_absent;
      else
        note_wrong("/health/sdk", sdk);
      std::this_thread::sleep_for(1ms);  // pacing, not synchronisation
    }
  };
  auto scraper = [&] {
    while (!done) {
      if (http_api::route(request("GET", "/metrics"), ctx).status == 200) ++scrapes;
      std::this_thread::sleep_for(2ms);
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(sender, 1, false);
  threads.emplace_back(sender, 2, true);
  threads.emplace_back(admin_caller);
  threads.emplace_back(scraper);

  // 3 s, and at least 90 reloads however slow the machine: the plugin comes at the 40th, and the
  // sdk connection is added and removed some 16 times after it.
  const auto until = std::chrono::steady_clock::now() + 3s;
  for (int i = 0; i < 90 || std::chrono::steady_clock::now() < until; ++i) {
    if (i == 40)  // a plugin dropped into the plugin directory, loaded on the control thread
      engine.post_control([&] {
        registry->load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "memory-sdk.so");
      });
    // Unchanged, then the webhook pipeline changed (restarted), then (once the new plugin is
    // there) a connection and pipeline added on it.
    const int which = i % 3 == 2 && i > 40 ? 2 : i % 3 == 1 ? 1 : 0;
    const auto problems = engine.reload(variant(which));
    CHECK(problems.empty());
    ++reloads;
    std::this_thread::sleep_for(5ms);
  }
  done = true;
  for (auto &t : threads) t.join();

  REQUIRE(!acknowledged.empty());
  CHECK(refused == 0);  // a reload never turns a good delivery away
  CHECK(async_hooks > 0);
  CHECK(admin_calls > 0);
  CHECK(scrapes > 0);
  {
    INFO("first wrong admin answer: " << first_wrong);
    CHECK(wrong.empty());  // every admin call answered 200, or 404 for the absent connection
  }
  // Once more, deterministically: with the sdk connection its check answers, without it 404.
  REQUIRE(engine.reload(variant(2)).empty());
  const auto present = http_api::route(request("GET", "/health/sdk"), ctx);
  CHECK(present.status == 200);
  CHECK_THAT(present.body, Catch::Contains(R"("connection":"sdk","ok":true)"));
  REQUIRE(engine.reload(variant(0)).empty());
  CHECK(http_api::route(request("GET", "/health/sdk"), ctx).status == 404);
  CHECK(http_api::route(request("GET", "/health/dst"), ctx).status == 200);
  // Every acknowledged delivery is processed, once: a stored event per record, all done, and one
  // push each (a restarted pipeline's successor takes over what was stored meanwhile).
  const auto pushed = [&] {
    return metrics::global().counter_sum("crmhost_events_total",
                                         {{"pipeline", "hooks"}, {"outcome", "pushed"}}) -
           pushed_before;
  };
  // A batch's outcomes are counted just after it settles in the store: wait for both.
  REQUIRE(eventually(
      [&] {
        int64_t finished = 0;
        for (const auto &c : db->count_by_status("hooks"))
          if (c.status == store::EventStatus::done) finished += c.count;
        return finished == static_cast<int64_t>(acknowledged.size()) &&
               pushed() >= static_cast<double>(acknowledged.size());
      },
      60s));
  for (const auto &c : db->count_by_status("hooks"))
    if (c.status != store::EventStatus::done) CHECK(c.count == 0);
  CHECK(pushed() == static_cast<double>(acknowledged.size()));
  auto sink = engine.connector("dst");
  REQUIRE(sink);
  auto page = sink->poll({"contact", std::nullopt, 100000});
  REQUIRE(page);
  std::set<std::string> emails;
  for (const auto &r : page->records) emails.insert(r.data_json);
  CHECK(page->records.size() == acknowledged.size());  // no record written twice

  std::vector<double> all_ms = sync_ms;
  all_ms.insert(all_ms.end(), async_ms.begin(), async_ms.end());
  WARN("reload stress: " << reloads << " reloads, " << acknowledged.size()
                         << " webhooks acknowledged (p50 " << percentile(all_ms, 0.50)
                         << " ms, p99 " << percentile(all_ms, 0.99) << " ms, max "
                         << percentile(all_ms, 1.0) << " ms; route_async " << async_ms.size()
                         << ", p99 " << percentile(async_ms, 0.99) << " ms; route "
                         << sync_ms.size() << ", p99 " << percentile(sync_ms, 0.99) << " ms), "
                         << admin_calls << " admin calls (/health/sdk: " << sdk_checked
                         << " checked, " << sdk_absent << " absent), " << scrapes << " scrapes");
  engine.stop();
}
