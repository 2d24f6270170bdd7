// A flood of one kind of log line (a bad signature per delivery) is cut to a few lines a window,
// and the next line that passes says how many were left out.
#include <sstream>
#include <thread>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>

#include "plugins/host_services.hpp"
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
