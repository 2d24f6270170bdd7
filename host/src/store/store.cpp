#include "store/store.hpp"

#include <cerrno>
#include <csignal>
#include <random>

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "store/backends.hpp"
#include "store/migrations.hpp"
#include "store/uri.hpp"

namespace crmhost::store {
namespace {

[[noreturn]] void bad_name(std::string_view what, std::string_view value) {
  throw StoreError(StoreError::Kind::invalid_argument,
                   "unknown " + std::string(what) + " '" + std::string(value) + "'");
}

std::string host_name() {
  char name[256] = {0};
  if (gethostname(name, sizeof name - 1) != 0) return "host";
  return name;
}

}  // namespace

const std::string &process_identity() {
  static const std::string identity = [] {
    std::random_device random;
    char nonce[17];
    std::snprintf(nonce, sizeof nonce, "%08x%08x", random(), random());
    return host_name() + ":" + std::to_string(::getpid()) + ":" + nonce;
  }();
  return identity;
}

bool process_has_ended(const std::string &identity) {
  if (identity.empty()) return true;
  if (identity == process_identity()) return false;
  const auto nonce_colon = identity.rfind(':');
  if (nonce_colon == std::string::npos || nonce_colon == 0) return false;
  const auto pid_colon = identity.rfind(':', nonce_colon - 1);
  if (pid_colon == std::string::npos) return false;
  if (identity.compare(0, pid_colon, host_name()) != 0 || pid_colon != host_name().size())
    return false;  // another machine's process: it closes its own runs
  pid_t pid = 0;
  try {
    pid =
        static_cast<pid_t>(std::stol(identity.substr(pid_colon + 1, nonce_colon - pid_colon - 1)));
  } catch (const std::exception &) {
    return false;
  }
  if (pid <= 0) return false;
  if (pid == ::getpid()) return true;  // our pid, another nonce: a predecessor with our pid
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

std::optional<std::string> Store::write_failure() const {
  std::lock_guard lock(write_health_mutex_);
  return write_failure_;
}

void Store::note_write_outcome(std::exception_ptr error) {
  std::optional<std::string> failure;
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const StoreError &e) {
      if (!e.retryable()) return;
      failure = e.what();
    } catch (...) {
      return;
    }
  }
  std::lock_guard lock(write_health_mutex_);
  write_failure_ = std::move(failure);
}

Timestamp now_ms() {
  return std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
}
std::int64_t to_unix_ms(Timestamp t) {
  return t.time_since_epoch().count();
}
Timestamp from_unix_ms(std::int64_t ms) {
  return Timestamp(Millis(ms));
}

std::string_view to_string(EventSource s) {
  switch (s) {
    case EventSource::webhook:
      return "webhook";
    case EventSource::poll:
      return "poll";
    case EventSource::backfill:
      return "backfill";
    case EventSource::replay:
      return "replay";
  }
  return "webhook";
}

std::string_view to_string(EventStatus s) {
  switch (s) {
    case EventStatus::pending:
      return "pending";
    case EventStatus::in_flight:
      return "in_flight";
    case EventStatus::done:
      return "done";
    case EventStatus::failed:
      return "failed";
    case EventStatus::dead:
      return "dead";
  }
  return "pending";
}

EventSource parse_event_source(std::string_view s) {
  for (auto v :
       {EventSource::webhook, EventSource::poll, EventSource::backfill, EventSource::replay}) {
    if (to_string(v) == s) return v;
  }
  bad_name("event source", s);
}

EventStatus parse_event_status(std::string_view s) {
  for (auto v : {EventStatus::pending, EventStatus::in_flight, EventStatus::done,
                 EventStatus::failed, EventStatus::dead}) {
    if (to_string(v) == s) return v;
  }
  bad_name("event status", s);
}

std::string_view to_string(SyncRunKind k) {
  switch (k) {
    case SyncRunKind::poll:
      return "poll";
    case SyncRunKind::backfill:
      return "backfill";
    case SyncRunKind::replay:
      return "replay";
  }
  return "poll";
}

std::string_view to_string(SyncRunStatus s) {
  switch (s) {
    case SyncRunStatus::running:
      return "running";
    case SyncRunStatus::succeeded:
      return "succeeded";
    case SyncRunStatus::failed:
      return "failed";
    case SyncRunStatus::interrupted:
      return "interrupted";
  }
  return "running";
}

int latest_schema_version() {
  // Both backends carry the same migration versions.
  return static_cast<int>(sqlite_migrations().size());
}

std::string default_dedupe_key(const NewEvent &e) {
  return e.connection + ":" + e.object + ":" + e.event_type + ":" + e.record_id + ":" +
         sha256_hex(e.payload);
}

void Store::enqueue_async(std::vector<NewEvent> events, EnqueueDone done) {
  EnqueueResult result;
  std::exception_ptr error;
  try {
    result = enqueue(events);
  } catch (...) {
    error = std::current_exception();
  }
  done(error, std::move(result));
}

std::unique_ptr<Store> open_store(const std::string &uri, const StoreOptions &options) {
  const StoreUri parsed = parse_store_uri(uri);
  std::unique_ptr<Store> store = parsed.backend == Backend::sqlite
                                     ? open_sqlite_store(parsed.sqlite_path, options)
                                     : open_postgresql_store(parsed.pg_conninfo, options);
  spdlog::info("store: opened {} (schema version {})", redact_uri(uri), store->schema_version());
  return store;
}

}  // namespace crmhost::store
