// Operator commands that work on a configuration's store and plugins while the service runs:
// status, replay and backfill.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <map>
#include <ostream>
#include <set>
#include <sstream>

#include <unistd.h>

#include "cli/cli.hpp"
#include "config/config.hpp"
#include "net/http_client.hpp"
#include "pipeline/event_payload.hpp"
#include "pipeline/first_contact.hpp"
#include "pipeline/poller.hpp"
#include "pipeline/processor.hpp"
#include "pipeline/store_state.hpp"
#include "plugins/plugin_registry.hpp"
#include "store/store.hpp"
#include "store/uri.hpp"
#include "util/json.hpp"
#include "util/logging.hpp"
#include "util/time.hpp"

namespace crmhost::cli {

namespace {

struct OpsArgs {
  std::vector<std::filesystem::path> config_paths;
  std::string plugin_dir;
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // --name value
  std::set<std::string> flags;                 // --name
};

// Parses `--config F`, `--plugin-dir D`, the value options named in `valued` and the flags in
// `switches`; anything else is an error written to `err`.
std::optional<OpsArgs> parse_ops(const char *command, const std::vector<std::string> &args,
                                 const std::set<std::string> &valued,
                                 const std::set<std::string> &switches, std::ostream &err) {
  OpsArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &a = args[i];
    const bool takes_value = a == "--config" || a == "--plugin-dir" || valued.count(a);
    if (takes_value && i + 1 == args.size()) {
      err << "crmhost " << command << ": " << a << " needs a value\n";
      return std::nullopt;
    }
    if (a == "--config")
      out.config_paths.emplace_back(args[++i]);
    else if (a == "--plugin-dir")
      out.plugin_dir = args[++i];
    else if (valued.count(a))
      out.options[a] = args[++i];
    else if (switches.count(a))
      out.flags.insert(a);
    else if (!a.empty() && a[0] == '-') {
      err << "crmhost " << command << ": unknown option '" << a << "'\n";
      return std::nullopt;
    } else
      out.positional.push_back(a);
  }
  if (out.config_paths.empty()) {
    if (const char *env = std::getenv("CRMHOST_CONFIG"); env && *env)
      out.config_paths.emplace_back(env);
  }
  if (out.config_paths.empty()) {
    err << "crmhost " << command
        << ": name the configuration with --config FILE (or CRMHOST_CONFIG)\n";
    return std::nullopt;
  }
  return out;
}

std::optional<config::Config> load_config(const OpsArgs &args, plugins::PluginRegistry *registry,
                                          std::ostream &err, config::LoadOptions options = {}) {
  if (registry) {
    std::string dir = args.plugin_dir;
    if (dir.empty()) dir = config::plugin_dir_of(args.config_paths);
    if (dir.empty()) dir = default_plugin_dir();
    registry->load_directory(dir);
  }
  auto loaded = config::load(args.config_paths, registry, options);
  for (const auto &problem : loaded.problems) err << problem.to_string() << "\n";
  return loaded.config;
}

// A time given as ISO 8601 or as a duration before now ("7d", "36h").
std::optional<int64_t> parse_since(const std::string &text) {
  if (auto absolute = timeutil::parse_iso8601_ms(text)) return absolute;
  if (auto ago = config::parse_duration(text))
    return store::to_unix_ms(store::now_ms()) - ago->count();
  return std::nullopt;
}

std::string format_count(int64_t n) {
  return std::to_string(n);
}

}  // namespace

int status_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err) {
  auto parsed = parse_ops("status", args, {}, {"--help"}, err);
  if (!parsed) return 2;
  // Queue depths need the store and the pipelines' names, not the connections' secrets.
  config::LoadOptions lenient;
  lenient.unset_variables_empty = true;
  auto cfg = load_config(*parsed, nullptr, err, lenient);
  if (!cfg) return 1;
  try {
    // A store that does not exist yet is not created here: nothing has run.
    const auto where = store::parse_store_uri(cfg->store);
    if (where.backend == store::Backend::sqlite &&
        !std::filesystem::exists(std::filesystem::absolute(where.sqlite_path))) {
      out << "Nothing has run yet: the store "
          << std::filesystem::absolute(where.sqlite_path).string()
          << " does not exist (crmhost run creates it).\n";
      return 0;
    }
    store::StoreOptions options;
    options.apply_migrations = false;
    auto db = store::open_store(cfg->store, options);
    if (db->schema_version() == 0) {
      out << "Nothing has run yet: the store " << store::redact_uri(cfg->store)
          << " has no tables (crmhost run or crmhost migrate creates them).\n";
      return 0;
    }
    const auto now = store::to_unix_ms(store::now_ms());
    out << std::left << std::setw(24) << "PIPELINE" << std::setw(9) << "ENABLED" << std::setw(9)
        << "PENDING" << std::setw(10) << "INFLIGHT" << std::setw(8) << "FAILED" << std::setw(7)
        << "DEAD" << std::setw(10) << "DONE" << std::setw(14) << "CURSOR AGE"
        << "LAST RUN\n";
    for (const auto &[name, pipeline] : cfg->pipelines) {
      std::map<store::EventStatus, int64_t> counts;
      for (const auto &c : db->count_by_status(name)) counts[c.status] += c.count;
      std::string cursor_age = "-";
      if (pipeline.poll)
        if (auto cursor = db->get_cursor(name, pipeline.poll->object))
          cursor_age = std::to_string((now - store::to_unix_ms(cursor->updated_at)) / 1000) + "s";
      std::string last_run = "-";
      auto runs = db->list_sync_runs(name, 1);
      if (!runs.empty())
        last_run = std::string(store::to_string(runs[0].kind)) + " " +
                   std::string(store::to_string(runs[0].status)) + " " +
                   timeutil::format_iso8601_ms(store::to_unix_ms(runs[0].started_at));
      out << std::setw(24) << name << std::setw(9) << (pipeline.enabled ? "yes" : "no")
          << std::setw(9) << format_count(counts[store::EventStatus::pending]) << std::setw(10)
          << format_count(counts[store::EventStatus::in_flight]) << std::setw(8)
          << format_count(counts[store::EventStatus::failed]) << std::setw(7)
          << format_count(counts[store::EventStatus::dead]) << std::setw(10)
          << format_count(counts[store::EventStatus::done]) << std::setw(14) << cursor_age
          << last_run << "\n";
    }
    // Connections whose plugin keeps something alive at the provider (a notification channel):
    // the last upkeep a host wrote, so a stopped or crashed host's channel state shows too.
    const auto upkeep = db->list_connection_status();
    if (!upkeep.empty()) {
      out << "\nCONNECTION UPKEEP\n";
      for (const auto &c : upkeep) {
        rapidjson::Document status;
        if (json::try_parse(c.json, status, "upkeep status") || !status.IsObject()) continue;
        const auto *ok = json::member(status, "ok");
        out << "  " << std::setw(22) << c.connection << " "
            << (ok && ok->IsBool() && ok->GetBool() ? "ok    " : "FAILED") << " "
            << json::get_string(status, "reason").value_or("-") << " at "
            << json::get_string(status, "at").value_or("-") << ", next "
            << json::get_string(status, "next_at").value_or("none");
        if (const auto *plugin = json::member(status, "plugin"); plugin && plugin->IsObject())
          out << " " << json::to_string(*plugin);
        if (auto error = json::get_string(status, "error")) out << " error: " << *error;
        out << "\n";
      }
    }
    // Open conflicts (stale updates under newest_wins, two sources matching one target).
    std::vector<store::Conflict> conflicts;
    for (const auto &[name, pipeline] : cfg->pipelines) {
      auto some = db->list_conflicts(name, true, 20);
      conflicts.insert(conflicts.end(), some.begin(), some.end());
    }
    if (!conflicts.empty()) {
      out << "\nOPEN CONFLICTS (" << conflicts.size() << (conflicts.size() >= 20 ? "+" : "")
          << ")\n";
      for (const auto &c : conflicts) {
        rapidjson::Document detail;
        std::string reason = "-";
        if (!json::try_parse(c.detail, detail, "conflict detail") && detail.IsObject())
          reason = json::get_string(detail, "reason").value_or("-");
        out << "  #" << c.id << " " << c.pipeline << " " << c.object << " " << c.source_connection
            << "/" << c.source_id << " -> " << c.target_connection << "/" << c.target_id << " "
            << timeutil::format_iso8601_ms(store::to_unix_ms(c.created_at)) << " " << reason
            << "\n";
      }
    }
    return 0;
  } catch (const store::StoreError &e) {
    err << "crmhost status: store " << store::redact_uri(cfg->store) << ": " << e.what() << "\n";
    return 1;
  }
}

int replay_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err) {
  auto parsed = parse_ops("replay", args, {"--status", "--since", "--until", "--error"}, {}, err);
  if (!parsed) return 2;
  if (parsed->positional.size() != 1) {
    err << "crmhost replay: name one pipeline: crmhost replay PIPELINE [--status dead] "
           "[--since TIME] [--until TIME] [--error TEXT] --config FILE\n";
    return 2;
  }
  auto cfg = load_config(*parsed, nullptr, err);
  if (!cfg) return 1;
  const std::string &pipeline = parsed->positional[0];
  if (!cfg->pipelines.count(pipeline)) {
    err << "crmhost replay: the configuration has no pipeline \"" << pipeline << "\"\n";
    return 2;
  }
  store::ReplayFilter filter;
  filter.pipeline = pipeline;
  try {
    if (auto s = parsed->options.find("--status"); s != parsed->options.end())
      filter.statuses = {store::parse_event_status(s->second)};
  } catch (const store::StoreError &e) {
    err << "crmhost replay: " << e.what() << "\n";
    return 2;
  }
  for (const char *bound : {"--since", "--until"}) {
    auto it = parsed->options.find(bound);
    if (it == parsed->options.end()) continue;
    auto when = parse_since(it->second);
    if (!when) {
      err << "crmhost replay: " << bound << " needs an ISO 8601 time or a duration such as 7d\n";
      return 2;
    }
    (std::string(bound) == "--since" ? filter.received_from : filter.received_to) =
        store::from_unix_ms(*when);
  }
  if (auto e = parsed->options.find("--error"); e != parsed->options.end())
    filter.error_contains = e->second;
  try {
    auto db = store::open_store(cfg->store);
    const auto replayed = db->replay(filter);
    out << "replayed " << replayed << " event(s) of pipeline " << pipeline << "\n";
    return 0;
  } catch (const store::StoreError &e) {
    err << "crmhost replay: " << e.what() << "\n";
    return 1;
  }
}

int backfill_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err) {
  auto parsed = parse_ops("backfill", args, {"--since"}, {"--dry-run"}, err);
  if (!parsed) return 2;
  if (parsed->positional.size() != 1) {
    err << "crmhost backfill: name one pipeline: crmhost backfill PIPELINE [--since TIME] "
           "[--dry-run] --config FILE\n";
    return 2;
  }
  // The plugin gets the host services `crmhost run` gives it: crm.http.v1 with the
  // connection's rate limit, and its state in the store.
  auto services = std::make_shared<plugins::HostServices>();
  plugins::PluginRegistry registry(services);
  auto cfg = load_config(*parsed, &registry, err);
  if (!cfg) return 1;
  const std::string &name = parsed->positional[0];
  auto found = cfg->pipelines.find(name);
  if (found == cfg->pipelines.end() || !found->second.poll) {
    err << "crmhost backfill: no pipeline \"" << name
        << "\" with a poll source in the configuration\n";
    return 2;
  }
  const auto &pipeline = found->second;
  pipeline::PollOptions options;
  options.lane = pipeline::PollLane::backfill;
  options.from_beginning = true;
  options.dry_run = parsed->flags.count("--dry-run") > 0;
  if (auto since = parsed->options.find("--since"); since != parsed->options.end()) {
    options.since_ms = parse_since(since->second);
    if (!options.since_ms) {
      err << "crmhost backfill: --since needs an ISO 8601 time or a duration such as 7d\n";
      return 2;
    }
  }
  const auto &connection = cfg->connections.at(pipeline.poll->connection);
  std::shared_ptr<store::Store> db;
  try {
    db = store::open_store(cfg->store);
  } catch (const store::StoreError &e) {
    err << "crmhost backfill: " << e.what() << "\n";
    return 1;
  }
  services->state = std::make_shared<pipeline::StoreStateBackend>(db);
  try {
    net::ClientOptions http_options;
    http_options.rate_limits = outbound_rate_limits(*cfg, registry);
    services->http = std::make_shared<net::HttpClient>(std::move(http_options));
  } catch (const std::exception &e) {
    err << "crmhost backfill: outbound HTTP: " << e.what() << "\n";
    return 1;
  }
  auto created =
      registry.find(connection.plugin)->create_connector(connection.name, connection.settings_json);
  if (!created) {
    // Plugin and provider text: masked as in the log and the admin API.
    err << "crmhost backfill: connection " << connection.name << ": "
        << logging::redact(created.error().describe()) << "\n";
    return 1;
  }

  // What a dry run would push: the processor's own decision, on the mapped record, against the
  // entity links of earlier pushes.
  int64_t would_create = 0, would_update = 0, unchanged = 0, deletes = 0, unmappable = 0;
  const auto map = pipeline::compiled_map(pipeline.map);
  if (options.dry_run)
    options.on_page = [&](const std::vector<plugins::Record> &records) {
      for (const auto &r : records) {
        const auto verdict = pipeline::decide_push(pipeline, map, *db, connection.name, r);
        if (!verdict.error.empty()) {
          ++unmappable;
          continue;
        }
        switch (verdict.decision) {
          case pipeline::PushDecision::create:
            ++would_create;
            break;
          case pipeline::PushDecision::update:
            ++would_update;
            break;
          case pipeline::PushDecision::delete_target:
            ++deletes;
            break;
          case pipeline::PushDecision::unchanged:
          case pipeline::PushDecision::nothing_to_delete:
            ++unchanged;
            break;
        }
      }
    };
  const bool terminal = ::isatty(STDOUT_FILENO);
  const auto started = std::chrono::steady_clock::now();
  options.on_progress = [&](const store::SyncRunCounts &c, std::optional<uint64_t> remaining) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const double rate = seconds > 0 ? static_cast<double>(c.fetched) / seconds : 0.0;
    std::ostringstream line;
    if (terminal && remaining) {
      // [#########-----------] 45%
      const double done =
          static_cast<double>(c.fetched) / static_cast<double>(c.fetched + *remaining);
      const int filled = static_cast<int>(done * 20);
      line << "[" << std::string(filled, '#') << std::string(20 - filled, '-') << "] "
           << static_cast<int>(done * 100) << "% ";
    }
    line << "backfill " << name << ": " << c.fetched << " read, " << c.enqueued << " queued, "
         << c.duplicates << " already queued, " << std::fixed << std::setprecision(0) << rate
         << " records/s, " << std::setprecision(1) << seconds << "s elapsed, ETA ";
    if (remaining && rate > 0)
      line << std::setprecision(0) << static_cast<double>(*remaining) / rate << "s";
    else
      line << (remaining ? "0s" : "unknown (the source does not say how many remain)");
    if (terminal)
      out << "\r\033[K" << line.str() << std::flush;
    else
      out << line.str() << "\n";
  };
  // The first contact of the two sides, planned on the match key before anything is written.
  std::optional<pipeline::FirstContactPlan> plan;
  if (options.dry_run && pipeline.sink.match_on) {
    const auto &sink_connection = cfg->connections.at(pipeline.sink.connection);
    auto sink_plugin = registry.find(sink_connection.plugin);
    if (sink_plugin && sink_plugin->description().has_capability("poll")) {
      std::unique_ptr<plugins::Connector> sink_owned;
      plugins::Connector *sink = created.value().get();
      if (sink_connection.name != connection.name) {
        auto made =
            sink_plugin->create_connector(sink_connection.name, sink_connection.settings_json);
        if (!made) {
          err << "crmhost backfill: connection " << sink_connection.name << ": "
              << logging::redact(made.error().describe()) << "\n";
          return 1;
        }
        sink_owned = std::move(made.value());
        sink = sink_owned.get();
      }
      std::optional<std::string> reverse;
      for (const auto &[other_name, other] : cfg->pipelines)
        if (other_name != name && other.sink.connection == connection.name &&
            other.sink.object == pipeline.poll->object)
          reverse = other_name;
      plan = pipeline::plan_first_contact(pipeline, map, *db, *created.value(), *sink, reverse);
    }
  }
  const auto outcome = pipeline::run_poll(pipeline, *db, *created.value(), options);
  if (terminal) out << "\n";
  if (plan)
    out << "first contact: " << pipeline::describe(*plan, pipeline, connection.name) << "\n";
  if (options.dry_run)
    out << "dry run: " << outcome.counts.fetched << " records read; would create " << would_create
        << ", update " << would_update << ", delete " << deletes << "; " << unchanged
        << " unchanged"
        << (unmappable ? "; " + std::to_string(unmappable) + " cannot be mapped" : "")
        << "; nothing was queued or pushed\n";
  else
    out << "backfill run " << outcome.run_id << ": " << outcome.counts.enqueued << " queued, "
        << outcome.counts.duplicates << " already queued, " << outcome.pages << " pages\n";
  if (!outcome.ok) {
    err << "crmhost backfill: " << logging::redact(outcome.error) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace crmhost::cli
