// Opening: URIs, redaction, migrations and version checks, and errors when the database is gone.
#include <catch2/catch.hpp>

#include <fstream>
#include <pqxx/pqxx>
#include <thread>

#include "store/secret_box.hpp"
#include "store_test_support.hpp"

using namespace crmhost::store;
using namespace crmhost::store::test;
using namespace std::chrono_literals;

TEST_CASE("redact_uri never shows a password", "[uri]") {
  CHECK(redact_uri("postgresql://crm:s3cret@db.example.com:5432/crm") ==
        "postgresql://crm:***@db.example.com:5432/crm");
  CHECK(redact_uri("postgres://crm@db/crm?sslmode=require&password=s3cret&x=1") ==
        "postgres://crm@db/crm?sslmode=require&password=***&x=1");
  CHECK(redact_uri("postgresql://crm:pa/ss@word@db/crm") == "postgresql://crm:***@db/crm");
  CHECK(redact_uri("host=db user=crm password=s3cret dbname=crm") ==
        "host=db user=crm password=*** dbname=crm");
  CHECK(redact_uri("crm:s3cret@db") == "crm:***@db");
  CHECK(redact_uri("postgresql://db.example.com/crm") == "postgresql://db.example.com/crm");
  CHECK(redact_uri("sqlite:///var/lib/crmhost/state.db") == "sqlite:///var/lib/crmhost/state.db");
}

TEST_CASE("bad URIs and unreachable databases fail with a clear message and no password", "[uri]") {
  try {
    open_store("mysql://root:s3cret@localhost/crm");
    FAIL("mysql accepted");
  } catch (const StoreError &e) {
    CHECK(e.kind() == StoreError::Kind::invalid_argument);
    CHECK_THAT(e.what(), Catch::Contains("unsupported store URI") && Catch::Contains("sqlite://") &&
                             !Catch::Contains("s3cret"));
  }
  CHECK_THROWS_WITH(open_store("sqlite://"), Catch::Contains("names no database file"));
  CHECK_THROWS_AS(open_store("sqlite:///proc/no-such-dir/state.db"), StoreError);

  try {
    // Port 1 on loopback: connection refused at once.
    open_store("postgresql://crm:s3cret@127.0.0.1:1/crm");
    FAIL("unreachable database accepted");
  } catch (const StoreError &e) {
    CHECK(e.retryable());
    CHECK_THAT(e.what(), Catch::Contains("cannot connect to PostgreSQL at "
                                         "postgresql://crm:***@127.0.0.1:1/crm") &&
                             !Catch::Contains("s3cret"));
  }
}

TEST_CASE("a PostgreSQL password file is used but never shown", "[uri]") {
  const auto file = std::filesystem::temp_directory_path() / ("crmhost-pw-" + random_hex(4));
  {
    std::ofstream out(file);
    out << "pa&ss w0rd\n";
  }
  StoreOptions o;
  o.pg_password_file = file;
  try {
    open_store("postgresql://crm@127.0.0.1:1/crm", o);
    FAIL("unreachable database accepted");
  } catch (const StoreError &e) {
    CHECK(e.retryable());
    CHECK_THAT(e.what(), !Catch::Contains("pa&ss") && !Catch::Contains("pa%26ss") &&
                             Catch::Contains("postgresql://crm@127.0.0.1:1/crm"));
  }
  o.pg_password_file = file.string() + ".missing";
  CHECK_THROWS_WITH(open_store("postgresql://crm@127.0.0.1:1/crm", o),
                    Catch::Contains("cannot read PostgreSQL password file"));
  std::filesystem::remove(file);
}

TEST_CASE("sqlite: a relative URI and the folder created on first use", "[uri][sqlite]") {
  if (backend() != TestBackend::sqlite) return;
  const auto dir = std::filesystem::temp_directory_path() / ("crmhost-rel-" + random_hex(4));
  std::filesystem::create_directories(dir);
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir);
  {
    auto store = open_store("sqlite://data/sub/state.db");
    store->enqueue({make_event("p", "1")});
  }
  CHECK(std::filesystem::exists(dir / "data" / "sub" / "state.db"));
  std::filesystem::current_path(cwd);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a database created by the first migration is upgraded to the latest", "[migrations]") {
  TestDb db;
  REQUIRE(latest_schema_version() >= 2);
  {
    StoreOptions v1 = db.options();
    v1.migrate_to = 1;
    auto store = db.open(v1);
    CHECK(store->schema_version() == 1);
    store->enqueue({make_event("p1", "1"), make_event("p1", "2")});
    REQUIRE(store->advance_cursor({"p1", "contact", "cursor-at-v1", std::nullopt, {}}).applied);
  }
  // Written as version 1 knew links (later versions add columns).
  db.sql(
      "INSERT INTO entity_links (pipeline, source_connection, source_id, target_connection, "
      "target_id, last_payload_hash, updated_at) VALUES ('p1', 'a', '1', 'b', '2', '', 0)");
  {
    StoreOptions no_migrate = db.options();
    no_migrate.apply_migrations = false;
    auto store = db.open(no_migrate);
    CHECK(store->schema_version() == 1);  // opened as is, for `crmhost migrate`
    CHECK(store->migrate() == latest_schema_version());
  }
  auto store = db.open();
  CHECK(store->schema_version() == latest_schema_version());
  CHECK(store->list_events({}).size() == 2);
  CHECK(store->get_cursor("p1", "contact")->value == "cursor-at-v1");
  CHECK(store->find_link_by_source("p1", "a", "1"));
  // Migration 2 carried the existing cursor into the new history table.
  auto history = store->cursor_history("p1", "contact", 10);
  REQUIRE(history.size() == 1);
  CHECK(history[0].value == "cursor-at-v1");
  store->advance_cursor({"p1", "contact", "after-upgrade", std::nullopt, {}});
  CHECK(store->rewind_cursor("p1", "contact", 1).value == "cursor-at-v1");
  CHECK(db.sql("SELECT COUNT(*) FROM schema_version") == std::to_string(latest_schema_version()));
}

TEST_CASE("a database newer than the binary is refused", "[migrations]") {
  TestDb db;
  db.open();
  db.sql("INSERT INTO schema_version (version, description, applied_at) VALUES (99, 'future', 0)");
  try {
    db.open();
    FAIL("a newer schema was accepted");
  } catch (const StoreError &e) {
    CHECK(e.kind() == StoreError::Kind::schema_too_new);
    CHECK_THAT(e.what(), Catch::Contains("schema version 99 is newer than this crmhost supports"));
  }
  StoreOptions no_migrate = db.options();
  no_migrate.apply_migrations = false;
  CHECK_THROWS_AS(db.open(no_migrate), StoreError);
}

TEST_CASE("migrating twice, and concurrently from two hosts, is harmless", "[migrations]") {
  TestDb db;
  std::vector<std::thread> hosts;
  std::atomic<int> opened{0};
  for (int i = 0; i < 3; ++i) {
    hosts.emplace_back([&] {
      try {
        db.open();
        ++opened;
      } catch (const std::exception &e) {
        UNSCOPED_INFO("open failed: " << e.what());
      }
    });
  }
  for (auto &h : hosts) h.join();
  CHECK(opened == 3);
  CHECK(db.open()->migrate() == latest_schema_version());
  CHECK(db.sql("SELECT COUNT(*) FROM schema_version") == std::to_string(latest_schema_version()));
}

TEST_CASE(
    "postgresql: broken pooled connections are replaced; an unreachable server is "
    "retryable",
    "[postgresql][pool]") {
  if (backend() != TestBackend::postgresql) return;
  TestDb db;
  StoreOptions o = db.options();
  o.pg_pool_size = 3;
  auto store = db.open(o);
  store->enqueue({make_event("p1", "1")});

  // The admin connection uses another database: ALLOW_CONNECTIONS cannot change the current one.
  const std::string uri = pg_test_uri();
  const std::string dbname = uri.substr(uri.rfind('/') + 1);
  pqxx::connection admin(uri.substr(0, uri.rfind('/') + 1) + "postgres");
  auto backends = [&] {
    pqxx::nontransaction tx(admin);
    return tx
        .exec("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = " + tx.quote(dbname) +
              " AND backend_type = 'client backend'")[0][0]
        .as<int>();
  };
  auto terminate_others = [&] {
    {
      pqxx::nontransaction tx(admin);
      tx.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = " +
              tx.quote(dbname) + " AND backend_type = 'client backend'");
    }
    // Termination is asynchronous: wait until the backends are gone.
    for (int i = 0; i < 100 && backends() > 0; ++i) std::this_thread::sleep_for(20ms);
  };

  REQUIRE(backends() >= 1);
  terminate_others();
  REQUIRE(backends() == 0);
  // The pooled connection is dead; the store notices, drops it and uses a fresh one.
  CHECK(store->enqueue({make_event("p1", "2")}).size() == 1);
  CHECK(store->list_events({}).size() == 2);
  CHECK(backends() >= 1);

  // Server refusing connections: a retryable error, then recovery once it is back.
  {
    pqxx::nontransaction tx(admin);
    tx.exec("ALTER DATABASE " + admin.quote_name(dbname) + " ALLOW_CONNECTIONS false");
  }
  terminate_others();
  try {
    store->enqueue({make_event("p1", "3")});
    FAIL("enqueue succeeded without a server");
  } catch (const StoreError &e) {
    CHECK(e.retryable());
    CHECK(e.kind() == StoreError::Kind::unavailable);
  }
  {
    pqxx::nontransaction tx(admin);
    tx.exec("ALTER DATABASE " + admin.quote_name(dbname) + " ALLOW_CONNECTIONS true");
  }
  CHECK_FALSE(store->enqueue({make_event("p1", "3")})[0].duplicate);
  CHECK(store->list_events({}).size() == 3);
}
