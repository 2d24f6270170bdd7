#pragma once
// The periodic upkeep of one connection whose plugin offers crm.maintenance.v1 (a Zoho
// notification channel created at start and renewed before it expires). The first call runs at
// start, the next when the plugin asks (never sooner than a second), failures again with
// backoff. Calls run on the engine's pool like every plugin call; the timer on its io_context.
// The last outcome is kept for the admin API and written to the store for `crmhost status`.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "plugins/connector.hpp"
#include "store/store.hpp"

namespace crmhost::pipeline {

class ConnectionUpkeep : public std::enable_shared_from_this<ConnectionUpkeep> {
 public:
  ConnectionUpkeep(std::string connection, std::weak_ptr<plugins::Connector> connector,
                   boost::asio::io_context &io, boost::asio::thread_pool &pool,
                   std::shared_ptr<store::Store> store);

  // Makes the "start" call on the pool and schedules the ones after it.
  void start();
  // No call is made or scheduled after this returns (one already running finishes).
  void stop();
  // The last "shutdown" call, on the calling thread, after stop(); bounded by the plugin's own
  // timeouts. The connection is going away (crmhost stops, or a reload removed it).
  void shut_down();

  // {"ok":..., "reason":..., "at":..., "next_at":..., "failures":..., "error":..., "plugin":{...}}
  std::string status_json() const;

  // The delay before the call after one that failed `failures` times in a row: 1 s doubling to
  // 5 min, or the plugin's retry_after when longer.
  static std::chrono::milliseconds retry_delay(int failures, int64_t retry_after_ms);
  static constexpr std::chrono::milliseconds kMinInterval{1000};

 private:
  void call(const char *reason);
  void record(const char *reason, const plugins::Outcome<plugins::MaintenanceResult> &outcome,
              std::chrono::milliseconds next);
  void schedule(std::chrono::milliseconds delay);

  const std::string connection_;
  const std::weak_ptr<plugins::Connector> connector_;
  boost::asio::thread_pool &pool_;
  const std::shared_ptr<store::Store> store_;
  mutable std::mutex mutex_;  // guards everything below; Asio timers are not thread-safe
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
  bool running_ = false;  // a call is under way on the pool
  std::condition_variable idle_;
  int failures_ = 0;
  std::string status_ = "null";
};

}  // namespace crmhost::pipeline
