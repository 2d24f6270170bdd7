#include "pipeline/engine.hpp"

#include <cassert>
#include <set>
#include <sstream>
#include <utility>

#include <spdlog/spdlog.h>
#include <unistd.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "pipeline/connection_upkeep.hpp"
#include "util/metrics.hpp"

namespace crmhost::pipeline {

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
  out << "s:" << p.sink.connection << ':' << p.sink.object << ':' << to_string(p.sink.mode) << ':'
      << p.sink.match_on.value_or("") << ':' << to_string(p.sink.conflict) << ':'
      << to_string(p.sink.on_delete) << ':';
  for (const auto &step : p.sink.match_normalize) out << step << ',';
  for (const auto &[field, policy] : p.sink.conflict_fields)
    out << field << '=' << to_string(policy) << ',';
  out << '|';
  for (const std::string *name : {p.webhook ? &p.webhook->connection : nullptr,
                                  p.poll ? &p.poll->connection : nullptr, &p.sink.connection}) {
    if (!name) continue;
    auto it = c.connections.find(*name);
    if (it != c.connections.end()) out << describe(it->second) << '|';
  }
  return out.str();
}

}  // namespace

Engine::Engine(config::Config config, std::shared_ptr<plugins::PluginRegistry> registry,
               std::shared_ptr<store::Store> store, EngineOptions options)
    : control_(std::make_shared<control::Executor>()),
      config_(std::make_shared<const config::Config>(std::move(config))),
      registry_(std::move(registry)),
      store_(std::move(store)),
      options_(std::move(options)) {
  if (options_.owner.empty()) options_.owner = default_owner();
}

Engine::~Engine() {
  stop();
  // Webhooks whose commit is still under way hold pipelines; they answer within a commit.
  wait_for_ingests(std::chrono::steady_clock::now() + std::chrono::seconds(30));
  // Should the engine hold the registry's last reference, its plugins' deinit ([control]) runs
  // on the control thread too, not on whichever thread destroys the engine.
  control_->run([this] { registry_.reset(); });
}

std::shared_ptr<const config::Config> Engine::config() const {
  std::lock_guard lock(config_mutex_);
  return config_;
}

void Engine::post_control(std::function<void()> work) {
  control_->post(std::move(work));
}

void Engine::wait_for_ingests(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(ingest_mutex_);
  if (!ingests_idle_.wait_until(lock, deadline, [&] { return ingests_in_flight_ == 0; }))
    spdlog::warn("{} webhook(s) still awaiting their commit at shutdown", ingests_in_flight_);
}

std::shared_ptr<ConnectionHandle> Engine::connect(const config::ConnectionConfig &connection) {
  assert(control::on_control_thread());
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
  // destroy is a [control] call: wherever the last reference drops (a pool thread finishing a
  // batch of a pipeline a reload removed, an admin call), the connector ends on the control thread.
  std::weak_ptr<control::Executor> control = control_;
  handle->connector = std::shared_ptr<plugins::Connector>(
      created.value().release(), [control](plugins::Connector *connector) {
        if (!control::on_control_thread())
          if (auto executor = control.lock())
            return executor->post([connector] { delete connector; });
        delete connector;
      });
  if (plugin->maintains())
    handle->upkeep =
        std::make_shared<ConnectionUpkeep>(connection.name, handle->connector, io_, *pool_, store_);
  return handle;
}

std::shared_ptr<PipelineRunner> Engine::make_runner(const config::PipelineConfig &pipeline,
                                                    const config::Config &config,
                                                    Connections &connections) {
  auto handle = [&](const std::string &name) -> std::shared_ptr<ConnectionHandle> {
    auto it = connections.find(name);
    if (it != connections.end()) return it->second;
    auto made = connect(config.connections.at(name));
    connections[name] = made;
    return made;
  };
  std::shared_ptr<ConnectionHandle> source;
  if (pipeline.poll)
    source = handle(pipeline.poll->connection);
  else if (pipeline.webhook)
    source = handle(pipeline.webhook->connection);
  auto sink = handle(pipeline.sink.connection);
  std::vector<ReversePipeline> reverse;
  for (const auto *r : reverse_of(pipeline, config))
    reverse.push_back({r->name, r->sink.object, compiled_map(r->map)});
  std::optional<std::string> reverse_name;
  for (const auto &r : reverse)
    if (pipeline.poll && r.object == pipeline.poll->object) reverse_name = r.name;
  auto runner = std::make_shared<PipelineRunner>(pipeline, fingerprint(pipeline, config), io_,
                                                 *pool_, store_, source, sink, paused_all_,
                                                 options_, config.claim_lease, std::move(reverse));
  if (reverse_name) {
    // One gate per pair, whichever of the two is made first.
    const auto key =
        std::min(pipeline.name, *reverse_name) + "\n" + std::max(pipeline.name, *reverse_name);
    auto &gate = first_contact_gates_[key];
    if (!gate) gate = std::make_shared<std::atomic<int>>(0);
    runner->set_reverse_name(std::move(reverse_name));
    runner->set_first_contact_gate(gate);
  }
  return runner;
}

void Engine::start() {
  if (started_.exchange(true)) return;
  control_->run([this] { start_on_control(); });
}

void Engine::start_on_control() {
  const auto config = this->config();
  pool_ = std::make_unique<asio::thread_pool>(std::max<uint32_t>(config->plugin_workers, 1));
  work_.emplace(io_.get_executor());
  for (uint32_t i = 0; i < std::max<uint32_t>(config->io_threads, 1); ++i)
    io_threads_.emplace_back([this] { io_.run(); });
  maintenance_timer_ = std::make_unique<asio::steady_timer>(io_);
  try {
    Connections connections;
    for (const auto &[name, pipeline] : config->pipelines) {
      if (!pipeline.enabled) continue;
      auto runner = make_runner(pipeline, *config, connections);
      {
        std::lock_guard lock(mutex_);
        connections_ = connections;
        runners_[name] = runner;
      }
      runner->start();
      spdlog::info("pipeline {} started", name);
    }
    for (const auto &[name, handle] : connections)
      if (handle->upkeep) handle->upkeep->start();
  } catch (...) {
    // A connector that refuses its settings: the pipelines already started stop again, and the
    // threads end, before the error reaches the caller (whose destructor would otherwise stop
    // a half-started engine).
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
        if (const auto purged = store_->purge_done_events(config()->retention))
          spdlog::info("{} done event(s) older than the retention purged", purged);
      } catch (const std::exception &e) {
        spdlog::warn("store maintenance failed: {}", e.what());
      }
      asio::post(io_, [this] { schedule_maintenance(std::chrono::minutes(1)); });
    });
  });
}

void Engine::stop() {
  if (!started_ || stopped_.exchange(true)) return;
  const auto deadline = std::chrono::steady_clock::now() + config()->shutdown_grace;
  wait_for_ingests(deadline);
  Runners runners;
  {
    std::lock_guard lock(mutex_);
    runners = runners_;
  }
  for (auto &[name, runner] : runners) runner->stop(deadline);
  runners.clear();
  {
    std::lock_guard lock(mutex_);
    for (const auto &[name, handle] : connections_)
      if (handle->upkeep) handle->upkeep->stop();
  }
  if (maintenance_timer_) asio::post(io_, [this] { maintenance_timer_->cancel(); });
  // With the timers cancelled and every lane refusing new work, io_context runs dry and returns.
  work_.reset();
  for (auto &thread : io_threads_) thread.join();
  io_threads_.clear();
  if (pool_) pool_->join();
  // The connectors end on the control thread ([control] destroy), after every lane has.
  control_->run([this] {
    Runners ending_runners;
    Connections ending_connections;
    {
      std::lock_guard lock(mutex_);
      ending_runners.swap(runners_);
      ending_connections.swap(connections_);
    }
    ending_runners.clear();
    for (const auto &[name, handle] : ending_connections)
      if (handle->upkeep) handle->upkeep->shut_down();
  });
}

std::vector<std::string> Engine::reload(config::Config next) {
  return control_->run([this, &next] { return reload_on_control(std::move(next)); });
}

std::vector<std::string> Engine::reload_on_control(config::Config next_config) {
  if (stopped_) return {"the engine is stopping; the reload was not applied"};
  const auto next = std::make_shared<const config::Config>(std::move(next_config));
  const auto deadline = std::chrono::steady_clock::now() + next->shutdown_grace;
  // 1. Decide, under the lock, which runners carry on.
  Runners kept, stopped;
  Connections connections;
  {
    std::lock_guard lock(mutex_);
    for (auto &[name, runner] : runners_) {
      auto it = next->pipelines.find(name);
      if (it != next->pipelines.end() && it->second.enabled &&
          fingerprint(it->second, *next) == runner->fingerprint())
        kept[name] = runner;
      else
        stopped[name] = runner;
    }
    // Connections whose definition is unchanged are shared on; changed ones get a fresh
    // connector (the old one ends with the last pipeline using it).
    for (const auto &[name, handle] : connections_) {
      auto next_conn = next->connections.find(name);
      if (next_conn != next->connections.end() &&
          describe(next_conn->second) == describe(handle->config))
        connections[name] = handle;
    }
  }
  // 2. Stop what changed, without the lock: ingest and the admin API go on meanwhile (a
  // delivery to a stopping pipeline is stored; its successor processes it).
  for (auto &[name, runner] : stopped) {
    runner->stop(deadline);
    spdlog::info("pipeline {} stopped for reload", name);
  }
  // 3. Create the new pipelines' connectors (plugin calls), still without the lock.
  std::vector<std::string> problems;
  Runners started;
  for (const auto &[name, pipeline] : next->pipelines) {
    if (!pipeline.enabled || kept.count(name)) continue;
    try {
      started[name] = make_runner(pipeline, *next, connections);
    } catch (const std::exception &e) {
      problems.push_back(e.what());
    }
  }
  // 4. Publish: the maps and the configuration snapshot together.
  Runners running = kept;
  running.insert(started.begin(), started.end());
  {
    std::lock_guard lock(mutex_);
    runners_.swap(running);
    connections_.swap(connections);
  }
  {
    std::lock_guard lock(config_mutex_);
    config_ = next;
  }
  for (auto &[name, runner] : started) {
    runner->start();
    spdlog::info("pipeline {} started", name);
  }
  // Upkeep follows the connectors: a new one starts its own; one that was replaced stops (its
  // successor takes over the provider side), and one no longer configured is shut down.
  std::set<const ConnectionHandle *> current;
  {
    std::lock_guard lock(mutex_);
    for (const auto &[name, handle] : connections_) current.insert(handle.get());
  }
  for (const auto &[name, handle] : connections)  // the previous set, swapped out above
    if (handle->upkeep && !current.count(handle.get())) {
      handle->upkeep->stop();
      if (!next->connections.count(name)) handle->upkeep->shut_down();
    }
  std::set<const ConnectionHandle *> previous;
  for (const auto &[name, handle] : connections) previous.insert(handle.get());
  {
    std::lock_guard lock(mutex_);
    for (const auto &[name, handle] : connections_)
      if (handle->upkeep && !previous.count(handle.get())) handle->upkeep->start();
  }
  return problems;
}

std::vector<Engine::ConnectionView> Engine::connections() const {
  std::vector<ConnectionView> out;
  std::lock_guard lock(mutex_);
  for (const auto &[name, handle] : connections_)
    out.push_back({name, handle->plugin->id(),
                   handle->upkeep ? std::optional(handle->upkeep->status_json()) : std::nullopt});
  return out;
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

std::optional<Engine::PollTimes> Engine::poll_times(const std::string &pipeline) const {
  auto runner = find_runner(pipeline);
  if (!runner || !runner->config().poll) return std::nullopt;
  return PollTimes{runner->last_poll_ms_.load(), runner->next_poll_ms_.load()};
}

std::shared_ptr<plugins::Connector> Engine::connector(const std::string &connection) const {
  std::lock_guard lock(mutex_);
  auto it = connections_.find(connection);
  return it == connections_.end() ? nullptr : it->second->connector;
}

}  // namespace crmhost::pipeline
