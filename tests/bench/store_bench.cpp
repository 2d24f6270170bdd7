// Store throughput: durable enqueues/s (1 KB payloads, 1 and 8 producers, several batch sizes)
// and claim+complete events/s, for each backend URI given.
//
//   store_bench [--seconds S] [--sqlite-sync full|normal] [--producers 1,8] [--batches 1,10,100]
//               [--async 64,256] [--no-claims] URI...
//   URI: sqlite:///path/dir/bench.db (a fresh file per scenario is made next to it) or
//        postgresql://... (a fresh schema per scenario, dropped afterwards)
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "store/store.hpp"

using namespace crmhost::store;
using Clock = std::chrono::steady_clock;

namespace {

struct Config {
  double seconds = 3.0;
  SqliteSync sync = SqliteSync::full;
  std::vector<int> producers{1, 8};
  std::vector<int> batches{1, 10, 100};
  bool claims = true;
  std::vector<int> in_flight;  // --async: single-event enqueue_async calls kept in flight
};

std::vector<int> parse_list(const char *text) {
  std::vector<int> out;
  for (const char *p = text; *p;) {
    char *end = nullptr;
    out.push_back(static_cast<int>(std::strtol(p, &end, 10)));
    p = *end == ',' ? end + 1 : end;
  }
  return out;
}

// A fresh database per scenario, removed afterwards.
class Scratch {
 public:
  Scratch(const std::string &base_uri, const std::string &tag) : base_(base_uri) {
    static int counter = 0;
    const std::string suffix =
        tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    if (base_uri.rfind("sqlite://", 0) == 0) {
      file_ = std::filesystem::path(base_uri.substr(9)).parent_path() / ("bench_" + suffix + ".db");
      uri_ = "sqlite://" + file_.string();
    } else {
      uri_ = base_uri;
      schema_ = "bench_" + suffix;
    }
  }
  ~Scratch() {
    if (!file_.empty()) {
      for (const char *ext : {"", "-wal", "-shm"}) std::filesystem::remove(file_.string() + ext);
    } else {
      try {
        pqxx::connection c(base_);
        pqxx::nontransaction tx(c);
        tx.exec("DROP SCHEMA IF EXISTS " + c.quote_name(schema_) + " CASCADE");
      } catch (const std::exception &e) {
        std::fprintf(stderr, "cleanup: %s\n", e.what());
      }
    }
  }
  std::unique_ptr<Store> open(const Config &cfg, int pool) const {
    StoreOptions o;
    o.pg_schema = schema_;
    o.pg_pool_size = pool;
    o.sqlite_synchronous = cfg.sync;
    return open_store(uri_, o);
  }

 private:
  std::string base_, uri_, schema_;
  std::filesystem::path file_;
};

NewEvent bench_event(int producer, long n, const std::string &payload) {
  NewEvent e;
  e.pipeline = "bench";
  e.source = EventSource::webhook;
  e.connection = "hubspot";
  e.object = "contact";
  e.record_id = std::to_string(producer) + "-" + std::to_string(n);
  e.event_type = "updated";
  e.payload = payload;
  e.dedupe_key = default_dedupe_key(e);  // as the engine will: includes a sha256 of the payload
  return e;
}

double enqueue_rate(const std::string &uri, const Config &cfg, int producers, int batch) {
  Scratch scratch(uri, "enq");
  auto store = scratch.open(cfg, producers);
  const std::string payload(1024, 'p');
  std::atomic<long> total{0};
  const auto start = Clock::now();
  const auto stop = start + std::chrono::duration<double>(cfg.seconds);
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      long n = 0;
      std::vector<NewEvent> events;
      while (Clock::now() < stop) {
        events.clear();
        for (int i = 0; i < batch; ++i) events.push_back(bench_event(p, n++, payload));
        store->enqueue(events);
        total += batch;
      }
    });
  }
  for (auto &t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(total.load()) / secs;
}

// Webhook-shaped load without HTTP: one thread keeps `in_flight` single-event enqueue_async
// calls outstanding (as the webhook handler does), so the store's own ceiling shows.
double cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// Also reports the process's CPU time per event (`cpu_us`): steadier than events/s on a VM.
double async_enqueue_rate(const std::string &uri, const Config &cfg, int in_flight,
                          double &cpu_us) {
  Scratch scratch(uri, "async");
  auto store = scratch.open(cfg, 4);
  const std::string payload(1024, 'p');
  std::mutex mutex;
  std::condition_variable freed;
  int outstanding = 0;
  long done = 0;
  const auto start = Clock::now();
  const double cpu_before = cpu_seconds();
  const auto stop = start + std::chrono::duration<double>(cfg.seconds);
  long n = 0;
  while (Clock::now() < stop) {
    {
      std::unique_lock lock(mutex);
      freed.wait(lock, [&] { return outstanding < in_flight; });
      ++outstanding;
    }
    store->enqueue_async({bench_event(0, n++, payload)},
                         [&](std::exception_ptr error, EnqueueResult) {
                           if (error) std::fprintf(stderr, "enqueue failed\n");
                           std::lock_guard lock(mutex);
                           --outstanding;
                           ++done;
                           freed.notify_one();
                         });
  }
  std::unique_lock lock(mutex);
  freed.wait(lock, [&] { return outstanding == 0; });
  cpu_us = done ? 1e6 * (cpu_seconds() - cpu_before) / static_cast<double>(done) : 0;
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(done) / secs;
}

double claim_complete_rate(const std::string &uri, const Config &cfg, int workers, int batch,
                           int events) {
  Scratch scratch(uri, "claim");
  auto store = scratch.open(cfg, workers);
  const std::string payload(1024, 'p');
  for (int i = 0; i < events; i += 500) {
    std::vector<NewEvent> page;
    for (int j = i; j < std::min(events, i + 500); ++j) page.push_back(bench_event(0, j, payload));
    store->enqueue(page);
  }
  std::atomic<long> total{0};
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      for (;;) {
        auto claimed =
            store->claim({"bench", "w" + std::to_string(w), batch, std::chrono::minutes(5)});
        if (claimed.empty()) return;
        std::vector<EventId> ids;
        for (const auto &e : claimed) ids.push_back(e.id);
        total += static_cast<long>(store->complete_many(ids, claimed[0].claim_token));
      }
    });
  }
  for (auto &t : threads) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (total != events) std::fprintf(stderr, "warning: completed %ld of %d\n", total.load(), events);
  return static_cast<double>(total.load()) / secs;
}

}  // namespace

int main(int argc, char **argv) {
  Config cfg;
  std::vector<std::string> uris;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
      cfg.seconds = std::stod(argv[++i]);
    } else if (std::strcmp(argv[i], "--producers") == 0 && i + 1 < argc) {
      cfg.producers = parse_list(argv[++i]);
    } else if (std::strcmp(argv[i], "--batches") == 0 && i + 1 < argc) {
      cfg.batches = parse_list(argv[++i]);
    } else if (std::strcmp(argv[i], "--async") == 0 && i + 1 < argc) {
      cfg.in_flight = parse_list(argv[++i]);
    } else if (std::strcmp(argv[i], "--no-claims") == 0) {
      cfg.claims = false;
    } else if (std::strcmp(argv[i], "--sqlite-sync") == 0 && i + 1 < argc) {
      cfg.sync = std::strcmp(argv[++i], "normal") == 0 ? SqliteSync::normal : SqliteSync::full;
    } else {
      uris.emplace_back(argv[i]);
    }
  }
  if (uris.empty()) {
    std::fprintf(stderr, "usage: store_bench [--seconds S] [--sqlite-sync full|normal] URI...\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  try {
    for (const auto &uri : uris) {
      const bool sqlite = uri.rfind("sqlite://", 0) == 0;
      std::printf("\n%s  %s%s\n", sqlite ? "SQLite" : "PostgreSQL", redact_uri(uri).c_str(),
                  sqlite ? (cfg.sync == SqliteSync::full ? "  (synchronous=FULL)"
                                                         : "  (synchronous=NORMAL)")
                         : "");
      std::printf("| %-32s | %9s | %7s | %12s |\n", "operation", "producers", "batch", "events/s");
      std::printf("|%s|%s|%s|%s|\n", std::string(34, '-').c_str(), std::string(11, '-').c_str(),
                  std::string(9, '-').c_str(), std::string(14, '-').c_str());
      for (int producers : cfg.producers) {
        for (int batch : cfg.batches) {
          const double rate = enqueue_rate(uri, cfg, producers, batch);
          std::printf("| %-32s | %9d | %7d | %12.0f |\n", "enqueue (1 KB, durable)", producers,
                      batch, rate);
          std::fflush(stdout);
        }
      }
      for (int in_flight : cfg.in_flight) {
        double cpu_us = 0;
        const double rate = async_enqueue_rate(uri, cfg, in_flight, cpu_us);
        std::printf("| %-32s | %9s | %7d | %12.0f |  (%.1f CPU µs/event)\n",
                    "enqueue_async, single events",
                    ("1 (" + std::to_string(in_flight) + " in flight)").c_str(), 1, rate, cpu_us);
        std::fflush(stdout);
      }
      for (int workers : cfg.claims ? std::vector<int>{1, 4} : std::vector<int>{}) {
        const double rate = claim_complete_rate(uri, cfg, workers, 100, 20000);
        std::printf("| %-32s | %9d | %7d | %12.0f |\n", "claim + complete_many", workers, 100,
                    rate);
        std::fflush(stdout);
      }
    }
  } catch (const std::exception &e) {
    std::fprintf(stderr, "store_bench: %s\n", e.what());
    return 1;
  }
}
