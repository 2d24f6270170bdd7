#include <csignal>
#include <ostream>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "cli/cli.hpp"
#include "config/config.hpp"
#include "pipeline/engine.hpp"
#include "plugins/plugin_registry.hpp"
#include "store/store.hpp"
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
  boost::asio::io_context signals_io;
  boost::asio::signal_set signals(signals_io, SIGTERM, SIGINT, SIGHUP);

  auto registry = std::make_shared<plugins::PluginRegistry>();
  auto loaded = load_checked(run, *registry);
  if (!loaded.config) {
    for (const auto &problem : loaded.problems) err << problem.to_string() << "\n";
    err << "crmhost run: the configuration is invalid; not starting\n";
    return 1;
  }
  logging::setup(loaded.config->log_level, loaded.config->log_format);

  std::shared_ptr<store::Store> db;
  try {
    db = store::open_store(loaded.config->store);
  } catch (const store::StoreError &e) {
    err << "crmhost run: store " << store::redact_uri(loaded.config->store) << ": " << e.what()
        << "\n";
    return 1;
  }

  pipeline::Engine engine(*loaded.config, registry, db);
  try {
    engine.start();
  } catch (const std::exception &e) {
    err << "crmhost run: " << e.what() << "\n";
    return 1;
  }
  spdlog::info("crmhost running {} pipeline(s)", engine.pipeline_names().size());

  std::function<void(const boost::system::error_code &, int)> on_signal;
  on_signal = [&](const boost::system::error_code &ec, int signal) {
    if (ec) return;
    if (signal == SIGHUP) {
      spdlog::info("SIGHUP: reloading the configuration");
      auto next = load_checked(run, *registry);
      if (!next.config) {
        for (const auto &problem : next.problems)
          spdlog::error("reload refused: {}", problem.to_string());
        spdlog::error("reload refused: the running configuration stays in force");
      } else {
        for (const auto &problem : engine.reload(*next.config))
          spdlog::error("reload: {}", problem);
        spdlog::info("configuration reloaded");
      }
      signals.async_wait(on_signal);
      return;
    }
    spdlog::info("{}: stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  };
  signals.async_wait(on_signal);
  signals_io.run();  // returns after SIGTERM/SIGINT, when no handler re-arms
  engine.stop();
  spdlog::info("crmhost stopped");
  return 0;
}

}  // namespace crmhost::cli
