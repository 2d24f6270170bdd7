#pragma once
// Loading odoo.so into a test host: a fake clock, in-memory state and, for the sandbox tests,
// the host's real HTTP client behind crm.http.v1.
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "plugins/connector.hpp"
#include "plugins/plugin_library.hpp"

namespace crmhost::test {

struct LoadedOdoo {
  std::shared_ptr<std::atomic<int64_t>> now = std::make_shared<std::atomic<int64_t>>(0);
  std::shared_ptr<plugins::HostServices> services = std::make_shared<plugins::HostServices>();
  std::shared_ptr<plugins::PluginLibrary> library;

  // now_ms 0 keeps the system clock; anything else freezes the host clock there.
  explicit LoadedOdoo(std::shared_ptr<plugins::OutboundHttp> http = nullptr) {
    auto clock = now;
    services->clock = [clock] {
      const int64_t fixed = clock->load();
      return fixed ? fixed
                   : std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    };
    services->http = std::move(http);
    auto loaded = plugins::load_plugin(std::filesystem::path(CRMHOST_PLUGIN_OUTPUT_DIR) / "odoo.so",
                                       services);
    if (auto *refusal = std::get_if<plugins::LoadRefusal>(&loaded)) FAIL(refusal->to_string());
    library = std::get<std::shared_ptr<plugins::PluginLibrary>>(loaded);
  }

  std::unique_ptr<plugins::Connector> connect(const std::string &settings,
                                              const std::string &connection = "odoo") {
    auto created = library->create_connector(connection, settings);
    if (!created) FAIL("create failed: " << created.error().describe());
    return std::move(created.value());
  }
};

}  // namespace crmhost::test
