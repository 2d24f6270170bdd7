#include "cli/cli.hpp"

#include <algorithm>
#include <cstdlib>
#include <ostream>

#include "crmhost/plugin.h"
#include "plugins/plugin_library.hpp"

namespace crmhost::cli {

namespace {

constexpr const char *kUsage =
    "usage: crmhost <command> [options]\n"
    "\n"
    "commands:\n"
    "  run --config FILE|DIR [--plugin-dir DIR]\n"
    "                 run the pipelines as a service (SIGTERM stops, SIGHUP reloads)\n"
    "  status --config FILE\n"
    "                 pipelines with queue depths by status, cursor age and the last run\n"
    "  replay PIPELINE [--status dead] [--since TIME] [--until TIME] [--error TEXT] --config FILE\n"
    "                 put matching failed/dead events back in the queue\n"
    "  backfill PIPELINE [--since TIME] [--dry-run] --config FILE\n"
    "                 read the source from the beginning into the queue (progress on a\n"
    "                 terminal); --dry-run reports what would be pushed and queues nothing\n"
    "  plugins [--plugin-dir DIR] [--json] [FILE...]\n"
    "                 list the plugins in DIR (and the files named), with refused files and why;\n"
    "                 exits 1 when any file was refused\n"
    "  migrate [--store URI] [--to N] [--status]\n"
    "                 apply the store's schema migrations (URI also from $CRMHOST_STORE);\n"
    "                 --status only prints the schema version\n"
    "  validate [--plugin-dir DIR] [--json] [--quiet] FILE|DIR...\n"
    "                 check configurations; prints every problem as file:line:column: message\n"
    "                 and exits 1, prints nothing and exits 0 when all is well\n"
    "  version        print the crmhost version and plugin ABI version\n"
    "  help           print this text\n"
    "\n"
    "exit status: 0 success, 1 the command failed (invalid configuration, store or plugin\n"
    "error, refused plugins for `plugins`), 2 wrong usage. Errors go to stderr.\n";

// `crmhost COMMAND --help`: that command's lines of the usage text.
int print_command_help(const std::string &command, std::ostream &out, std::ostream &err) {
  const std::string usage = kUsage;
  const std::string marker = "\n  " + command + " ";
  const auto begin = usage.find(marker);
  if (begin == std::string::npos) {
    err << "crmhost: unknown command '" << command << "'\n";
    return 2;
  }
  auto end = usage.find("\n  ", begin + marker.size());
  while (end != std::string::npos && usage.compare(end, 4, "\n   ") == 0)
    end = usage.find("\n  ", end + 1);
  out << "usage: crmhost " << usage.substr(begin + 3, end - begin - 3) << "\n";
  return 0;
}

}  // namespace

std::map<std::string, net::RateSpec> outbound_rate_limits(const config::Config &config,
                                                          const plugins::PluginRegistry &registry) {
  std::map<std::string, net::RateSpec> limits;
  for (const auto &[name, connection] : config.connections) {
    if (auto plugin = registry.find(connection.plugin))
      for (const auto &[bucket, limit] : plugin->description().rate_limits) {
        const net::RateSpec spec{limit.requests, std::chrono::milliseconds(limit.per_ms),
                                 limit.burst};
        limits[bucket == "default" ? name : name + "/" + bucket] = spec;
      }
    if (connection.rate_limit)  // the operator's setting wins over the plugin's default
      limits[name] = {
          connection.rate_limit->requests,
          std::chrono::duration_cast<std::chrono::milliseconds>(connection.rate_limit->per),
          connection.rate_limit->burst};
  }
  return limits;
}

std::string default_plugin_dir() {
  if (const char *dir = std::getenv("CRMHOST_PLUGIN_DIR"); dir && *dir) return dir;
  return CRMHOST_DEFAULT_PLUGIN_DIR;
}

int run(const std::vector<std::string> &args, std::ostream &out, std::ostream &err) {
  if (args.empty()) {
    err << kUsage;
    return 2;
  }
  const std::string &command = args.front();
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command != "run" && command != "help" &&
      std::find_if(rest.begin(), rest.end(),
                   [](const std::string &a) { return a == "--help" || a == "-h"; }) != rest.end())
    return print_command_help(command, out, err);
  if (command == "plugins") return plugins_command(rest, out, err);
  if (command == "run") return run_command(rest, out, err);
  if (command == "status") return status_command(rest, out, err);
  if (command == "replay") return replay_command(rest, out, err);
  if (command == "backfill") return backfill_command(rest, out, err);
  if (command == "migrate") return migrate_command(rest, out, err);
  if (command == "validate") return validate_command(rest, out, err);
  if (command == "version" || command == "--version") {
    out << "crmhost " << CRMHOST_VERSION << " (plugin ABI "
        << plugins::format_version(CRM_ABI_VERSION) << ")\n";
    return 0;
  }
  if (command == "help" || command == "--help" || command == "-h") {
    out << kUsage;
    return 0;
  }
  err << "crmhost: unknown command '" << command << "'\n\n" << kUsage;
  return 2;
}

}  // namespace crmhost::cli
