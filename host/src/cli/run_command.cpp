#include <condition_variable>
#include <csignal>
#include <mutex>
#include <ostream>
#include <thread>

#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "cli/cli.hpp"
#include "config/config.hpp"
#include "http_api/router.hpp"
#include "net/http_client.hpp"
#include "net/http_server.hpp"
#include "pipeline/engine.hpp"
#include "pipeline/store_state.hpp"
#include "plugins/plugin_registry.hpp"
#include "store/store.hpp"
#include "store/uri.hpp"
#include "util/crash.hpp"
#include "util/logging.hpp"

namespace crmhost::cli {

namespace {

struct RunArgs {
  std::vector<std::filesystem::path> config_paths;
  std::string plugin_dir;
};

// Loads the plugins the config's plugin_dir names (or the override), then the config with
// them, so `run` reports exactly what `crmhost validate` would.
config::LoadResult load_checked(const RunArgs &args, plugins::PluginRegistry &registry) {
  std::string dir = args.plugin_dir;
  if (dir.empty()) dir = config::plugin_dir_of(args.config_paths);
  if (dir.empty()) dir = default_plugin_dir();
  registry.load_directory(dir);
  for (const auto &refusal : registry.refusals())
    spdlog::warn("plugin refused: {}", refusal.to_string());
  auto checked = config::load(args.config_paths, &registry);
  if (checked.config) checked.config->plugin_dir = dir;
  return checked;
}

// The SQLite database a store URI names, absolute (a relative path is relative to the config
// file's directory, which the loader applied, and that directory may itself be relative), or
// empty for PostgreSQL. Throws StoreError for a URI that cannot be used.
std::filesystem::path sqlite_file_of(const std::string &store_uri) {
  const auto where = store::parse_store_uri(store_uri);
  if (where.backend != store::Backend::sqlite) return {};
  return std::filesystem::absolute(where.sqlite_path).lexically_normal();
}

// Where a crash is recorded, known before any plugin is loaded: $STATE_DIRECTORY under systemd,
// else beside the SQLite store of the configuration read without its plugins (no plugin code
// runs; the checked load follows). Empty when the configuration cannot be read this way: the
// checked load then says why, and the marker is set once the store is open. Takes the log
// settings too, so that what is logged before the checked load is in the configured format.
std::string early_crash_marker(const RunArgs &args) {
  if (auto marker = crash::marker_path_for({}); !marker.empty()) return marker;
  try {
    const auto plain = config::load(args.config_paths);
    if (!plain.config) return {};
    logging::setup(plain.config->log_level, plain.config->log_format);
    return crash::marker_path_for(sqlite_file_of(plain.config->store));
  } catch (const std::exception &) {
    return {};
  }
}

// The settings a reload cannot change (bound at start) that differ between `running` and `next`.
std::vector<std::string> restart_only_changes(const config::Config &running,
                                              const config::Config &next) {
  std::vector<std::string> changed;
  const auto tls_of = [](const config::Config &c) {
    return c.tls ? c.tls->certificate + "\n" + c.tls->key : std::string();
  };
  if (running.store != next.store) changed.push_back("store");
  if (running.listen != next.listen) changed.push_back("listen");
  if (tls_of(running) != tls_of(next)) changed.push_back("tls");
  if (running.plugin_dir != next.plugin_dir) changed.push_back("plugin_dir");
  if (running.log_format != next.log_format) changed.push_back("log.format");
  if (running.io_threads != next.io_threads) changed.push_back("workers.io");
  if (running.plugin_workers != next.plugin_workers) changed.push_back("workers.plugin");
  if (running.max_body != next.max_body) changed.push_back("max_body");
  if (running.max_connections_per_client != next.max_connections_per_client)
    changed.push_back("max_connections_per_client");
  return changed;
}

}  // namespace

int run_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err) {
  RunArgs run;
  for (size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--config" || args[i] == "--plugin-dir") && i + 1 == args.size()) {
      err << "crmhost run: " << args[i] << " needs a value\n";
      return 2;
    }
    if (args[i] == "--config")
      run.config_paths.emplace_back(args[++i]);
    else if (args[i] == "--plugin-dir")
      run.plugin_dir = args[++i];
    else if (args[i] == "--help") {
      out << "usage: crmhost run --config FILE|DIR [--config ...] [--plugin-dir DIR]\n"
             "Runs the pipelines of the configuration until SIGTERM or SIGINT (graceful stop,\n"
             "exit 0). SIGHUP reloads the configuration; an invalid one is refused and the\n"
             "running one kept. Exit 1: the configuration or the store could not be used.\n";
      return 0;
    } else {
      err << "crmhost run: unknown argument '" << args[i] << "'\n";
      return 2;
    }
  }
  if (run.config_paths.empty()) {
    err << "crmhost run: name the configuration with --config FILE\n";
    return 2;
  }

  // Armed before anything slow, so an early SIGTERM is handled, not fatal.
  boost::asio::io_context signals_io{1};  // run by the one network thread (HttpServer)
  boost::asio::signal_set signals(signals_io, SIGTERM, SIGINT, SIGHUP);

  // The crash handler and its marker before any plugin is loaded, so that a plugin crashing in
  // init, describe or create is recorded; and the previous process's crash is said at once, so
  // that a plugin that crashes at every start is named at every start.
  std::string crash_marker = early_crash_marker(run);
  if (auto previous = crash::take_previous(crash_marker))
    spdlog::error("the previous crmhost process crashed: {}", *previous);
  bool marker_open = crash::install(crash_marker);
  auto services = std::make_shared<plugins::HostServices>();
  auto registry = std::make_shared<plugins::PluginRegistry>(services);
  auto loaded = load_checked(run, *registry);
  if (!loaded.config) {
    for (const auto &problem : loaded.problems) err << problem.to_string() << "\n";
    err << "crmhost run: the configuration is invalid; not starting\n";
    return 1;
  }
  logging::setup(loaded.config->log_level, loaded.config->log_format);
  for (const auto &warning : loaded.warnings) spdlog::warn("config: {}", warning.to_string());

  std::shared_ptr<store::Store> db;
  std::filesystem::path sqlite_database;
  try {
    sqlite_database = sqlite_file_of(loaded.config->store);
    spdlog::info("store: {}", !sqlite_database.empty() ? "sqlite://" + sqlite_database.string()
                                                       : store::redact_uri(loaded.config->store));
    db = store::open_store(loaded.config->store);
  } catch (const store::StoreError &e) {
    err << "crmhost run: store " << store::redact_uri(loaded.config->store) << ": " << e.what()
        << "\n";
    return 1;
  }
  // The early marker missed (the configuration needed its plugins to load, or the store's
  // directory did not exist before the store was opened): the store's neighbour, now.
  if (const auto marker = crash::marker_path_for(sqlite_database);
      marker != crash_marker || !marker_open) {
    if (marker != crash_marker)
      if (auto previous = crash::take_previous(marker))
        spdlog::error("the previous crmhost process crashed: {}", *previous);
    crash_marker = marker;
    marker_open = crash::install(crash_marker);
  }
  if (!marker_open)
    spdlog::warn("cannot write the crash marker {}: a crash is named on stderr only", crash_marker);
  try {
    if (const auto closed = db->close_interrupted_sync_runs())
      spdlog::warn("{} sync run(s) left running by a process that ended closed as interrupted",
                   closed);
  } catch (const store::StoreError &e) {
    spdlog::warn("closing interrupted sync runs failed: {}", e.what());
  }

  // No connector exists yet, so the plugins' state can move to the store before any use.
  services->state = std::make_shared<pipeline::StoreStateBackend>(db);
  std::shared_ptr<net::HttpClient> http;
  try {  // crm.http.v1, with each connection's configured rate limit (burst = requests)
    net::ClientOptions http_options;
    http_options.rate_limits = outbound_rate_limits(*loaded.config, *registry);
    http = std::make_shared<net::HttpClient>(std::move(http_options));
    services->http = http;
  } catch (const std::exception &e) {
    err << "crmhost run: outbound HTTP: " << e.what() << "\n";
    return 1;
  }
  pipeline::Engine engine(*loaded.config, registry, db);
  try {
    engine.start();
  } catch (const std::exception &e) {
    // A plugin's refusal of its settings: its words, masked as in the log.
    err << "crmhost run: " << logging::redact(e.what()) << "\n";
    return 1;
  }
  // Webhooks and health on the listen addresses; handlers run on their own pool because a
  // webhook call blocks on the plugin and the store commit.
  boost::asio::thread_pool http_handlers(std::max<uint32_t>(loaded.config->plugin_workers, 2));
  net::ServerOptions server_options;
  server_options.listen = loaded.config->listen;
  server_options.max_body = loaded.config->max_body;
  server_options.max_connections_per_client = loaded.config->max_connections_per_client;
  if (const auto &tls = loaded.config->tls)
    server_options.tls = net::ServerOptions::Tls{tls->certificate, tls->key};
  http_api::RouterContext router{engine, *db, loaded.config->admin_token,
                                 loaded.config->metrics_token,
                                 loaded.config->tls ? "https" : "http"};
  net::HttpServer server(signals_io, http_handlers, server_options,
                         [&](const net::HttpRequest &request, net::Respond respond) {
                           http_api::route_async(request, router, std::move(respond));
                         });
  try {
    server.start();
  } catch (const std::exception &e) {
    err << "crmhost run: " << e.what() << "\n";
    engine.stop();
    return 1;
  }
  spdlog::info("crmhost running {} pipeline(s), listening on {} (ports {})",
               engine.pipeline_names().size(), fmt::join(loaded.config->listen, ", "),
               fmt::join(server.ports(), ", "));

  std::mutex stop_mutex;
  std::condition_variable stop_requested;
  bool stopping = false;
  // Reloads (YAML, dlopen, plugin create, engine reload) run on the engine's control thread, one
  // at a time, never on the network thread that serves webhooks and the admin API.
  const auto reload = [&] {
    try {
      spdlog::info("SIGHUP: reloading the configuration");
      auto next = load_checked(run, *registry);
      if (!next.config) {
        for (const auto &problem : next.problems)
          spdlog::error("reload refused: {}", problem.to_string());
        spdlog::error("reload refused: the running configuration stays in force");
      } else {
        for (const auto &problem : engine.reload(*next.config))
          spdlog::error("reload: {}", problem);
        // The tokens, rate limits and log level apply at once; the listeners, TLS and the store
        // were bound at start.
        router.set_tokens(next.config->admin_token, next.config->metrics_token);
        http->set_rate_limits(outbound_rate_limits(*next.config, *registry));
        spdlog::set_level(spdlog::level::from_str(next.config->log_level));
        for (const auto &setting : restart_only_changes(*loaded.config, *next.config))
          spdlog::warn("reload: {} changed; it takes effect at the next start", setting);
        for (const auto &warning : next.warnings) spdlog::warn("config: {}", warning.to_string());
        spdlog::info("configuration reloaded");
      }
    } catch (const std::exception &e) {
      spdlog::error("reload failed: {}; the running configuration stays in force", e.what());
    }
  };
  std::function<void(const boost::system::error_code &, int)> on_signal;
  on_signal = [&](const boost::system::error_code &ec, int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      engine.post_control(reload);
      signals.async_wait(on_signal);
      return;
    }
    spdlog::info("{}: stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
    std::lock_guard lock(stop_mutex);
    stopping = true;
    stop_requested.notify_all();
  };
  signals.async_wait(on_signal);
  std::thread network([&] { signals_io.run(); });
  {
    std::unique_lock lock(stop_mutex);
    stop_requested.wait(lock, [&] { return stopping; });
  }
  server.stop();  // no new webhooks; in-flight ones finish on the handler pool
  http_handlers.join();
  engine.stop();
  signals_io.stop();
  network.join();
  spdlog::info("crmhost stopped");
  return 0;
}

}  // namespace crmhost::cli
