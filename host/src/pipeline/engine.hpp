#pragma once
// The engine: runs every enabled pipeline of a Config. Three kinds of threads (docs/architecture.md
// maps them): Asio io threads own the timers; a bounded pool runs plugin calls and store work
// (plugin calls block); and one control thread starts, reloads and stops pipelines and creates
// and destroys connectors, so none of that ever runs on a thread that serves traffic.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "config/config.hpp"
#include "pipeline/pipeline_runner.hpp"
#include "plugins/connector.hpp"
#include "plugins/plugin_registry.hpp"
#include "store/store.hpp"
#include "util/control_thread.hpp"

namespace crmhost::pipeline {

struct WebhookIngest {
  int http_status =
      200;  // 200 stored, 401 bad signature, 400 malformed, 404 no route, 503 store down
  std::string body;
  size_t events = 0;
  size_t duplicates = 0;
  std::optional<plugins::WebhookReply> reply;
};

class Engine {
 public:
  Engine(config::Config config, std::shared_ptr<plugins::PluginRegistry> registry,
         std::shared_ptr<store::Store> store, EngineOptions options = {});
  ~Engine();
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;

  // Creates the connectors and starts every enabled pipeline (on the control thread; this waits).
  // Throws std::runtime_error naming the connection when a connector cannot be created, with
  // everything started so far stopped again.
  void start();
  // Stops intake and timers, lets running batches finish within config.shutdown_grace; work not
  // started is handed back to the queue. Idempotent.
  void stop();
  // Applies a validated config on the control thread: unchanged pipelines keep running
  // undisturbed; changed ones are restarted, removed ones stopped, new ones started. Webhooks and
  // admin calls are served meanwhile: runners are stopped and connectors created outside the
  // engine's lock. Returns the problems that prevented a pipeline from starting.
  std::vector<std::string> reload(config::Config next);
  // Hands `work` to the control thread (a SIGHUP's reload, say) and returns at once.
  void post_control(std::function<void()> work);

  void pause(const std::string &pipeline);
  void resume(const std::string &pipeline);
  void pause_all();  // the kill switch
  void resume_all();
  bool is_paused(const std::string &pipeline) const;
  std::vector<std::string> pipeline_names() const;

  // Wakes the processor of a pipeline now (after an enqueue).
  void wake(const std::string &pipeline);
  // Runs a live poll of the pipeline now, on the pool; returns at once.
  void poll_now(const std::string &pipeline);
  // Runs a backfill on the calling thread (the backfill lane); a dry run enqueues nothing.
  PollOutcome backfill(const std::string &pipeline, bool dry_run);

  // Starts a backfill on the pool and returns its sync run id at once (the run record carries
  // progress and outcome); nullopt with `error` when the pipeline cannot backfill now.
  std::optional<int64_t> start_backfill(const std::string &pipeline, bool dry_run,
                                        std::optional<int64_t> since_ms, std::string &error);

  // Verifies and parses a delivery through the webhook source's plugin and enqueues its events
  // in one transaction; only then is the answer a success (webhook_ingest.cpp).
  WebhookIngest ingest_webhook(const std::string &path, const plugins::WebhookRequest &request,
                               const std::string &request_id);
  // The same without waiting for the commit: verification runs on the calling thread, and `done`
  // runs once the events are durable (or not), possibly on a store thread: keep it quick.
  void ingest_webhook_async(const std::string &path, const plugins::WebhookRequest &request,
                            const std::string &request_id, std::function<void(WebhookIngest)> done);

  // Live poll timing of a polling pipeline, Unix ms (0: not yet); nullopt for others.
  struct PollTimes {
    int64_t last_ms = 0;
    int64_t next_ms = 0;
  };
  std::optional<PollTimes> poll_times(const std::string &pipeline) const;
  // The live connector of a connection, shared: it stays usable while the caller holds it, even
  // if a reload replaces it meanwhile. nullptr when no pipeline uses the connection.
  std::shared_ptr<plugins::Connector> connector(const std::string &connection) const;
  // The live connections, by name: the plugin, and the last upkeep status (a JSON object) of
  // those whose plugin offers crm.maintenance.v1 ("null" until its first call ends).
  struct ConnectionView {
    std::string name;
    std::string plugin;
    std::optional<std::string> upkeep_json;
  };
  std::vector<ConnectionView> connections() const;
  // The running configuration: an immutable snapshot, taken without the engine's lock.
  std::shared_ptr<const config::Config> config() const;
  store::Store &store() { return *store_; }

 private:
  using Connections = std::map<std::string, std::shared_ptr<ConnectionHandle>>;
  using Runners = std::map<std::string, std::shared_ptr<PipelineRunner>>;

  void start_on_control();
  std::vector<std::string> reload_on_control(config::Config next);
  std::shared_ptr<ConnectionHandle> connect(const config::ConnectionConfig &connection);
  // A runner for `pipeline` of `config`, with the connections it needs from `connections`
  // (created there when missing: plugin calls, so never under the engine's lock).
  std::shared_ptr<PipelineRunner> make_runner(const config::PipelineConfig &pipeline,
                                              const config::Config &config,
                                              Connections &connections);
  std::shared_ptr<PipelineRunner> find_runner(const std::string &pipeline) const;
  // The two-way pairs' first-contact gates, by "a\nb" (control thread only).
  std::map<std::string, std::shared_ptr<std::atomic<int>>> first_contact_gates_;
  // Every minute: hand expired claims back to the queue; purge done events past retention.
  void schedule_maintenance(std::chrono::milliseconds delay);

  // First declared, last destroyed: connectors released by anything below end on this thread.
  std::shared_ptr<control::Executor> control_;
  mutable std::mutex config_mutex_;  // guards only the snapshot pointer
  std::shared_ptr<const config::Config> config_;
  std::shared_ptr<plugins::PluginRegistry> registry_;
  std::shared_ptr<store::Store> store_;
  EngineOptions options_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> io_threads_;
  std::unique_ptr<boost::asio::thread_pool> pool_;
  std::unique_ptr<boost::asio::steady_timer> maintenance_timer_;
  // Guards the two maps below, briefly: lookups by ingest and the admin API, and the swaps of a
  // reload (never held across a plugin call or a wait).
  mutable std::mutex mutex_;
  Connections connections_;
  Runners runners_;
  std::atomic<bool> paused_all_{false};
  // Webhooks whose events are being committed: stop and the destructor wait for them.
  void wait_for_ingests(std::chrono::steady_clock::time_point deadline);
  void answer_ingest(std::exception_ptr error, const store::EnqueueResult &outcomes,
                     const std::vector<PipelineRunner *> &owners, const std::string &first_pipeline,
                     std::optional<plugins::WebhookReply> reply,
                     const std::function<void(WebhookIngest)> &finish);
  std::mutex ingest_mutex_;
  std::condition_variable ingests_idle_;
  size_t ingests_in_flight_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> started_{false};
};

}  // namespace crmhost::pipeline
