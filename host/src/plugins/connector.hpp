#pragma once
// The C++ face of one connector instance. The rest of the host calls these methods and never
// touches the C types: requests are built and results validated here, so a plugin that answers
// malformed JSON yields a CallError naming the defect instead of bad data downstream.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "crmhost/plugin.h"
#include "plugins/call_error.hpp"

namespace crmhost::plugins {

class PluginLibrary;

using Headers = std::vector<std::pair<std::string, std::string>>;

// What happened to a record: "upsert" or "delete" on the ABI, parsed once by the adapter.
enum class EventKind { upsert, remove };
std::string_view to_string(EventKind kind);
std::optional<EventKind> parse_event_kind(std::string_view text);

struct Record {
  std::string id;
  EventKind event = EventKind::upsert;
  std::optional<std::string> modified_at;  // as the plugin reports it (ISO 8601 preferred)
  std::string data_json = "{}";            // the record's fields, a JSON object
};

struct CheckResult {
  bool ok = false;
  std::string message;
  std::string raw_json;
};

struct PollRequest {
  std::string object;
  std::optional<std::string> cursor;  // empty: from the beginning
  uint32_t limit = 100;
};

struct PollPage {
  std::vector<Record> records;
  std::optional<std::string> next_cursor;
  bool more = false;                  // the plugin returned CRM_MORE
  std::optional<uint64_t> remaining;  // records left after this page, when the source knows
};

struct FetchResult {
  std::vector<Record> records;
  std::vector<std::string> missing;
};

struct PushInput {
  std::string ref;                // the caller's reference, echoed in the result
  std::optional<std::string> id;  // the target id when known (from an entity link)
  std::string data_json;          // JSON object of target fields
};

struct PushRequest {
  std::string object;
  std::string mode = "upsert";  // "upsert", "create", "update", "delete", "match", "archive"
  std::optional<std::string> match_on;
  std::vector<PushInput> records;
  std::vector<std::string> match_normalize = {};  // "trim", "lower": how match keys compare
};

struct PushResult {
  std::string ref;
  bool ok = false;
  std::string id;        // the target id when ok
  bool created = false;  // when ok: a new record was made
  std::string code;      // when not ok: "invalid_input", "not_found", ...
  bool retryable = false;
  std::string message;
};

struct WebhookRequest {
  std::string method;
  std::string url;  // the full URI as received, with scheme and host as configured
  Headers headers;
  std::string body;  // raw bytes
  int64_t received_at_ms = 0;
};

struct WebhookEvent {
  std::string object;
  std::string id;
  EventKind event = EventKind::upsert;
  std::optional<std::string> event_id;  // the provider's own id for this event
  std::optional<std::string> occurred_at;
  std::optional<std::string> data_json;  // absent: the event names the record only; fetch it
};

struct WebhookReply {
  int status = 200;
  Headers headers;
  std::string body;
};

struct WebhookResult {
  std::vector<WebhookEvent> events;
  std::optional<WebhookReply> reply;  // e.g. a subscription handshake
};

// What a connector's periodic upkeep (crm.maintenance.v1) answered.
struct MaintenanceResult {
  int64_t next_in_ms = 0;          // 0: no further call until the next start
  std::string status_json = "{}";  // a JSON object, shown by `crmhost status` and the admin API
};

class Connector {
 public:
  ~Connector();
  Connector(const Connector &) = delete;
  Connector &operator=(const Connector &) = delete;

  const std::string &connection() const;
  const PluginLibrary &plugin() const { return *plugin_; }

  // [instance-serialized] These block, so the host runs them on its blocking pool. Concurrent
  // calls on one Connector are serialized here, as the ABI promises the plugin.
  Outcome<CheckResult> check();
  Outcome<PollPage> poll(const PollRequest &request);
  Outcome<FetchResult> fetch(const std::string &object, const std::vector<std::string> &ids);
  Outcome<std::vector<PushResult>> push(const PushRequest &request);
  Outcome<WebhookResult> webhook(const WebhookRequest &request);
  // Periodic upkeep; `reason` is "start", "periodic" or "shutdown". CRM_ERR_UNSUPPORTED when
  // the plugin does not offer crm.maintenance.v1.
  Outcome<MaintenanceResult> maintain(std::string_view reason);

  // [thread-safe] Asks a running call to stop; no effect when the plugin lacks cancel.
  void cancel();

 private:
  friend class PluginLibrary;
  Connector(std::shared_ptr<const PluginLibrary> plugin, std::unique_ptr<crm_host_instance> host,
            crm_connector *handle);

  struct RawResult {
    crm_status status = CRM_OK;
    std::string json;
  };
  template <class Invoke>
  Outcome<RawResult> call(const char *operation, Invoke &&invoke);
  CallError malformed(const char *operation, const std::string &detail) const;

  std::shared_ptr<const PluginLibrary> plugin_;  // keeps the library mapped while we live
  std::unique_ptr<crm_host_instance> host_;
  crm_connector *handle_;
  std::mutex call_mutex_;
};

}  // namespace crmhost::plugins
