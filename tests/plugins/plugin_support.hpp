#pragma once
// Loading a provider plugin (hubspot.so, odoo.so) into a test host: a fake clock, in-memory state
// and, for the sandbox tests, the host's real HTTP client behind crm.http.v1.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <unistd.h>

#include <catch2/catch.hpp>

#include "config/config.hpp"
#include "mapping/mapping.hpp"
#include "plugins/connector.hpp"
#include "plugins/plugin_library.hpp"
#include "plugins/plugin_registry.hpp"

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

// Loads, through config::load and the built plugins, one pipeline of connection `c` (given as a
// YAML flow mapping, e.g. "{ plugin: hubspot, settings: {...} }") whose map names `preset`.
inline config::LoadResult load_preset_pipeline(const std::string &connection,
                                               const std::string &preset,
                                               const std::string &object) {
  plugins::PluginRegistry registry;
  registry.load_directory(CRMHOST_PLUGIN_OUTPUT_DIR);
  // One directory per process: ctest runs the cases of a file in parallel.
  const auto dir =
      std::filesystem::temp_directory_path() / ("preset-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "c.yaml";
  std::ofstream(file) << "connections:\n  c: " << connection
                      << "\npipelines:\n  p:\n    source: { poll: { connection: c, object: "
                      << object << " } }\n    sink: { push: { connection: c, object: " << object
                      << " } }\n    map: { preset: " << preset << " }\n";
  auto result = config::load({file.string()}, &registry);
  std::filesystem::remove_all(dir);
  return result;
}

// Maps `record` through the fields such a pipeline compiled; the mapped JSON.
inline std::string apply_preset(const config::LoadResult &loaded, const std::string &record) {
  for (const auto &p : loaded.problems) UNSCOPED_INFO(p.to_string());
  REQUIRE(loaded.problems.empty());
  std::vector<mapping::CompileProblem> problems;
  auto compiled =
      mapping::Mapping::compile(loaded.config->pipelines.at("p").map.fields_json, {}, problems);
  REQUIRE(problems.empty());
  auto mapped = compiled.apply(record);
  INFO(mapped.error);
  REQUIRE(mapped.ok);
  return mapped.json;
}

}  // namespace crmhost::test
