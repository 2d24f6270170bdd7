#pragma once
// The crmhost command line. main() only forwards here, so every command is testable.
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "net/rate_limiter.hpp"
#include "plugins/plugin_registry.hpp"

namespace crmhost::cli {

// Runs one command; returns the process exit code.
int run(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);

// `crmhost plugins [--plugin-dir DIR] [--json] [FILE...]`
int plugins_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);

// `crmhost migrate [--store URI] [--to N] [--status]`
int migrate_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);

// `crmhost validate [--plugin-dir DIR] [--json] [--quiet] FILE|DIR...`: every problem of each
// configuration as file:line:column: message; exits 1 when there is any.
int validate_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);

// `crmhost run --config FILE|DIR [--plugin-dir DIR]`: the service.
int run_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);

// `crmhost status|replay|backfill ... --config FILE`: operator commands on a config's store.
int status_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);
int replay_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);
int backfill_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err);

// The plugin directory when none is given: $CRMHOST_PLUGIN_DIR, else the installed default.
std::string default_plugin_dir();

// The outbound rate limits of every connection: its configured `rate_limit`, else the default
// its plugin declares, plus the plugin's named buckets (say, a provider's separate search limit).
std::map<std::string, net::RateSpec> outbound_rate_limits(const config::Config &config,
                                                          const plugins::PluginRegistry &registry);

}  // namespace crmhost::cli
