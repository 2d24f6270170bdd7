#include <algorithm>

#include "plugins/plugin_registry.hpp"
#include "test_support.hpp"

using crmhost::plugins::PluginRegistry;
using crmhost::test::fixture;

namespace {

std::string refusal_for(const PluginRegistry &registry, const std::string &file) {
  for (const auto &r : registry.refusals())
    if (r.path.filename() == file) return r.to_string();
  return "";
}

}  // namespace

TEST_CASE("the loader loads the good plugins of a directory and refuses each bad one with a reason",
          "[loader]") {
  PluginRegistry registry;
  registry.load_directory(CRMHOST_FIXTURE_DIR);

  std::vector<std::string> ids;
  for (const auto &p : registry.plugins()) ids.push_back(p->id());
  std::sort(ids.begin(), ids.end());
  // crash-init is an ordinary plugin unless CRMHOST_TEST_CRASH_INIT=1 (run_process_test).
  CHECK(ids == std::vector<std::string>{"crash-init", "garbage", "memory", "memory-sdk",
                                        "memory-upkeep", "no-fetch", "old-layout", "throwing-sdk"});
  CHECK(registry.refusals().size() == 8);

  // Each refusal is one line: the file, the reason, what to do.
  CHECK_THAT(refusal_for(registry, "not-a-library.so"),
             Catch::Contains("not-a-library.so: not a loadable shared library") &&
                 Catch::Contains("invalid ELF header") && Catch::Contains("remove it"));
  CHECK_THAT(
      refusal_for(registry, "no-entry.so"),
      Catch::Contains("no crm_plugin_get_entry() entry function") && Catch::Contains("CRM_EXPORT"));
  CHECK_THAT(refusal_for(registry, "bad-major.so"),
             Catch::Contains("built for plugin ABI 2.0.0 but this host speaks ABI 1.0.0") &&
                 Catch::Contains("rebuild the plugin"));
  CHECK_THAT(refusal_for(registry, "newer-minor.so"),
             Catch::Contains("needs plugin ABI 1.7.0, newer than this host's 1.0.0") &&
                 Catch::Contains("upgrade crmhost"));
  CHECK_THAT(refusal_for(registry, "init-fails.so"),
             Catch::Contains("init failed (unauthorized): licence key missing"));
  CHECK_THAT(refusal_for(registry, "missing-check.so"),
             Catch::Contains("lacks the required function check"));
  CHECK_THAT(refusal_for(registry, "missing-push.so"),
             Catch::Contains("declares the capability \"push\"") &&
                 Catch::Contains("lacks the function push"));
  CHECK_THAT(refusal_for(registry, "zz-duplicate-memory.so"),
             Catch::Contains("plugin id 'memory' is already provided by") &&
                 Catch::Contains("memory.so; remove one"));
  for (const auto &r : registry.refusals()) CHECK(r.to_string().find('\n') == std::string::npos);
}

TEST_CASE("a missing plugin directory is reported and not fatal", "[loader]") {
  PluginRegistry registry;
  registry.load_directory("/nonexistent/crmhost/plugins");
  registry.load_file(fixture("memory"));
  REQUIRE(registry.refusals().size() == 1);
  CHECK_THAT(registry.refusals()[0].reason, Catch::Contains("does not exist"));
  CHECK(registry.refusals()[0].missing_directory);
  CHECK(registry.find("memory") != nullptr);
}

TEST_CASE("the loader reports id and versions and interfaces and objects and capabilities",
          "[loader]") {
  auto plugin = crmhost::test::load_or_fail(fixture("memory"));
  const auto &info = plugin->info();
  CHECK(info.id == "memory");
  CHECK(info.version == "1.0.0");
  CHECK(info.vendor == "crmhost examples");
  CHECK(info.built_abi == CRM_ABI_VERSION);
  CHECK(info.negotiated_abi == CRM_ABI_VERSION);
  CHECK(info.interfaces == std::vector<std::string>{"crm.connector.v1"});
  CHECK_FALSE(plugin->maintains());
  // A connector class that declares maintain() offers crm.maintenance.v1 through the SDK.
  auto upkeep = crmhost::test::load_or_fail(fixture("memory-upkeep"));
  CHECK(upkeep->info().interfaces ==
        std::vector<std::string>{"crm.connector.v1", "crm.maintenance.v1"});
  CHECK(upkeep->maintains());
  CHECK_FALSE(crmhost::test::load_or_fail(fixture("memory-sdk"))->maintains());
  CHECK(info.description.has_object("company"));
  CHECK(info.description.has_capability("webhook"));
  CHECK(info.description.max_batch == 100);
  CHECK_THAT(info.description.settings_schema_json, Catch::Contains("webhook_secret"));
}

TEST_CASE("a plugin built for an older and shorter connector table still loads and works",
          "[loader]") {
  auto plugin = crmhost::test::load_or_fail(fixture("old-layout"));
  auto connector = crmhost::test::connect(plugin, "{}");
  connector->cancel();  // lies beyond the plugin's struct_size: must be skipped, not called
  auto checked = connector->check();
  REQUIRE(checked);
  CHECK(checked->ok);
  auto page = connector->poll({"contact", std::nullopt, 10});
  REQUIRE(page);
  CHECK(page->records.size() == 1);
}

TEST_CASE("a connector keeps its plugin library loaded after the registry is gone", "[loader]") {
  std::unique_ptr<crmhost::plugins::Connector> connector;
  {
    PluginRegistry registry;
    registry.load_file(fixture("memory-sdk"));
    REQUIRE(registry.plugins().size() == 1);
    connector = crmhost::test::connect(registry.find("memory-sdk"),
                                       R"({"webhook_secret":"s3cret-s3cret"})");
  }
  // The registry and its shared_ptr are gone; calling into the code must still be safe.
  auto checked = connector->check();
  REQUIRE(checked);
  CHECK(checked->ok);
  CHECK(connector->plugin().id() == "memory-sdk");
}
