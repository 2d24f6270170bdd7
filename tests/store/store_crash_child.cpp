// Crash-test helper: `store_crash_child URI [PG_SCHEMA]` enqueues batches from several threads
// forever and prints "ack <dedupe_key>" for every event only after enqueue() returned, i.e. after
// the commit. The parent kills it with SIGKILL and checks every acknowledged key survived.
#include <spdlog/spdlog.h>

#include <cstdio>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/store.hpp"

int main(int argc, char **argv) {
  using namespace crmhost::store;
  if (argc < 2) {
    std::fprintf(stderr, "usage: store_crash_child URI [PG_SCHEMA]\n");
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  try {
    StoreOptions options;
    if (argc > 2) options.pg_schema = argv[2];
    auto store = open_store(argv[1], options);
    std::printf("ready\n");
    const std::string run = std::to_string(now_ms().time_since_epoch().count());
    std::mutex out;
    std::vector<std::thread> producers;
    for (int t = 0; t < 4; ++t) {
      producers.emplace_back([&, t] {
        for (long n = 0;; ++n) {
          std::vector<NewEvent> batch;
          for (int i = 0; i < 1 + (n % 7); ++i) {
            NewEvent e;
            e.pipeline = "crash";
            e.connection = "child";
            e.object = "contact";
            e.record_id = std::to_string(t) + "-" + std::to_string(n) + "-" + std::to_string(i);
            e.event_type = "updated";
            e.payload = std::string(200, 'x');
            e.dedupe_key = run + ":" + e.record_id;
            batch.push_back(std::move(e));
          }
          store->enqueue(batch);
          std::lock_guard lock(out);
          for (const auto &e : batch) std::printf("ack %s\n", e.dedupe_key.c_str());
        }
      });
    }
    for (auto &p : producers) p.join();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "store_crash_child: %s\n", e.what());
    return 1;
  }
}
