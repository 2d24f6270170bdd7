#include <cstdlib>
#include <optional>
#include <ostream>

#include "cli/cli.hpp"
#include "store/store.hpp"

namespace crmhost::cli {

int migrate_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err) {
  std::string uri;
  std::optional<int> target;
  bool status_only = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &arg = args[i];
    if ((arg == "--store" || arg == "--to") && i + 1 == args.size()) {
      err << "crmhost migrate: " << arg << " needs a value\n";
      return 2;
    }
    if (arg == "--store") {
      uri = args[++i];
    } else if (arg == "--to") {
      try {
        target = std::stoi(args[++i]);
      } catch (const std::exception &) {
        err << "crmhost migrate: --to needs a schema version number\n";
        return 2;
      }
    } else if (arg == "--status") {
      status_only = true;
    } else {
      err << "crmhost migrate: unknown argument '" << arg << "'\n";
      return 2;
    }
  }
  if (uri.empty()) {
    if (const char *env = std::getenv("CRMHOST_STORE"); env && *env) uri = env;
  }
  if (uri.empty()) {
    err << "crmhost migrate: name the store with --store URI (or CRMHOST_STORE), e.g. "
           "sqlite:///var/lib/crmhost/state.db\n";
    return 2;
  }
  try {
    store::StoreOptions options;
    options.apply_migrations = false;
    auto db = store::open_store(uri, options);
    const int before = db->schema_version();
    const int latest = store::latest_schema_version();
    if (status_only) {
      out << store::redact_uri(uri) << ": schema version " << before << " (this crmhost: " << latest
          << ")\n";
      return 0;
    }
    const int after = db->migrate(target);
    if (after == before)
      out << store::redact_uri(uri) << ": schema version " << after << ", nothing to apply\n";
    else
      out << store::redact_uri(uri) << ": migrated schema " << before << " -> " << after << "\n";
    return 0;
  } catch (const store::StoreError &e) {
    err << "crmhost migrate: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace crmhost::cli
