#include "pipeline/connection_upkeep.hpp"

#include <algorithm>

#include <rapidjson/document.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "store/store.hpp"
#include "util/json.hpp"
#include "util/redact.hpp"
#include "util/time.hpp"

namespace crmhost::pipeline {

namespace asio = boost::asio;
using Millis = std::chrono::milliseconds;

ConnectionUpkeep::ConnectionUpkeep(std::string connection,
                                   std::weak_ptr<plugins::Connector> connector,
                                   asio::io_context &io, asio::thread_pool &pool,
                                   std::shared_ptr<store::Store> store)
    : connection_(std::move(connection)),
      connector_(std::move(connector)),
      pool_(pool),
      store_(std::move(store)),
      timer_(io) {}

Millis ConnectionUpkeep::retry_delay(int failures, int64_t retry_after_ms) {
  const int doublings = std::clamp(failures - 1, 0, 9);  // 1 s .. 512 s, capped below
  const Millis backoff =
      std::min<Millis>(Millis(int64_t{1000} << doublings), std::chrono::minutes(5));
  return std::max(backoff, Millis(retry_after_ms));
}

void ConnectionUpkeep::start() {
  asio::post(pool_, [self = shared_from_this()] { self->call("start"); });
}

void ConnectionUpkeep::stop() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  timer_.cancel();
}

void ConnectionUpkeep::shut_down() {
  {
    // A call still running (a reload removed the connection mid-renewal) ends first, so that
    // it cannot renew what shutdown is about to stop.
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return !running_; });
  }
  auto connector = connector_.lock();
  if (!connector) return;
  const auto outcome = connector->maintain("shutdown");
  if (!outcome)
    spdlog::warn("connection {}: upkeep at shutdown failed: {}", connection_,
                 outcome.error().describe());
  record("shutdown", outcome, Millis(0));
}

void ConnectionUpkeep::call(const char *reason) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    running_ = true;
  }
  struct Idle {
    ConnectionUpkeep &self;
    ~Idle() {
      std::lock_guard lock(self.mutex_);
      self.running_ = false;
      self.idle_.notify_all();
    }
  } idle{*this};
  auto connector = connector_.lock();
  if (!connector) return;
  const auto outcome = connector->maintain(reason);
  Millis next(0);
  int failures = 0;
  {
    std::lock_guard lock(mutex_);
    // Stopped meanwhile: the shutdown call (serialized after this one) has the last word.
    if (stopped_) return;
    failures = outcome ? 0 : ++failures_;
    if (outcome) failures_ = 0;
  }
  if (outcome) {
    if (outcome->next_in_ms > 0) next = std::max(Millis(outcome->next_in_ms), kMinInterval);
  } else {
    next = retry_delay(failures, outcome.error().retry_after_ms);
    // Backoff spaces these out (at most one line per attempt, the attempts 5 min apart at
    // worst), so the log cannot flood.
    spdlog::warn("connection {}: upkeep ({}) failed, attempt {}, next try in {} s: {}", connection_,
                 reason, failures, next.count() / 1000, outcome.error().describe());
  }
  record(reason, outcome, next);
  if (next.count() > 0) schedule(next);
}

void ConnectionUpkeep::schedule(Millis delay) {
  std::lock_guard lock(mutex_);
  if (stopped_) return;
  timer_.expires_after(delay);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec) return;
    asio::post(self->pool_, [self] { self->call("periodic"); });
  });
}

void ConnectionUpkeep::record(const char *reason,
                              const plugins::Outcome<plugins::MaintenanceResult> &outcome,
                              Millis next) {
  const int64_t now = store::to_unix_ms(store::now_ms());
  rapidjson::Document doc(rapidjson::kObjectType);
  auto &alloc = doc.GetAllocator();
  doc.AddMember("connection", rapidjson::Value(connection_.c_str(), alloc), alloc);
  doc.AddMember("ok", outcome.ok(), alloc);
  doc.AddMember("reason", rapidjson::Value(reason, alloc), alloc);
  doc.AddMember("at", rapidjson::Value(timeutil::format_iso8601_ms(now).c_str(), alloc), alloc);
  if (next.count() > 0)
    doc.AddMember("next_at",
                  rapidjson::Value(timeutil::format_iso8601_ms(now + next.count()).c_str(), alloc),
                  alloc);
  else
    doc.AddMember("next_at", rapidjson::Value(), alloc);
  int failures = 0;
  {
    std::lock_guard lock(mutex_);
    failures = failures_;
  }
  doc.AddMember("failures", failures, alloc);
  if (outcome) {
    // The plugin promises no secrets here; the shared redaction policy applies anyway.
    rapidjson::Document plugin;
    if (!json::try_parse(redaction::redact(outcome->status_json), plugin, "status"))
      doc.AddMember("plugin", rapidjson::Value(plugin, alloc), alloc);
  } else {
    doc.AddMember("error",
                  rapidjson::Value(redaction::redact(outcome.error().describe()).c_str(), alloc),
                  alloc);
  }
  std::string text = json::to_string(doc);
  try {
    store_->put_connection_status(connection_, text);
  } catch (const std::exception &e) {
    spdlog::warn("connection {}: could not store its upkeep status: {}", connection_, e.what());
  }
  // A failed call keeps the plugin's last good status visible next to the error.
  std::lock_guard lock(mutex_);
  if (!outcome && status_ != "null") {
    rapidjson::Document previous;
    if (!json::try_parse(status_, previous, "status") && previous.IsObject())
      if (const auto *plugin = json::member(previous, "plugin")) {
        doc.AddMember("plugin", rapidjson::Value(*plugin, alloc), alloc);
        text = json::to_string(doc);
      }
  }
  status_ = std::move(text);
}

std::string ConnectionUpkeep::status_json() const {
  std::lock_guard lock(mutex_);
  return status_;
}

}  // namespace crmhost::pipeline
