#include "pipeline/engine.hpp"

#include <future>

#include <condition_variable>
#include <random>
#include <sstream>
#include <utility>

#include <spdlog/spdlog.h>
#include <unistd.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "pipeline/event_payload.hpp"
#include "util/json.hpp"
#include "util/metrics.hpp"

namespace crmhost::pipeline {

namespace asio = boost::asio;
using Millis = std::chrono::milliseconds;

namespace {

std::string default_owner() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) std::snprintf(host, sizeof host, "host");
  return std::string(host) + ":" + std::to_string(::getpid());
}

const std::string *source_connection(const config::PipelineConfig &p) {
  if (p.poll) return &p.poll->connection;
  if (p.webhook) return &p.webhook->connection;
  return nullptr;
}

// The pipelines writing into `p`'s source connection: the other direction of a two-way sync.
std::vector<const config::PipelineConfig *> reverse_of(const config::PipelineConfig &p,
                                                       const config::Config &c) {
  std::vector<const config::PipelineConfig *> out;
  const std::string *source = source_connection(p);
  if (!source) return out;
  for (const auto &[name, other] : c.pipelines)
    if (name != p.name && other.sink.connection == *source) out.push_back(&other);
  return out;
}

std::string describe(const config::ConnectionConfig &c) {
  std::ostringstream out;
  out << c.plugin << '\n' << c.settings_json << '\n';
  if (c.rate_limit) out << c.rate_limit->requests << '/' << c.rate_limit->per.count();
  return out.str();
}

// Everything that, when changed, requires a pipeline to restart.
std::string fingerprint(const config::PipelineConfig &p, const config::Config &c) {
  std::ostringstream out;
  out << p.enabled << '|' << p.batch_size << '|' << p.retry.attempts << '|'
      << p.retry.backoff_min.count() << '|' << p.retry.backoff_max.count() << '|';
  if (p.webhook) out << "w:" << p.webhook->connection << ':' << p.webhook->path << '|';
  if (p.poll)
    out << "p:" << p.poll->connection << ':' << p.poll->object << ':' << p.poll->every.count()
        << ':' << p.poll->jitter.count() << ':' << p.poll->page_size << '|';
  out << "m:" << p.map.preset << ':' << p.map.fields_json << ':' << p.map.copy_unmapped << ':'
      << p.map.default_country << '|';
  for (const auto *r : reverse_of(p, c))  // their mapping tells echoes from changes
    out << "r:" << r->name << ':' << r->sink.object << ':' << r->map.fields_json << ':'
        << r->map.copy_unmapped << ':' << r->map.default_country << '|';
  out << "s:" << p.sink.connection << ':' << p.sink.object << ':' << p.sink.mode << ':'
      << p.sink.match_on.value_or("") << ':' << p.sink.conflict << '|';
  for (const std::string *name : {p.webhook ? &p.webhook->connection : nullptr,
                                  p.poll ? &p.poll->connection : nullptr, &p.sink.connection}) {
    if (!name) continue;
    auto it = c.connections.find(*name);
    if (it != c.connections.end()) out << describe(it->second) << '|';
  }
  return out.str();
}

}  // namespace

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
        spdlog::error("pipeline {}: processing failed: {}", self->pipeline_.name, e.what());
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
  std::mt19937_64 rng_;  // touched only on the io thread (poll scheduling)
};

Engine::Engine(config::Config config, std::shared_ptr<plugins::PluginRegistry> registry,
               std::shared_ptr<store::Store> store, EngineOptions options)
    : config_(std::move(config)),
      registry_(std::move(registry)),
      store_(std::move(store)),
      options_(std::move(options)) {
  if (options_.owner.empty()) options_.owner = default_owner();
}

Engine::~Engine() {
  stop();
  // Webhooks whose commit is still under way hold pipelines; they answer within a commit.
  wait_for_ingests(std::chrono::steady_clock::now() + std::chrono::seconds(30));
}

void Engine::wait_for_ingests(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(ingest_mutex_);
  if (!ingests_idle_.wait_until(lock, deadline, [&] { return ingests_in_flight_ == 0; }))
    spdlog::warn("{} webhook(s) still awaiting their commit at shutdown", ingests_in_flight_);
}

std::shared_ptr<ConnectionHandle> Engine::connect(const config::ConnectionConfig &connection) {
  auto plugin = registry_->find(connection.plugin);
  if (!plugin)
    throw std::runtime_error("connection " + connection.name + ": plugin " + connection.plugin +
                             " is not loaded");
  auto created = plugin->create_connector(connection.name, connection.settings_json);
  if (!created)
    throw std::runtime_error("connection " + connection.name + ": " + created.error().describe());
  auto handle = std::make_shared<ConnectionHandle>();
  handle->config = connection;
  handle->plugin = plugin;
  handle->connector = std::move(created.value());
  return handle;
}

std::shared_ptr<PipelineRunner> Engine::make_runner(const config::PipelineConfig &pipeline) {
  auto handle = [&](const std::string &name) -> std::shared_ptr<ConnectionHandle> {
    auto it = connections_.find(name);
    if (it != connections_.end()) return it->second;
    auto made = connect(config_.connections.at(name));
    connections_[name] = made;
    return made;
  };
  std::shared_ptr<ConnectionHandle> source;
  if (pipeline.poll)
    source = handle(pipeline.poll->connection);
  else if (pipeline.webhook)
    source = handle(pipeline.webhook->connection);
  auto sink = handle(pipeline.sink.connection);
  std::vector<ReversePipeline> reverse;
  for (const auto *r : reverse_of(pipeline, config_))
    reverse.push_back({r->name, r->sink.object, compiled_map(r->map)});
  return std::make_shared<PipelineRunner>(pipeline, fingerprint(pipeline, config_), io_, *pool_,
                                          store_, source, sink, paused_all_, options_,
                                          config_.claim_lease, std::move(reverse));
}

void Engine::start() {
  std::unique_lock lock(mutex_);
  if (started_) return;
  started_ = true;
  pool_ = std::make_unique<asio::thread_pool>(std::max<uint32_t>(config_.plugin_workers, 1));
  work_.emplace(io_.get_executor());
  for (uint32_t i = 0; i < std::max<uint32_t>(config_.io_threads, 1); ++i)
    io_threads_.emplace_back([this] { io_.run(); });
  maintenance_timer_ = std::make_unique<asio::steady_timer>(io_);
  try {
    for (const auto &[name, pipeline] : config_.pipelines) {
      if (!pipeline.enabled) continue;
      auto runner = make_runner(pipeline);
      runners_[name] = runner;
      runner->start();
      spdlog::info("pipeline {} started", name);
    }
  } catch (...) {
    // A connector that refuses its settings: the pipelines already started stop again, and the
    // threads end, before the error reaches the caller (whose destructor would otherwise stop
    // a half-started engine).
    lock.unlock();
    stop();
    throw;
  }
  schedule_maintenance(Millis(0));
}

void Engine::schedule_maintenance(Millis delay) {
  if (stopped_) return;
  maintenance_timer_->expires_after(delay);
  maintenance_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || stopped_) return;
    asio::post(*pool_, [this] {
      try {
        if (const auto requeued = store_->requeue_expired_claims())
          spdlog::info("{} expired claim(s) handed back to the queue", requeued);
        Millis retention;
        {
          std::lock_guard lock(mutex_);  // reload may replace config_ meanwhile
          retention = config_.retention;
        }
        if (const auto purged = store_->purge_done_events(retention))
          spdlog::info("{} done event(s) older than the retention purged", purged);
      } catch (const std::exception &e) {
        spdlog::warn("store maintenance failed: {}", e.what());
      }
      asio::post(io_, [this] { schedule_maintenance(std::chrono::minutes(1)); });
    });
  });
}

void Engine::stop() {
  if (stopped_.exchange(true) || !started_) return;
  const auto deadline = std::chrono::steady_clock::now() + config_.shutdown_grace;
  wait_for_ingests(deadline);
  std::map<std::string, std::shared_ptr<PipelineRunner>> runners;
  {
    std::lock_guard lock(mutex_);
    runners = runners_;
  }
  for (auto &[name, runner] : runners) runner->stop(deadline);
  if (maintenance_timer_) asio::post(io_, [this] { maintenance_timer_->cancel(); });
  // With the timers cancelled and every lane refusing new work, io_context runs dry and returns.
  work_.reset();
  for (auto &thread : io_threads_) thread.join();
  io_threads_.clear();
  pool_->join();
  std::lock_guard lock(mutex_);
  runners_.clear();
  connections_.clear();
}

std::vector<std::string> Engine::reload(config::Config next) {
  std::lock_guard lock(mutex_);
  const auto deadline = std::chrono::steady_clock::now() + next.shutdown_grace;
  std::map<std::string, std::shared_ptr<PipelineRunner>> kept, stopped;
  for (auto &[name, runner] : runners_) {
    auto it = next.pipelines.find(name);
    if (it != next.pipelines.end() && it->second.enabled &&
        fingerprint(it->second, next) == runner->fingerprint())
      kept[name] = runner;
    else
      stopped[name] = runner;
  }
  for (auto &[name, runner] : stopped) {
    runner->stop(deadline);
    spdlog::info("pipeline {} stopped for reload", name);
  }
  // Connections whose definition changed get a fresh connector; the rest are shared on.
  for (auto it = connections_.begin(); it != connections_.end();) {
    auto next_conn = next.connections.find(it->first);
    if (next_conn == next.connections.end() ||
        describe(next_conn->second) != describe(it->second->config))
      it = connections_.erase(it);
    else
      ++it;
  }
  config_ = std::move(next);
  runners_ = kept;
  std::vector<std::string> problems;
  for (const auto &[name, pipeline] : config_.pipelines) {
    if (!pipeline.enabled || runners_.count(name)) continue;
    try {
      auto runner = make_runner(pipeline);
      runners_[name] = runner;
      runner->start();
      spdlog::info("pipeline {} started", name);
    } catch (const std::exception &e) {
      problems.push_back(e.what());
    }
  }
  return problems;
}

std::shared_ptr<PipelineRunner> Engine::find_runner(const std::string &pipeline) const {
  std::lock_guard lock(mutex_);
  auto it = runners_.find(pipeline);
  return it == runners_.end() ? nullptr : it->second;
}

void Engine::pause(const std::string &pipeline) {
  if (auto r = find_runner(pipeline)) r->set_paused(true);
}
void Engine::resume(const std::string &pipeline) {
  if (auto r = find_runner(pipeline)) r->set_paused(false);
}
void Engine::pause_all() {
  paused_all_ = true;
  // Taking each runner's lane lock after the flag is set orders every later batch after it.
  std::map<std::string, std::shared_ptr<PipelineRunner>> runners;
  {
    std::lock_guard lock(mutex_);
    runners = runners_;
  }
  for (auto &[name, runner] : runners) runner->wait_for_batch();
}
void Engine::resume_all() {
  paused_all_ = false;
  for (const auto &name : pipeline_names()) wake(name);
}
bool Engine::is_paused(const std::string &pipeline) const {
  auto r = find_runner(pipeline);
  return r && r->paused();
}

std::vector<std::string> Engine::pipeline_names() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> names;
  for (const auto &[name, runner] : runners_) names.push_back(name);
  return names;
}

void Engine::wake(const std::string &pipeline) {
  if (auto r = find_runner(pipeline)) r->wake();
}

void Engine::poll_now(const std::string &pipeline) {
  if (auto r = find_runner(pipeline)) r->poll_now();
}

PollOutcome Engine::backfill(const std::string &pipeline, bool dry_run) {
  auto r = find_runner(pipeline);
  if (!r) {
    PollOutcome outcome;
    outcome.ok = false;
    outcome.error = "no running pipeline named " + pipeline;
    return outcome;
  }
  return r->backfill(dry_run);
}

std::optional<int64_t> Engine::start_backfill(const std::string &pipeline, bool dry_run,
                                              std::optional<int64_t> since_ms, std::string &error) {
  auto r = find_runner(pipeline);
  if (!r || !r->config().poll) {
    error = "no running pipeline " + pipeline + " with a poll source";
    return std::nullopt;
  }
  if (r->backfill_running()) {
    error = "a backfill of pipeline " + pipeline + " is already running";
    return std::nullopt;
  }
  const auto run_id = store_->start_sync_run(pipeline, store::SyncRunKind::backfill);
  // The backfill lane runs on the pool beside the live lanes; progress is in the run record.
  asio::post(*pool_, [r, dry_run, run_id, since_ms] {
    const auto outcome = r->backfill(dry_run, run_id, since_ms);
    if (!outcome.ok) spdlog::warn("backfill run {} failed: {}", run_id, outcome.error);
  });
  return run_id;
}

WebhookIngest Engine::ingest_webhook(const std::string &path,
                                     const plugins::WebhookRequest &request,
                                     const std::string &request_id) {
  std::promise<WebhookIngest> promise;
  auto future = promise.get_future();
  ingest_webhook_async(path, request, request_id,
                       [&promise](WebhookIngest result) { promise.set_value(std::move(result)); });
  return future.get();
}

void Engine::ingest_webhook_async(const std::string &path, const plugins::WebhookRequest &request,
                                  const std::string &request_id,
                                  std::function<void(WebhookIngest)> done) {
  // Every pipeline on this path (one connection; each takes its own object). runners_ is a map
  // by name, so the first is the same on every delivery.
  std::vector<std::shared_ptr<PipelineRunner>> runners;
  {
    std::lock_guard lock(mutex_);
    for (const auto &[name, r] : runners_)
      if (r->config().webhook && r->config().webhook->path == path) runners.push_back(r);
  }
  if (runners.empty()) {
    WebhookIngest result;
    result.http_status = 404;
    result.body = "no pipeline receives webhooks at this path";
    return done(std::move(result));
  }
  auto verifier = runners.front();
  // Labelled by path: a delivery to a path that several pipelines share is one delivery (each
  // pipeline's events are counted in crmhost_events_received_total).
  auto finish = [path, done = std::move(done)](WebhookIngest result) {
    const char *outcome = result.http_status == 200   ? (result.events ? "stored" : "duplicate")
                          : result.http_status == 401 ? "unauthorized"
                          : result.http_status == 400 ? "invalid"
                          : result.http_status == 503 ? "unavailable"
                                                      : "error";
    metrics::global().counter_add("crmhost_webhooks_received_total",
                                  "Webhook deliveries received, by path and outcome.",
                                  {{"path", path}, {"outcome", outcome}});
    done(std::move(result));
  };

  // A body nested deep enough to overflow a recursive parser never reaches the plugin: the
  // plugin's fault would take the whole host down.
  if (const auto first = request.body.find_first_not_of(" \t\r\n");
      first != std::string::npos && (request.body[first] == '{' || request.body[first] == '[')) {
    if (const auto at = json::nesting_exceeds(request.body, json::kMaxWebhookJsonDepth)) {
      WebhookIngest result;
      result.http_status = 400;
      result.body = "the JSON body nests deeper than " +
                    std::to_string(json::kMaxWebhookJsonDepth) + " levels (at offset " +
                    std::to_string(*at) + ")";
      return finish(std::move(result));
    }
  }
  // Verification and parsing run here (a plugin call); the commit is awaited without a thread.
  auto parsed = verifier->source()->connector->webhook(request);
  if (!parsed) {
    const auto &e = parsed.error();
    WebhookIngest result;
    result.http_status = e.code == CRM_ERR_UNAUTHORIZED    ? 401
                         : e.code == CRM_ERR_INVALID_INPUT ? 400
                                                           : 500;
    result.body = e.code == CRM_ERR_UNAUTHORIZED ? "" : e.message;  // no detail for a bad signature
    return finish(std::move(result));
  }
  // Each event goes to the pipeline of its object; one delivery is one transaction all the same.
  std::vector<store::NewEvent> events;
  std::vector<PipelineRunner *> owners;  // per event
  size_t ignored = 0;
  for (const auto &event : parsed->events) {
    PipelineRunner *owner = nullptr;
    for (const auto &r : runners)
      if (config::webhook_object(r->config()) == event.object) owner = r.get();
    if (!owner) {
      ++ignored;  // a subscription no pipeline here takes
      continue;
    }
    events.push_back(make_event(owner->config().name, store::EventSource::webhook,
                                owner->config().webhook->connection, payload_from(event),
                                request_id, event.event_id));
    owners.push_back(owner);
  }
  if (ignored)
    spdlog::debug("request {} POST {}: {} event(s) of objects no pipeline on this path takes",
                  request_id, path, ignored);
  {
    std::lock_guard lock(ingest_mutex_);
    ++ingests_in_flight_;
  }
  store_->enqueue_async(std::move(events),
                        [this, runners, owners = std::move(owners), reply = parsed->reply,
                         finish = std::function<void(WebhookIngest)>(std::move(finish))](
                            std::exception_ptr error, store::EnqueueResult outcomes) mutable {
                          answer_ingest(error, outcomes, owners, runners.front()->config().name,
                                        std::move(reply), finish);
                          // What this holds goes before the engine may: the last reference to a
                          // pipeline (and through it the store) must not be dropped here, on the
                          // store's own writer thread.
                          runners.clear();
                          owners.clear();
                          finish = nullptr;
                          std::lock_guard lock(ingest_mutex_);
                          if (--ingests_in_flight_ == 0) ingests_idle_.notify_all();
                        });
}

// The answer to a webhook once its events are committed (or not): counts, wakes, the reply.
void Engine::answer_ingest(std::exception_ptr error, const store::EnqueueResult &outcomes,
                           const std::vector<PipelineRunner *> &owners,
                           const std::string &first_pipeline,
                           std::optional<plugins::WebhookReply> reply,
                           const std::function<void(WebhookIngest)> &finish) {
  WebhookIngest result;
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const store::StoreError &e) {
      result.http_status = e.retryable() ? 503 : 500;  // 503: the provider will retry
      result.body = e.retryable() ? "store unavailable" : "store error";
    } catch (const std::exception &e) {
      spdlog::error("webhook enqueue for pipeline {} failed: {}", first_pipeline, e.what());
      result.http_status = 500;
      result.body = "internal error";
    }
    return finish(std::move(result));  // nothing was acknowledged
  }
  std::map<PipelineRunner *, std::pair<size_t, size_t>> per_pipeline;  // new, duplicate
  for (size_t i = 0; i < outcomes.size() && i < owners.size(); ++i) {
    auto &counts = per_pipeline[owners[i]];
    (outcomes[i].duplicate ? counts.second : counts.first)++;
    (outcomes[i].duplicate ? result.duplicates : result.events)++;
  }
  for (const auto &[owner, counts] : per_pipeline) {
    count_received(owner->config().name, "webhook", counts.first, counts.second);
    if (counts.first) owner->wake();
  }
  result.reply = std::move(reply);
  finish(std::move(result));
}

std::optional<Engine::PollTimes> Engine::poll_times(const std::string &pipeline) const {
  auto runner = find_runner(pipeline);
  if (!runner || !runner->config().poll) return std::nullopt;
  return PollTimes{runner->last_poll_ms_.load(), runner->next_poll_ms_.load()};
}

plugins::Connector *Engine::connector(const std::string &connection) {
  std::lock_guard lock(mutex_);
  auto it = connections_.find(connection);
  return it == connections_.end() ? nullptr : it->second->connector.get();
}

}  // namespace crmhost::pipeline
