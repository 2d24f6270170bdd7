#pragma once
// Loading a provider plugin (hubspot.so, odoo.so) into a test host: a fake clock, in-memory state
// and, for the sandbox tests, the host's real HTTP client behind crm.http.v1.
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "plugins/connector.hpp"
#include "plugins/plugin_library.hpp"

namespace crmhost::test {

struct LoadedPlugin {
  std::shared_ptr<std::atomic<int64_t>> now = std::make_shared<std::atomic<int64_t>>(0);
  std::shared_ptr<plugins::HostServices> services = std::make_shared<plugins::HostServices>();
  std::shared_ptr<plugins::PluginLibrary> library;
  std::string default_connection;

  // `id` names <id>.so in the build's plugin directory and the default connection name. A `now`
  // of 0 keeps the system clock; anything else freezes the host clock there.
  LoadedPlugin(const std::string &id, std::shared_ptr<plugins::OutboundHttp> http)
      : default_connection(id) {
    auto clock = now;
    services->clock = [clock] {
      const int64_t fixed = clock->load();
      return fixed ? fixed
                   : std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    };
    services->http = std::move(http);
    auto loaded = plugins::load_plugin(
        std::filesystem::path(CRMHOST_PLUGIN_OUTPUT_DIR) / (id + ".so"), services);
    if (auto *refusal = std::get_if<plugins::LoadRefusal>(&loaded)) FAIL(refusal->to_string());
    library = std::get<std::shared_ptr<plugins::PluginLibrary>>(loaded);
  }

  std::unique_ptr<plugins::Connector> connect(const std::string &settings,
                                              const std::string &connection = "") {
    auto created =
        library->create_connector(connection.empty() ? default_connection : connection, settings);
    if (!created) FAIL("create failed: " << created.error().describe());
    return std::move(created.value());
  }
};

struct LoadedHubSpot : LoadedPlugin {
  explicit LoadedHubSpot(std::shared_ptr<plugins::OutboundHttp> http = nullptr)
      : LoadedPlugin("hubspot", std::move(http)) {}
};

struct LoadedOdoo : LoadedPlugin {
  explicit LoadedOdoo(std::shared_ptr<plugins::OutboundHttp> http = nullptr)
      : LoadedPlugin("odoo", std::move(http)) {}
};

}  // namespace crmhost::test
