// `crmhost backfill` on a provider pipeline, against the HubSpot and Odoo sandboxes, from either
// side: the CLI gives the plugin the host's HTTP client (it failed with "no crm.http.v1
// extension"), and its dry run takes the processor's own decision on the mapped record (an
// unchanged record mapped through a map was counted as "would update"; a record whose mapped
// fields changed since its push is one, a change to a field the map does not copy is not).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

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

// Reading Odoo (a poll source, or the first-contact plan reading the sink) keeps state (its
// snapshots of ids, for deletions) in the store, encrypted with this key (a fixed one, for tests
// only). Set before any thread of the test runs.
void use_secret_key() {
  ::setenv("CRMHOST_SECRET_KEY", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
           1);
}

std::filesystem::path fresh_dir(const std::string &name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("crmhost-cli-backfill-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The connections of both sandboxes, with the secrets in files of `dir`.
std::string connections_yaml(const std::filesystem::path &dir,
                             const crmsandbox::HubSpotSandbox &hubspot,
                             const crmsandbox::OdooSandbox &odoo) {
  std::ofstream(dir / "token") << kToken;
  std::ofstream(dir / "key") << kOdooKey;
  std::ostringstream yaml;
  yaml << "store: \"sqlite://" << (dir / "state.db").string() << "\"\n"
       << "plugin_dir: " << CRMHOST_PLUGIN_OUTPUT_DIR << "\n"
       << "connections:\n"
       << "  hubspot:\n    plugin: hubspot\n    settings:\n"
       << "      base_url: \"" << hubspot.base_url() << "\"\n"
       << "      auth: { token: \"${file:token}\" }\n"
       << "  odoo:\n    plugin: odoo\n    settings:\n"
       << "      url: \"" << odoo.base_url() << "\"\n"
       << "      database: " << kDb << "\n      login: admin\n"
       << "      api_key: \"${file:key}\"\n";
  return yaml.str();
}

crmsandbox::HubSpotOptions unlimited_hubspot() {
  crmsandbox::HubSpotOptions options;
  options.rate_limits.per_window = 1'000'000;
  options.rate_limits.search_per_second = 1'000'000;
  return options;
}

// Runs the service on `config` until `pipeline` has settled `n` events as done (what the
// backfill queued), as `crmhost run` would; the count it reached.
int64_t process_queued(const std::string &config, const std::string &pipeline, int64_t n) {
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
  while (std::chrono::steady_clock::now() < deadline && done < n) {
    done = 0;
    for (const auto &c : db->count_by_status(pipeline))
      if (c.status == crmhost::store::EventStatus::done) done += c.count;
    if (done < n) std::this_thread::sleep_for(50ms);  // looks again; the deadline bounds it
  }
  engine.stop();
  return done;
}

// Both sandboxes started, and a fresh folder for the configuration; stopped and removed after.
struct Sandboxes {
  std::filesystem::path dir;
  crmsandbox::HubSpotSandbox hubspot{unlimited_hubspot()};
  crmsandbox::OdooSandbox odoo;

  explicit Sandboxes(const std::string &name) : dir(fresh_dir(name)) {
    use_secret_key();
    hubspot.add_token(kToken, kPortal);
    hubspot.start();
    odoo.add_user(kDb, {"admin", "admin-password", {kOdooKey}});
    odoo.start();
  }
  ~Sandboxes() {
    hubspot.stop();
    odoo.stop();
    std::filesystem::remove_all(dir);
  }
};

}  // namespace

TEST_CASE("crmhost backfill reaches providers, and its dry run judges the mapped record") {
  Sandboxes both("hubspot");
  auto &[dir, hubspot, odoo] = both;
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i)
    ids.push_back(hubspot
                      .seed(kPortal, "contacts",
                            {{{{"email", " Person" + std::to_string(i) + "@Example.com"},
                               {"firstname", "P" + std::to_string(i)}}}})
                      .at(0));
  const auto config = (dir / "crmhost.yaml").string();
  std::ofstream(config)
      << connections_yaml(dir, hubspot, odoo) << "pipelines:\n"
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

  REQUIRE(process_queued(config, "to-odoo", 6) >= 6);  // the service pushes what was queued
  CHECK(odoo.count(kDb, "res.partner") == 6);

  std::tie(code, text) = cli({"backfill", "to-odoo", "--dry-run", "--config", config});
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains("6 records read; would create 0, update 0, delete 0; 6 "
                                   "unchanged"));

  // After the sync: a field the map copies changes on one record, one it does not copy on
  // another (the raw record differs, the mapped one does not).
  REQUIRE(hubspot.update_record(kPortal, "contacts", ids[0], {{"firstname", "Renamed"}}));
  REQUIRE(hubspot.update_record(kPortal, "contacts", ids[1], {{"lastname", "Unmapped"}}));
  std::tie(code, text) = cli({"backfill", "to-odoo", "--dry-run", "--config", config});
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains("6 records read; would create 0, update 1, delete 0; 5 "
                                   "unchanged; nothing was queued or pushed"));
}

TEST_CASE("crmhost backfill from Odoo into HubSpot: counts, records pushed, and dry-run updates") {
  Sandboxes both("odoo");
  auto &[dir, hubspot, odoo] = both;
  std::vector<crmsandbox::OdooValues> partners;
  for (int i = 0; i < 5; ++i)
    partners.push_back({{"name", "Ann" + std::to_string(i) + " Smith"},
                        {"email", " Ann" + std::to_string(i) + "@Example.com "},
                        {"city", std::string("Ghent")},
                        {"is_company", false}});
  const auto ids = odoo.seed(kDb, "res.partner", partners);
  REQUIRE(ids.size() == 5);
  const auto config = (dir / "crmhost.yaml").string();
  std::ofstream(config)
      << connections_yaml(dir, hubspot, odoo) << "pipelines:\n"
      << "  to-hubspot:\n"
      << "    source: { poll: { connection: odoo, object: contact, every: 1h } }\n"
      << "    map:\n      fields:\n"
      << "        email: { from: email, transform: [trim, lower], required: true }\n"
      << "        firstname: { from: _first_name, transform: [trim] }\n"
      << "        lastname: { from: _last_name, transform: [trim] }\n"
      << "    sink: { push: { connection: hubspot, object: contact, match_on: email } }\n";

  auto [code, text] = cli({"backfill", "to-hubspot", "--dry-run", "--config", config});
  INFO(text);
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains("dry run: 5 records read; would create 5, update 0, delete 0; "
                                   "0 unchanged; nothing was queued or pushed"));
  CHECK(hubspot.count(kPortal, "contacts") == 0);  // a dry run writes nothing

  std::tie(code, text) = cli({"backfill", "to-hubspot", "--config", config});
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains(": 5 queued, 0 already queued"));
  // Again: the same records are the same events.
  std::tie(code, text) = cli({"backfill", "to-hubspot", "--config", config});
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains(": 0 queued, 5 already queued"));

  REQUIRE(process_queued(config, "to-hubspot", 5) >= 5);
  const auto pushed = hubspot.records(kPortal, "contacts");
  REQUIRE(pushed.size() == 5);
  std::set<std::string> emails;
  for (const auto &r : pushed) {
    const auto email = r.properties.at("email");
    emails.insert(email);
    const auto n = email.substr(3, 1);  // ann<n>@example.com
    CHECK(r.properties.at("firstname") == "Ann" + n);
    CHECK(r.properties.at("lastname") == "Smith");
  }
  CHECK(emails == std::set<std::string>{"ann0@example.com", "ann1@example.com", "ann2@example.com",
                                        "ann3@example.com", "ann4@example.com"});

  std::tie(code, text) = cli({"backfill", "to-hubspot", "--dry-run", "--config", config});
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains("5 records read; would create 0, update 0, delete 0; 5 "
                                   "unchanged"));

  // A mapped field changed after the sync on one partner (the name gives firstname), a field
  // the map does not copy (city) on another.
  odoo.write(kDb, "res.partner", {ids[0]}, {{"name", std::string("Annie Smith")}});
  odoo.write(kDb, "res.partner", {ids[1]}, {{"city", std::string("Bruges")}});
  std::tie(code, text) = cli({"backfill", "to-hubspot", "--dry-run", "--config", config});
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains("5 records read; would create 0, update 1, delete 0; 4 "
                                   "unchanged; nothing was queued or pushed"));
  for (const auto &r : hubspot.records(kPortal, "contacts"))
    CHECK(r.properties.at("firstname") != "Annie");  // still a dry run: nothing pushed
}

// Two CRMs both in use before the sync: the dry run of either direction of a two-way pipeline
// prints the first-contact plan, read from both sandboxes and matched on the normalised email
// (case and surrounding spaces differ between the sides), and writes nothing.
TEST_CASE("crmhost backfill --dry-run plans the first contact of two populated sandboxes") {
  Sandboxes both("first-contact");
  auto &[dir, hubspot, odoo] = both;
  auto contact = [](const std::string &email, const std::string &first, const std::string &last,
                    const std::string &city) {
    return crmsandbox::HubSpotSeed{
        {{"email", email}, {"firstname", first}, {"lastname", last}, {"city", city}}};
  };
  auto partner = [](const std::string &email, const std::string &name, const std::string &city) {
    return crmsandbox::OdooValues{
        {"email", email}, {"name", name}, {"city", city}, {"is_company", false}};
  };
  // On both sides: ann and bob with equal values (the keys differ in case and spaces), cy with
  // another city. HubSpot alone: dee and eve. Odoo alone: fay.
  hubspot.seed(kPortal, "contacts",
               {contact("ann@example.com", "Ann", "Smith", "Ghent"),
                contact("Bob@Example.com", "Bob", "Jones", "Ghent"),
                contact("cy@example.com", "Cy", "Young", "Ghent"),
                contact("dee@example.com", "Dee", "Only", "Liege"),
                contact("eve@example.com", "Eve", "Only", "Namur")});
  odoo.seed(kDb, "res.partner",
            {partner("ANN@example.com", "Ann Smith", "Ghent"),
             partner(" bob@example.com ", "Bob Jones", "Ghent"),
             partner("Cy@Example.com", "Cy Young", "Antwerp"),
             partner("fay@example.com", "Fay Only", "Bruges")});
  const auto config = (dir / "crmhost.yaml").string();
  std::ofstream(config)
      << connections_yaml(dir, hubspot, odoo) << "pipelines:\n"
      << "  to-odoo:\n"
      << "    source: { poll: { connection: hubspot, object: contact, every: 1h } }\n"
      << "    map:\n      fields:\n"
      << "        email: { from: email, transform: [trim, lower], required: true }\n"
      << "        _first_name: { from: firstname, transform: [trim] }\n"
      << "        _last_name: { from: lastname, transform: [trim] }\n"
      << "        city: city\n"
      << "    sink: { push: { connection: odoo, object: contact, match_on: email, "
         "conflict: newest_wins } }\n"
      << "  to-hubspot:\n"
      << "    source: { poll: { connection: odoo, object: contact, every: 1h } }\n"
      << "    map:\n      fields:\n"
      << "        email: { from: email, transform: [trim, lower], required: true }\n"
      << "        firstname: { from: _first_name, transform: [trim] }\n"
      << "        lastname: { from: _last_name, transform: [trim] }\n"
      << "        city: city\n"
      << "    sink: { push: { connection: hubspot, object: contact, match_on: email, "
         "conflict: newest_wins } }\n";

  auto [code, text] = cli({"backfill", "to-odoo", "--dry-run", "--config", config});
  INFO(text);
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains("\nfirst contact: read 5 in hubspot and 4 in odoo; would link "
                                   "3 on email (1 with differing values: conflicts, decided by "
                                   "newest_wins), create 2 in odoo and 1 in hubspot; conflicts "
                                   "such as [cy@example.com: city]\n"));
  CHECK_THAT(text, Catch::Contains("; nothing was queued or pushed"));

  std::tie(code, text) = cli({"backfill", "to-hubspot", "--dry-run", "--config", config});
  INFO(text);
  REQUIRE(code == 0);
  CHECK_THAT(text, Catch::Contains("\nfirst contact: read 4 in odoo and 5 in hubspot; would link "
                                   "3 on email (1 with differing values: conflicts, decided by "
                                   "newest_wins), create 1 in hubspot and 2 in odoo; conflicts "
                                   "such as [cy@example.com: city]\n"));
  CHECK_THAT(text, Catch::Contains("; nothing was queued or pushed"));

  // Planned, not done: neither side holds a record more, nor a changed one.
  CHECK(hubspot.count(kPortal, "contacts") == 5);
  CHECK(odoo.count(kDb, "res.partner") == 4);
  std::vector<std::string> cities;  // Cy's, Odoo's then HubSpot's
  for (const auto &r : odoo.records(kDb, "res.partner"))
    if (std::get<std::string>(r.values.at("email")) == "Cy@Example.com")
      cities.push_back(std::get<std::string>(r.values.at("city")));
  for (const auto &r : hubspot.records(kPortal, "contacts"))
    if (r.properties.at("email") == "cy@example.com") cities.push_back(r.properties.at("city"));
  CHECK(cities == std::vector<std::string>{"Antwerp", "Ghent"});
}
