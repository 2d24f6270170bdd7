// Shared fixtures of the store suite: which backend runs, a fresh database per test case, a fake
// clock, and raw SQL access for tests that tamper with rows behind the store's back.
#pragma once

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>

#include "store/store.hpp"

namespace crmhost::store::test {

enum class TestBackend { sqlite, postgresql };

// Set by the test main from --backend / CRMHOST_STORE_BACKEND.
TestBackend backend();
void set_backend(TestBackend b);
std::string pg_test_uri();  // CRMHOST_TEST_PG_URI

// A manual clock starting at a fixed, realistic time.
class FakeClock {
 public:
  Timestamp now() const { return from_unix_ms(ms_.load()); }
  void advance(Millis d) { ms_ += d.count(); }
  std::function<Timestamp()> fn() {
    return [this] { return now(); };
  }

 private:
  std::atomic<std::int64_t> ms_{1'700'000'000'000};
};

// One fresh, empty database for one test case: a temp file for SQLite, a fresh schema for
// PostgreSQL. Dropped at the end.
class TestDb {
 public:
  TestDb();
  ~TestDb();
  TestDb(const TestDb &) = delete;
  TestDb &operator=(const TestDb &) = delete;

  const std::string &uri() const { return uri_; }
  // Options for this database (schema for PostgreSQL, a test secret key).
  StoreOptions options() const;
  std::unique_ptr<Store> open() const { return open_store(uri_, options()); }
  std::unique_ptr<Store> open(const StoreOptions &o) const { return open_store(uri_, o); }

  // Runs SQL directly (no store) and returns the first column of the first row, or "".
  std::string sql(const std::string &statement) const;

  const std::string &pg_schema() const { return pg_schema_; }

 private:
  std::filesystem::path dir_;
  std::string uri_;
  std::string pg_schema_;
};

extern const char *const kTestKeyHex;  // 64 hex chars

NewEvent make_event(const std::string &pipeline, const std::string &record_id,
                    const std::string &event_type = "updated",
                    const std::string &payload = R"({"name":"Ada"})");

}  // namespace crmhost::store::test
