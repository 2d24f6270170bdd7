// A flood of one kind of log line (a bad signature per delivery) is cut to a few lines a window,
// and the next line that passes says how many were left out.
#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include <unistd.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>

#include "http_api/router.hpp"
#include "pipeline/engine.hpp"
#include "plugins/host_services.hpp"
#include "plugins/plugin_registry.hpp"
#include "store/store.hpp"
#include "util/log_throttle.hpp"

using crmhost::logging::LogThrottle;

TEST_CASE("the log throttle admits a burst per key and window, then counts the rest", "[log]") {
  LogThrottle throttle(3, std::chrono::milliseconds(200));
  int admitted = 0;
  for (int i = 0; i < 100; ++i)
    if (throttle.admit("/hooks/x 401")) ++admitted;
  CHECK(admitted == 3);
  CHECK(throttle.admit("/hooks/y 401") == std::string());  // another key has its own budget
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  const auto next = throttle.admit("/hooks/x 401");
  REQUIRE(next);
  CHECK(*next == " (97 similar line(s) suppressed)");
  CHECK(throttle.admit("/hooks/x 401") == std::string());  // the count was said once
}

TEST_CASE("the throttle's table of keys stays bounded whatever the keys", "[log]") {
  LogThrottle throttle(1, std::chrono::seconds(60), 16);
  for (int i = 0; i < 10'000; ++i) CHECK(throttle.admit("key-" + std::to_string(i)));
}

TEST_CASE("a plugin that logs a warning per call gets a few lines per window", "[log]") {
  std::ostringstream captured;
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(captured));
  spdlog::set_default_logger(logger);
  crmhost::plugins::PluginHostContext context;
  context.plugin_id = "noisy";
  const auto api = crmhost::plugins::make_host_api(&context, CRM_ABI_VERSION);
  const std::string line = "webhook refused: the v3 signature does not match";
  for (int i = 0; i < 1000; ++i)
    api.log(&api, nullptr, CRM_LOG_WARN, crm_str{line.data(), line.size()});
  spdlog::set_default_logger(previous);
  const std::string text = captured.str();
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  CHECK(lines == 20);
}

namespace {

// The default logger replaced by one writing to a string while it lives.
struct CapturedLog {
  std::ostringstream text;
  std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  CapturedLog() {
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(text)));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous); }
  size_t lines_containing(const std::string &needle) const {
    std::istringstream in(text.str());
    size_t n = 0;
    for (std::string line; std::getline(in, line);) n += line.find(needle) != std::string::npos;
    return n;
  }
};

}  // namespace

TEST_CASE("a flood of badly signed webhooks logs a few refusals per 10 s, not one each", "[log]") {
  namespace fs = std::filesystem;
  using namespace crmhost;
  const fs::path dir =
      fs::temp_directory_path() / ("crmhost-refusal-log-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto registry = std::make_shared<plugins::PluginRegistry>();
  registry->load_file(fs::path(CRMHOST_FIXTURE_DIR) / "memory.so");
  REQUIRE(registry->find("memory"));
  std::shared_ptr<store::Store> db = store::open_store("sqlite://" + (dir / "state.db").string());
  config::Config c;
  for (const char *name : {"src", "dst"}) {
    config::ConnectionConfig connection;
    connection.name = name;
    connection.plugin = "memory";
    connection.settings_json = R"({"webhook_secret":"s3cret-s3cret"})";
    c.connections[name] = connection;
  }
  config::PipelineConfig p;
  p.name = "contacts";
  // A path of this test alone: the router's throttle is one for the process, keyed by path.
  p.webhook = config::WebhookSource{"src", "/hooks/refusal-flood", {}, {}};
  p.sink.connection = "dst";
  p.sink.object = "contact";
  p.sink.match_on = "email";
  c.pipelines = {{p.name, p}};
  {
    pipeline::Engine engine(c, registry, db);
    engine.start();
    http_api::RouterContext ctx{engine, *db, "an-admin-token-of-32-characters!"};
    net::HttpRequest bad;
    bad.method = "POST";
    bad.target = bad.path = "/hooks/refusal-flood";
    bad.headers = {{"X-Memory-Secret", "not-the-secret"}};
    bad.body = R"([{"object":"contact","id":"a1","data":{"email":"ann@example.com"}}])";
    bad.request_id = "req-flood";

    const int kDeliveries = 200;
    int refused = 0;
    size_t lines = 0;
    std::chrono::steady_clock::duration took{};
    {
      CapturedLog log;
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < kDeliveries; ++i) refused += http_api::route(bad, ctx).status == 401;
      took = std::chrono::steady_clock::now() - start;
      lines = log.lines_containing("POST /hooks/refusal-flood: 401");
      INFO(log.text.str());
      // Nothing else warns per delivery either (the plugin's own lines have a throttle too).
      CHECK(log.lines_containing("[warning]") <= lines + 20);
    }
    engine.stop();
    CHECK(refused == kDeliveries);
    // 5 lines per path and status per 10 s; the window opens at the first refusal, so a run
    // slower than 10 s may see another window's lines.
    const auto windows = 1 + took / std::chrono::seconds(10);
    CHECK(lines >= 1);
    CHECK(lines <= static_cast<size_t>(5 * windows));
    CHECK(lines < static_cast<size_t>(kDeliveries));
  }
  db.reset();
  fs::remove_all(dir);
}
