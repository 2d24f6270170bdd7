#pragma once
// Paths and helpers shared by the unit tests.
#include <filesystem>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "plugins/connector.hpp"
#include "plugins/plugin_library.hpp"

namespace crmhost::test {

inline std::filesystem::path fixture(const std::string &name) {
  return std::filesystem::path(CRMHOST_FIXTURE_DIR) / (name + ".so");
}

inline std::shared_ptr<plugins::PluginLibrary> load_or_fail(const std::filesystem::path &file) {
  auto result = plugins::load_plugin(file, std::make_shared<plugins::HostServices>());
  if (auto *refusal = std::get_if<plugins::LoadRefusal>(&result)) FAIL(refusal->to_string());
  return std::get<std::shared_ptr<plugins::PluginLibrary>>(result);
}

inline std::unique_ptr<plugins::Connector> connect(const std::shared_ptr<plugins::PluginLibrary> &p,
                                                   const std::string &settings) {
  auto created = p->create_connector("test-connection", settings);
  if (!created) FAIL("create failed: " << created.error().describe());
  return std::move(created.value());
}

}  // namespace crmhost::test
