#include "cli/cli.hpp"

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
    "  help           print this text\n";

}  // namespace

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
  if (command == "plugins") return plugins_command(rest, out, err);
  if (command == "run") return run_command(rest, out, err);
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
