#include "store_test_support.hpp"

#include <sqlite3.h>

#include <cstdlib>
#include <pqxx/pqxx>
#include <stdexcept>

#include "store/secret_box.hpp"

namespace crmhost::store::test {
namespace {
TestBackend g_backend = TestBackend::sqlite;
}

TestBackend backend() {
  return g_backend;
}
void set_backend(TestBackend b) {
  g_backend = b;
}

std::string pg_test_uri() {
  const char *uri = std::getenv("CRMHOST_TEST_PG_URI");
  return uri ? uri : "";
}

const char *const kTestKeyHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

TestDb::TestDb() {
  if (g_backend == TestBackend::sqlite) {
    dir_ = std::filesystem::temp_directory_path() / ("crmhost-store-test-" + random_hex(6));
    // The store creates the missing folder itself: exercise that.
    uri_ = "sqlite://" + (dir_ / "nested" / "state.db").string();
  } else {
    uri_ = pg_test_uri();
    pg_schema_ = "t_" + random_hex(6);
  }
}

TestDb::~TestDb() {
  try {
    if (g_backend == TestBackend::sqlite) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    } else {
      pqxx::connection conn(uri_);
      pqxx::nontransaction tx(conn);
      tx.exec("DROP SCHEMA IF EXISTS " + conn.quote_name(pg_schema_) + " CASCADE");
    }
  } catch (const std::exception &) {
    // best effort cleanup
  }
}

StoreOptions TestDb::options() const {
  StoreOptions o;
  o.pg_schema = pg_schema_;
  o.secret_key = std::string("test1:") + kTestKeyHex;
  return o;
}

std::string TestDb::sql(const std::string &statement) const {
  if (g_backend == TestBackend::sqlite) {
    sqlite3 *db = nullptr;
    const std::string path = uri_.substr(9);
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) {
      sqlite3_close(db);
      throw std::runtime_error("cannot open " + path);
    }
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *stmt = nullptr;
    std::string out;
    int rc = sqlite3_prepare_v2(db, statement.c_str(), -1, &stmt, nullptr);
    if (rc == SQLITE_OK) {
      rc = sqlite3_step(stmt);
      if (rc == SQLITE_ROW && sqlite3_column_text(stmt, 0)) {
        out = reinterpret_cast<const char *>(sqlite3_column_text(stmt, 0));
      }
      if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
    }
    const std::string error = sqlite3_errmsg(db);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    if (rc != SQLITE_OK) throw std::runtime_error("SQL failed: " + error + ": " + statement);
    return out;
  }
  pqxx::connection conn(uri_);
  pqxx::work tx(conn);
  tx.exec("SET LOCAL search_path TO " + conn.quote_name(pg_schema_));
  const pqxx::result r = tx.exec(statement);
  tx.commit();
  return r.empty() || r[0].empty() || r[0][0].is_null() ? "" : r[0][0].c_str();
}

NewEvent make_event(const std::string &pipeline, const std::string &record_id,
                    const std::string &event_type, const std::string &payload) {
  NewEvent e;
  e.pipeline = pipeline;
  e.source = EventSource::webhook;
  e.connection = "hubspot-main";
  e.object = "contact";
  e.record_id = record_id;
  e.event_type = event_type;
  e.payload = payload;
  e.request_id = "req-" + record_id;
  e.dedupe_key = default_dedupe_key(e);
  return e;
}

}  // namespace crmhost::store::test
