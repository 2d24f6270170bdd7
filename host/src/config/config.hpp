#pragma once
// The host configuration: YAML (one file or a directory of them) loaded into these plain structs.
// Everything is validated at load time; a Config that exists is one the engine can run.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace crmhost::plugins {
class PluginRegistry;
}

namespace crmhost::config {

using Duration = std::chrono::milliseconds;

// 1-based line and column in the YAML file, as yaml-cpp's Mark (+1) gives them.
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
};

// One configuration problem: "file:line:column: message".
struct Problem {
  SourceLocation where;
  std::string message;
  std::string to_string() const;
};

struct RateLimit {
  uint32_t requests = 0;
  Duration per{0};
  uint32_t burst = 0;  // 0: the same as requests
};

struct ConnectionConfig {
  std::string name;
  std::string plugin;
  std::string settings_json = "{}";  // interpolated; contains secrets: never log it
  std::optional<RateLimit> rate_limit;
  SourceLocation where;
};

struct WebhookSource {
  std::string connection;
  std::string path;    // "/hooks/hubspot"; shared only by pipelines of one connection
  std::string object;  // the events this pipeline takes from deliveries; see webhook_object()
  SourceLocation where;
};

struct PollSource {
  std::string connection;
  std::string object;
  Duration every{std::chrono::minutes(15)};
  Duration jitter{0};  // default: 10% of every
  uint32_t page_size = 100;
  SourceLocation where;
};

// The map stage's configuration, kept as JSON for the mapping stage to interpret.
struct MapConfig {
  std::string preset;              // empty: none
  std::string fields_json = "{}";  // the `fields` mapping as a JSON object
  bool copy_unmapped = false;
  std::string default_country = "US";  // for the e164 transform
  SourceLocation where;
};

// Parsed once by the loader; the pipeline compares these, never their spellings.
enum class PushMode { upsert, create, update, remove };  // "delete" in YAML and on the ABI
enum class ConflictPolicy { source_wins, target_wins, newest_wins, fill_empty };
// What a delete at the source does to a linked target record (sink.push.on_delete).
//  keep_edited: deleted, unless the target was edited since this pipeline last wrote it and
//               after the delete: then it is kept, and restored on the deleting side.
//  propagate:   deleted whatever happened to it.
//  archive:     archived (recoverable) instead, where the sink plugin supports it.
// A delete that meets an edit is a recorded conflict under every policy.
enum class DeletePolicy { keep_edited, propagate, archive };
std::string_view to_string(DeletePolicy policy);
std::optional<DeletePolicy> parse_delete_policy(std::string_view text);
std::string_view to_string(PushMode mode);
std::string_view to_string(ConflictPolicy policy);
std::optional<PushMode> parse_push_mode(std::string_view text);
std::optional<ConflictPolicy> parse_conflict_policy(std::string_view text);

struct PushSink {
  std::string connection;
  std::string object;
  PushMode mode = PushMode::upsert;
  std::optional<std::string> match_on;  // field the target matches on
  // default source_wins (fill_empty for deals)
  ConflictPolicy conflict = ConflictPolicy::source_wins;
  SourceLocation where;
  // How match keys compare, on both sides (the host's first-link check and the plugin's
  // lookup): "trim", "lower". Empty: exactly.
  std::vector<std::string> match_normalize = {"trim", "lower"};
  DeletePolicy on_delete = DeletePolicy::keep_edited;
  // Per target field: the policy that decides a first link's differing values for that field
  // (overrides `conflict` there).
  std::map<std::string, ConflictPolicy> conflict_fields;
};

struct RetryPolicy {
  uint32_t attempts = 8;
  Duration backoff_min{std::chrono::seconds(1)};
  Duration backoff_max{std::chrono::minutes(5)};
};

struct PipelineConfig {
  std::string name;
  bool enabled = true;
  std::optional<WebhookSource> webhook;
  std::optional<PollSource> poll;
  MapConfig map;
  PushSink sink;
  RetryPolicy retry;
  uint32_t batch_size = 100;
  SourceLocation where;
};

struct Config {
  std::string store = "sqlite:///var/lib/crmhost/state.db";  // may hold a password: redact
  bool allow_inline_secrets = false;  // no warning for secrets written in the file itself
  std::vector<std::string> listen = {"127.0.0.1:8080"};
  std::string admin_token;          // secret
  std::string plugin_dir;           // empty: the built-in default
  std::string log_format = "text";  // text or json
  std::string log_level = "info";
  uint32_t io_threads = 1;
  uint32_t plugin_workers = 4;
  Duration shutdown_grace{std::chrono::seconds(30)};
  Duration claim_lease{std::chrono::seconds(60)};
  Duration retention{std::chrono::hours(24 * 7)};
  uint64_t max_body = 1 << 20;  // the largest request body (webhook, admin API) accepted, bytes
  // Open HTTP connections one peer IP address may hold; 0: no cap (the global cap remains).
  uint32_t max_connections_per_client = 64;
  // HTTPS on every listen address when set: PEM certificate chain and key files.
  struct Tls {
    std::string certificate;
    std::string key;
  };
  std::optional<Tls> tls;
  std::string metrics_token;  // secret; empty: GET /metrics needs no token
  std::map<std::string, ConnectionConfig> connections;
  std::map<std::string, PipelineConfig> pipelines;
};

struct LoadResult {
  std::optional<Config> config;   // set only when problems is empty
  std::vector<Problem> problems;  // in file order
  std::vector<Problem> warnings;  // valid but unwise (secrets written inline)
};

// Loads and validates files and/or directories (every *.yaml / *.yml inside, name order; maps
// such as `connections` and `pipelines` merge across files, a key defined twice is a problem).
// With a registry, plugins are checked too: the plugin exists, each connection's settings
// validate against the plugin's settings JSON Schema, and each pipeline's connections have the
// capabilities it needs (webhook, poll, fetch, push) and the objects it names.
struct LoadOptions {
  // An unset ${VAR} becomes the empty string instead of a problem: for commands that read the
  // store and the pipelines' names only (`crmhost status`), not the connections' secrets.
  bool unset_variables_empty = false;
};
LoadResult load(const std::vector<std::filesystem::path> &paths,
                const plugins::PluginRegistry *registry = nullptr, LoadOptions options = {});

// The `plugin_dir` the configuration at `paths` names (interpolated; relative to its file), or
// "" when it names none or it cannot be read (load() reports why). Lets a caller load the
// plugins that load() then checks against.
std::string plugin_dir_of(const std::vector<std::filesystem::path> &paths);

// Parses "500ms", "15s", "15m", "2h", "1d", or "1m30s"; nullopt when malformed.
std::optional<Duration> parse_duration(std::string_view text);

// The object whose webhook events a pipeline takes: `webhook.object`, else the poll's object,
// else the sink's. A delivery's events of other objects go to the other pipelines on the same
// path (providers such as HubSpot send every subscription to one URL), or are dropped.
std::string webhook_object(const PipelineConfig &pipeline);
// Parses "512", "64KiB", "1MiB", "1GiB", "10kB", "5MB"; nullopt when malformed.
std::optional<uint64_t> parse_size(std::string_view text);

}  // namespace crmhost::config
