#include <map>
#include <memory>
#include <ostream>

#include <rapidjson/document.h>

#include "cli/cli.hpp"
#include "config/config.hpp"
#include "plugins/plugin_registry.hpp"
#include "store/uri.hpp"
#include "util/crash.hpp"
#include "util/json.hpp"

namespace crmhost::cli {

namespace {

constexpr const char *kValidateUsage =
    "usage: crmhost validate [--plugin-dir DIR] [--json] [--quiet] FILE|DIR...\n"
    "Checks each configuration (a file, or a directory whose *.yaml files merge into one) with\n"
    "the plugins of DIR (default: the config's plugin_dir, else $CRMHOST_PLUGIN_DIR, else the\n"
    "installed directory). Prints every problem as file:line:column: message and exits 1;\n"
    "prints nothing and exits 0 when all is well. Warnings (a valid but unwise setting, such\n"
    "as a secret written inline) are printed as file:line:column: warning: message and do not\n"
    "change the exit status. --quiet prints nothing at all; --json prints {\"valid\": bool,\n"
    "\"problems\": [{\"file\", \"line\", \"column\", \"message\"}], \"warnings\": [...]} always.\n";

rapidjson::Value json_list(const std::vector<config::Problem> &problems,
                           rapidjson::Document::AllocatorType &alloc) {
  rapidjson::Value list(rapidjson::kArrayType);
  for (const auto &p : problems) {
    rapidjson::Value item(rapidjson::kObjectType);
    item.AddMember("file", rapidjson::Value(p.where.file.c_str(), alloc), alloc);
    item.AddMember("line", p.where.line, alloc);
    item.AddMember("column", p.where.column, alloc);
    item.AddMember("message", rapidjson::Value(p.message.c_str(), alloc), alloc);
    list.PushBack(item, alloc);
  }
  return list;
}

void print_json(const std::vector<config::Problem> &problems,
                const std::vector<config::Problem> &warnings, std::ostream &out) {
  rapidjson::Document doc(rapidjson::kObjectType);
  auto &alloc = doc.GetAllocator();
  doc.AddMember("valid", problems.empty(), alloc);
  doc.AddMember("problems", json_list(problems, alloc), alloc);
  doc.AddMember("warnings", json_list(warnings, alloc), alloc);
  out << json::to_pretty_string(doc) << "\n";
}

// Where a crash while loading the plugins is recorded: where `crmhost run` records one
// ($STATE_DIRECTORY under systemd, where validate is the unit's ExecStartPre; else beside the
// SQLite store of the first configuration, read without its plugins), so the next start names
// the plugin. Empty (stderr only) when neither is known.
std::string crash_marker_for(const std::string &path) {
  if (auto marker = crash::marker_path_for({}); !marker.empty()) return marker;
  try {
    const auto plain = config::load({std::filesystem::path(path)});
    if (!plain.config) return {};
    const auto where = store::parse_store_uri(plain.config->store);
    if (where.backend != store::Backend::sqlite) return {};
    return crash::marker_path_for(std::filesystem::absolute(where.sqlite_path).lexically_normal());
  } catch (const std::exception &) {
    return {};
  }
}

}  // namespace

int validate_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err) {
  std::string plugin_dir;
  bool as_json = false;
  bool quiet = false;
  std::vector<std::string> paths;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--json") {
      as_json = true;
    } else if (args[i] == "--quiet" || args[i] == "-q") {
      quiet = true;
    } else if (args[i] == "--help" || args[i] == "-h") {
      out << kValidateUsage;
      return 0;
    } else if (args[i] == "--plugin-dir") {
      if (i + 1 == args.size()) {
        err << "crmhost validate: --plugin-dir needs a directory\n";
        return 2;
      }
      plugin_dir = args[++i];
    } else if (args[i].rfind("--plugin-dir=", 0) == 0) {
      plugin_dir = args[i].substr(13);
    } else if (!args[i].empty() && args[i][0] == '-') {
      err << "crmhost validate: unknown option '" << args[i] << "'\n" << kValidateUsage;
      return 2;
    } else {
      paths.push_back(args[i]);
    }
  }
  if (paths.empty()) {
    err << "crmhost validate: name at least one configuration file or directory\n"
        << kValidateUsage;
    return 2;
  }
  // Loading runs the plugins' code (init, describe): a plugin that crashes there is named, as
  // under `crmhost run`, and the line a crashed `run` left for its next start is kept.
  crash::install_keeping_marker(crash_marker_for(paths.front()));
  std::map<std::string, std::unique_ptr<plugins::PluginRegistry>> registries;  // by directory
  std::vector<config::Problem> problems, warnings;
  for (const auto &path : paths) {
    const std::vector<std::filesystem::path> config_paths = {path};
    std::string dir = plugin_dir;
    if (dir.empty()) dir = config::plugin_dir_of(config_paths);
    if (dir.empty()) dir = default_plugin_dir();
    auto &registry = registries[dir];
    if (!registry) {
      registry = std::make_unique<plugins::PluginRegistry>();
      registry->load_directory(dir);
    }
    auto result = config::load(config_paths, registry.get());
    problems.insert(problems.end(), result.problems.begin(), result.problems.end());
    warnings.insert(warnings.end(), result.warnings.begin(), result.warnings.end());
  }
  if (as_json) {
    print_json(problems, warnings, out);
  } else if (!quiet) {
    for (const auto &problem : problems) out << problem.to_string() << "\n";
    for (auto warning : warnings) {
      warning.message = "warning: " + warning.message;
      out << warning.to_string() << "\n";
    }
  }
  return problems.empty() ? 0 : 1;
}

}  // namespace crmhost::cli
