#pragma once
// One pipeline's running state: its timers on a strand, and three lanes (processing, the live
// poll, a backfill) each never running twice at once. The engine creates, starts and stops
// runners; the data flow inside a lane is poller.cpp (source -> store) and processor.cpp
// (store -> map -> sink).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include "config/config.hpp"
#include "pipeline/first_contact.hpp"
#include "pipeline/poller.hpp"
#include "pipeline/processor.hpp"
#include "plugins/connector.hpp"
#include "plugins/plugin_library.hpp"
#include "store/store.hpp"
#include "util/log_throttle.hpp"

namespace crmhost::pipeline {

// One configured connection and its live connector. The connector is destroyed on the control
// thread, wherever its last reference drops (see Engine::connect).
class ConnectionUpkeep;

struct ConnectionHandle {
  config::ConnectionConfig config;
  std::shared_ptr<plugins::PluginLibrary> plugin;
  std::shared_ptr<plugins::Connector> connector;
  std::shared_ptr<ConnectionUpkeep> upkeep;  // when the plugin offers crm.maintenance.v1
};

struct EngineOptions {
  std::string owner;                          // claim/lease owner; default "hostname:pid"
  std::chrono::milliseconds idle_delay{200};  // how often an idle pipeline looks for due events
};

namespace asio = boost::asio;
using Millis = std::chrono::milliseconds;

// The running state of one pipeline: its timers and the three lanes' busy flags.
class PipelineRunner : public std::enable_shared_from_this<PipelineRunner> {
 public:
  PipelineRunner(config::PipelineConfig pipeline, std::string fingerprint, asio::io_context &io,
                 asio::thread_pool &pool, std::shared_ptr<store::Store> store,
                 std::shared_ptr<ConnectionHandle> source, std::shared_ptr<ConnectionHandle> sink,
                 const std::atomic<bool> &paused_all, const EngineOptions &options, Millis lease,
                 std::vector<ReversePipeline> reverse)
      : pipeline_(std::move(pipeline)),
        fingerprint_(std::move(fingerprint)),
        io_(io),
        pool_(pool),
        store_(std::move(store)),
        source_(std::move(source)),
        sink_(std::move(sink)),
        paused_all_(paused_all),
        options_(options),
        strand_(asio::make_strand(io)),
        process_timer_(strand_),
        poll_timer_(strand_),
        processor_(ProcessorDeps{pipeline_, *store_, source_ ? source_->connector.get() : nullptr,
                                 *sink_->connector, sink_->plugin->description().max_batch,
                                 compiled_map(pipeline_.map), std::move(reverse), options.owner,
                                 lease, &stopping_}),
        rng_(std::random_device{}()) {}
  // The pipeline that writes back into this one's source (set before start): with it, the
  // first poll of a pipeline that never ran plans the first contact of the two sides.
  void set_reverse_name(std::optional<std::string> name) { reverse_name_ = std::move(name); }
  // Both pipelines of a two-way pair share `gate` (set before start): each whose first-contact
  // plan is due counts itself in, and neither processes events until both plans have read their
  // two sides (or two minutes have passed, should a plan never run: a pipeline started paused).
  // Otherwise one direction's first writes, or the other's webhooks, land before a plan reads.
  void set_first_contact_gate(std::shared_ptr<std::atomic<int>> gate) {
    gate_ = std::move(gate);
    gate_until_ = std::chrono::steady_clock::now() + std::chrono::minutes(2);
    if (reverse_name_ && pipeline_.poll && pipeline_.sink.match_on &&
        sink_->plugin->description().has_capability("poll") &&
        !store_->get_cursor(pipeline_.name,
                            lane_cursor_object(pipeline_.poll->object, PollLane::live))) {
      ++*gate_;
      gated_ = true;
    }
  }

  const config::PipelineConfig &config() const { return pipeline_; }
  const std::string &fingerprint() const { return fingerprint_; }
  ConnectionHandle *source() const { return source_.get(); }
  bool paused() const { return paused_ || paused_all_; }
  void set_paused(bool paused) {
    {
      // Under the lanes' mutex: a processing run either saw the pause before it began, or
      // began before it and is waited for below; none slips in between.
      std::lock_guard lock(mutex_);
      paused_ = paused;
    }
    if (!paused) return wake();
    wait_for_batch();
  }

  // A batch already under way finishes first (bounded), so that once a pause returns nothing
  // more is pushed. Never called from the pool that runs the batch.
  void wait_for_batch() {
    std::unique_lock lock(mutex_);
    idle_.wait_for(lock, std::chrono::seconds(10), [this] { return !processing_; });
  }

  void start() {
    schedule_process(Millis(0));
    if (pipeline_.poll) schedule_poll(Millis(0));
  }

  // Asks for a processing run now. Wakes coalesce: one pending run serves every event enqueued
  // before it starts, so a burst of webhooks does not re-arm the timer once per delivery.
  void wake() {
    if (paused() || wake_pending_.exchange(true)) return;  // resume wakes again
    asio::post(strand_, [self = shared_from_this()] { self->schedule_process(Millis(0)); });
  }

  void poll_now() {
    asio::post(strand_, [self = shared_from_this()] { self->schedule_poll(Millis(0)); });
  }

  // Stops timers; waits for the running lanes until `deadline`.
  void stop(std::chrono::steady_clock::time_point deadline) {
    stopping_ = true;
    asio::post(strand_, [self = shared_from_this()] {
      self->process_timer_.cancel();
      self->poll_timer_.cancel();
    });
    std::unique_lock lock(mutex_);
    if (!idle_.wait_until(lock, deadline,
                          [&] { return !processing_ && !polling_ && !backfilling_; }))
      spdlog::warn("pipeline {}: work still running after the shutdown deadline", pipeline_.name);
  }

  PollOutcome backfill(bool dry_run, std::optional<int64_t> run_id = std::nullopt,
                       std::optional<int64_t> since_ms = std::nullopt) {
    PollOutcome outcome;
    if (!pipeline_.poll || !source_) {
      outcome.ok = false;
      outcome.error = "pipeline " + pipeline_.name + " has no poll source to backfill from";
      return outcome;
    }
    if (!begin(backfilling_)) {
      outcome.ok = false;
      outcome.error = "a backfill of pipeline " + pipeline_.name + " is already running";
      return outcome;
    }
    PollOptions options;
    options.lane = PollLane::backfill;
    options.dry_run = dry_run;
    options.from_beginning = true;
    options.stop_requested = &stopping_;
    options.run_id = run_id;
    options.since_ms = since_ms;
    try {
      outcome = run_poll(pipeline_, *store_, *source_->connector, options);
    } catch (const std::exception &e) {
      outcome.ok = false;
      outcome.error = e.what();
    }
    end(backfilling_);
    if (!dry_run) wake();
    return outcome;
  }

  bool backfill_running() {
    std::lock_guard lock(mutex_);
    return backfilling_;
  }

 private:
  void schedule_process(Millis delay) {
    if (stopping_) return;
    process_timer_.expires_after(delay);
    process_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->run_process();
    });
  }

  void run_process() {
    wake_pending_ = false;  // events enqueued from here on need a wake of their own
    if (stopping_) return;
    bool paused_now = false;
    {
      std::lock_guard lock(mutex_);
      paused_now = paused_ || paused_all_;
      if (!paused_now && processing_) return;  // the running batch reschedules itself
      processing_ = !paused_now;
    }
    if (!paused_now && gate_ && *gate_ > 0 && std::chrono::steady_clock::now() < gate_until_) {
      end(processing_);  // a first-contact plan of the pair is still reading: later
      paused_now = true;
    }
    if (paused_now) return schedule_process(options_.idle_delay);
    asio::post(pool_, [self = shared_from_this()] {
      bool full = false;
      try {
        const auto stats = self->processor_.run_once();
        full = stats.claimed >= self->pipeline_.batch_size;
        if (stats.claimed)
          spdlog::debug(
              "pipeline {}: {} claimed, {} pushed, {} unchanged, {} echoes, {} stale, {} "
              "retried, {} dead",
              self->pipeline_.name, stats.claimed, stats.pushed, stats.unchanged, stats.echoes,
              stats.stale, stats.retried, stats.dead);
      } catch (const std::exception &e) {
        // A store that cannot write fails every turn (5 a second): a few lines per 10 s.
        static logging::LogThrottle throttle(3, std::chrono::seconds(10));
        if (auto note = throttle.admit(self->pipeline_.name))
          spdlog::error("pipeline {}: processing failed: {}{}", self->pipeline_.name, e.what(),
                        *note);
      }
      self->end(self->processing_);
      asio::post(self->strand_, [self, full] {
        self->schedule_process(full ? Millis(0) : self->options_.idle_delay);
      });
    });
  }

  void schedule_poll(Millis delay) {
    if (stopping_) return;
    next_poll_ms_ = unix_now_ms() + delay.count();
    poll_timer_.expires_after(delay);
    poll_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->run_poll_lane();
    });
  }

  Millis next_poll_delay() {
    const auto every = pipeline_.poll->every;
    const auto jitter = pipeline_.poll->jitter.count() > 0 ? pipeline_.poll->jitter : every / 10;
    std::uniform_int_distribution<int64_t> spread(-jitter.count(), jitter.count());
    return std::max(Millis(1), every + Millis(spread(rng_)));
  }

  void run_poll_lane() {
    if (stopping_) return;
    if (paused()) return schedule_poll(next_poll_delay());
    if (!begin(polling_)) {
      // A poll asked for while one runs starts right after it, so nothing changed since the
      // request is missed; the running poll reschedules.
      poll_again_ = true;
      return;
    }
    asio::post(pool_, [self = shared_from_this()] {
      PollOptions options;
      options.stop_requested = &self->stopping_;
      self->last_poll_ms_ = unix_now_ms();
      PollOutcome outcome;
      try {  // run_poll reports failures in its outcome; this keeps the lane alive regardless
        self->report_first_contact();
        outcome = run_poll(self->pipeline_, *self->store_, *self->source_->connector, options);
      } catch (const std::exception &e) {
        outcome.ok = false;
        outcome.error = e.what();
      }
      if (!outcome.ok)
        spdlog::warn("pipeline {}: poll failed after {} pages: {}", self->pipeline_.name,
                     outcome.pages, outcome.error);
      self->end(self->polling_);
      if (outcome.counts.enqueued) self->wake();
      asio::post(self->strand_, [self] {
        const bool again = std::exchange(self->poll_again_, false);
        self->schedule_poll(again ? Millis(0) : self->next_poll_delay());
      });
    });
  }

  // Two populated systems meeting is the riskiest moment of a two-way sync: before the first
  // poll of a pipeline that has never run (no cursor, no link), both sides are read and the plan
  // logged: how many records would link, conflict, or be created on each side. Once per runner.
  void report_first_contact() {
    struct Release {  // this plan read (or failed): the pair's processing may go on
      PipelineRunner &self;
      ~Release() {
        if (std::exchange(self.gated_, false)) --*self.gate_;
      }
    } release{*this};
    if (first_contact_checked_.exchange(true) || !reverse_name_ || !pipeline_.sink.match_on ||
        !sink_->plugin->description().has_capability("poll"))
      return;
    if (store_->get_cursor(pipeline_.name,
                           lane_cursor_object(pipeline_.poll->object, PollLane::live)))
      return;
    const auto plan = plan_first_contact(pipeline_, compiled_map(pipeline_.map), *store_,
                                         *source_->connector, *sink_->connector, reverse_name_);
    if (plan.already_linked > 0) return;
    spdlog::info("pipeline {}: first contact of {} and {}: {}", pipeline_.name,
                 pipeline_.poll->connection, pipeline_.sink.connection,
                 describe(plan, pipeline_, pipeline_.poll->connection));
  }

  bool begin(bool &flag) {
    std::lock_guard lock(mutex_);
    if (flag) return false;
    flag = true;
    return true;
  }
  void end(bool &flag) {
    {
      std::lock_guard lock(mutex_);
      flag = false;
    }
    idle_.notify_all();
  }

  static int64_t unix_now_ms() {
    return std::chrono::duration_cast<Millis>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

 public:
  std::atomic<int64_t> last_poll_ms_{0};  // when the latest live poll started; 0: none yet
  std::atomic<int64_t> next_poll_ms_{0};  // when the next is due

 private:
  std::atomic<bool> wake_pending_{false};
  config::PipelineConfig pipeline_;
  std::string fingerprint_;
  asio::io_context &io_;
  asio::thread_pool &pool_;
  std::shared_ptr<store::Store> store_;
  std::shared_ptr<ConnectionHandle> source_;
  std::shared_ptr<ConnectionHandle> sink_;
  const std::atomic<bool> &paused_all_;
  const EngineOptions &options_;
  // Every timer and scheduling step of this pipeline runs on this strand, whatever io threads.
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer process_timer_;
  asio::steady_timer poll_timer_;
  std::atomic<bool> paused_{false};
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::condition_variable idle_;
  bool processing_ = false;
  bool polling_ = false;
  bool backfilling_ = false;
  bool poll_again_ = false;  // touched only on the strand
  Processor processor_;
  std::optional<std::string> reverse_name_;
  std::atomic<bool> first_contact_checked_{false};
  std::shared_ptr<std::atomic<int>> gate_;  // see set_first_contact_gate
  std::chrono::steady_clock::time_point gate_until_{};
  bool gated_ = false;   // counted in gate_ until this runner's plan has read
  std::mt19937_64 rng_;  // touched only on the io thread (poll scheduling)
};

}  // namespace crmhost::pipeline
