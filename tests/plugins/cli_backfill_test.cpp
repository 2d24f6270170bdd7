// `crmhost backfill` on a provider pipeline, against the HubSpot and Odoo sandboxes: the CLI gives
// the plugin the host's HTTP client (it failed with "no crm.http.v1 extension"), and its dry run
// takes the processor's own decision on the mapped record (an unchanged record mapped through a
// map was counted as "would update").
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>
#include <catch2/catch.hpp>

#include "cli/cli.hpp"
#include "config/config.hpp"
#include "net/http_client.hpp"
#include "pipeline/engine.hpp"
#include "pipeline/store_state.hpp"
#include "plugins/plugin_registry.hpp"
#include "sandbox/hubspot.hpp"
#include "sandbox/odoo.hpp"
#include "store/store.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int64_t kPortal = 301;
constexpr const char *kToken = "pat-cli-backfill";
constexpr const char *kDb = "crm";
constexpr const char *kOdooKey = "odoo-cli-backfill-key";

std::pair<int, std::string> cli(const std::vector<std::string> &args) {
  std::ostringstream out, err;
  const int code = crmhost::cli::run(args, out, err);
  return {code, out.str() + err.str()};
}

}  // namespace

TEST_CASE("crmhost backfill reaches providers, and its dry run judges the mapped record") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("crmhost-cli-backfill-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  crmsandbox::HubSpotOptions hubspot_options;
  hubspot_options.rate_limits.per_window = 1'000'000;
  hubspot_options.rate_limits.search_per_second = 1'000'000;
  crmsandbox::HubSpotSandbox hubspot(hubspot_options);
  hubspot.add_token(kToken, kPortal);
  hubspot.start();
  crmsandbox::OdooSandbox odoo;
  odoo.add_user(kDb, {"admin", "admin-password", {kOdooKey}});
  odoo.start();
  for (int i = 0; i < 6; ++i)
    hubspot.seed(kPortal, "contacts",
                 {{{{"email", " Person" + std::to_string(i) + "@Example.com"},
                    {"firstname", "P" + std::to_string(i)}}}});
  std::ofstream(dir / "token") << kToken;
  std::ofstream(dir / "key") << kOdooKey;
  const auto config = (dir / "crmhost.yaml").string();
  std::ofstream(config)
      << "store: \"sqlite://" << (dir / "state.db").string() << "\"\n"
      << "plugin_dir: " << CRMHOST_PLUGIN_OUTPUT_DIR << "\n"
      << "connections:\n"
      << "  hubspot:\n    plugin: hubspot\n    settings:\n"
      << "      base_url: \"" << hubspot.base_url() << "\"\n"
      << "      auth: { token: \"${file:token}\" }\n"
      << "  odoo:\n    plugin: odoo\n    settings:\n"
      << "      url: \"" << odoo.base_url() << "\"\n"
      << "      database: " << kDb << "\n      login: admin\n"
      << "      api_key: \"${file:key}\"\n"
      << "pipelines:\n"
      << "  to-odoo:\n"
      << "    source: { poll: { connection: hubspot, object: contact, every: 1h } }\n"
      // The map changes what it copies (trim, lower): the mapped record's hash is not the raw
      // record's, which is what the dry run used to compare.
      << "    map:\n      fields:\n"
      << "        email: { from: email, transform: [trim, lower], required: true }\n"
      << "        name: { from: firstname, transform: [trim] }\n"
      << "    sink: { push: { connection: odoo, object: contact, match_on: email } }\n";

  auto [code, text] = cli({"backfill", "to-odoo", "--dry-run", "--config", config});
  INFO(text);
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains("6 records read; would create 6, update 0, delete 0; 0 "
                                   "unchanged; nothing was queued or pushed"));

  std::tie(code, text) = cli({"backfill", "to-odoo", "--config", config});
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains(": 6 queued, 0 already queued"));

  {
    // The service processes what the backfill queued.
    auto services = std::make_shared<crmhost::plugins::HostServices>();
    services->http = std::make_shared<crmhost::net::HttpClient>();
    auto registry = std::make_shared<crmhost::plugins::PluginRegistry>(services);
    registry->load_directory(CRMHOST_PLUGIN_OUTPUT_DIR);
    auto loaded = crmhost::config::load({config}, registry.get());
    REQUIRE(loaded.config);
    std::shared_ptr<crmhost::store::Store> db = crmhost::store::open_store(loaded.config->store);
    services->state = std::make_shared<crmhost::pipeline::StoreStateBackend>(db);
    crmhost::pipeline::Engine engine(*loaded.config, registry, db);
    engine.start();
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    int64_t done = 0;
    while (std::chrono::steady_clock::now() < deadline && done < 6) {
      done = 0;
      for (const auto &c : db->count_by_status("to-odoo"))
        if (c.status == crmhost::store::EventStatus::done) done += c.count;
      std::this_thread::sleep_for(50ms);
    }
    engine.stop();
    REQUIRE(done >= 6);
  }

  std::tie(code, text) = cli({"backfill", "to-odoo", "--dry-run", "--config", config});
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains("6 records read; would create 0, update 0, delete 0; 6 "
                                   "unchanged"));
  hubspot.stop();
  odoo.stop();
  std::filesystem::remove_all(dir);
}
