#pragma once
// The HubSpot emulator's state and the helpers its source files share (not a public header).
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "sandbox/hubspot.hpp"
#include "sandbox/hubspot_webhooks.hpp"

namespace crmsandbox {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

struct ObjectType {
  std::string plural;             // "contacts": the key of the tables
  std::string singular;           // "contact": the webhook subscription prefix
  std::string label;              // "CONTACT": in HubSpot's messages
  std::string modified_property;  // lastmodifieddate (contacts) or hs_lastmodifieddate
  std::vector<std::string> default_properties;
};

// "contacts" / "0-1", "companies" / "0-2", "deals" / "0-3"; nullptr otherwise.
const ObjectType *find_object_type(std::string_view name);

// A failed request or batch input, in HubSpot's error shape.
struct ApiError {
  int status = 400;
  std::string category = "VALIDATION_ERROR";
  std::string message;
  std::string sub_category;
  std::string context_key;  // e.g. "id" -> context: {"id": [values]}
  std::vector<std::string> context_values;
  std::string code;  // a detail in errors[] (e.g. INVALID_EMAIL)
};

HttpResponse json_response(int status, std::string body);
HttpResponse error_response(const ApiError &error);
void write_error(JsonWriter &w, const ApiError &error, bool with_correlation_id);

// What a search sees: the record as of its last indexing.
struct Snapshot {
  Properties properties;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
};

struct StoredRecord {
  int64_t id = 0;
  Properties properties;
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  bool archived = false;
  int64_t archived_ms = 0;
  std::optional<Snapshot> indexed;
  std::optional<Snapshot> pending;  // written, not yet searchable
  int64_t pending_at_ms = 0;
};

struct ObjectTable {
  std::map<int64_t, StoredRecord> records;  // ordered by id: list order
  std::map<std::string, int64_t> by_email;  // contacts, not archived
};

struct Portal {
  int64_t id = 0;
  std::map<std::string, ObjectTable> tables;  // by plural object name
  int64_t daily_day = -1;                     // UTC day number of daily_used
  int64_t daily_used = 0;
};

struct TokenState {
  int64_t portal_id = 0;
  bool oauth = false;
  int64_t expires_at_ms = 0;  // OAuth only
  RollingWindow window;
  RollingWindow search_window;
};

struct OAuthClient {
  std::string client_secret;
  std::string refresh_token;
  int64_t portal_id = 0;
};

// Which properties a response carries: the object's defaults, or the requested ones plus the
// ones HubSpot always returns (hs_object_id, createdate, the modification date) (guess).
struct Selection {
  std::optional<std::vector<std::string>> requested;
  std::vector<std::string> names(const ObjectType &type) const;
};

void write_record(JsonWriter &w, const ObjectType &type, int64_t id, const Properties &properties,
                  int64_t created_ms, int64_t updated_ms, bool archived, int64_t archived_ms,
                  const Selection &selection, std::optional<bool> is_new = std::nullopt);
std::vector<std::string> split_list(std::string_view text);  // "a,b" -> {a, b}

struct HubSpotSandbox::Impl {
  explicit Impl(HubSpotOptions o);

  HubSpotOptions options;
  HubSpotSandbox *owner = nullptr;  // the admin endpoints call the public interface
  mutable std::mutex mutex;         // everything below but the fault injector and the webhooks
  int64_t next_id = 1;  // shared by every portal and object, as HubSpot's ids look (guess)
  std::map<int64_t, Portal> portals;
  std::map<std::string, TokenState> tokens;
  std::map<std::string, OAuthClient> oauth_clients;  // by client id
  HubSpotRateLimits limits;
  int64_t indexing_delay_ms = 0;
  int64_t token_ttl_seconds = 1800;
  HubSpotStats stats;
  FaultInjector faults;
  HubSpotWebhooks webhooks;
  std::unique_ptr<LoopbackServer> server;
  std::string base_link;  // "http://127.0.0.1:<port>" for paging links

  // The request pipeline (hubspot.cpp): admin, OAuth, or auth, limits, faults, then the API.
  HttpResponse handle(const HttpRequest &request);
  HttpResponse api(const HttpRequest &request, int64_t portal_id);

  // Object endpoints (hubspot_objects.cpp); called with `mutex` held.
  HttpResponse list(Portal &portal, const ObjectType &type, const HttpRequest &request);
  HttpResponse get(Portal &portal, const ObjectType &type, const std::string &id,
                   const HttpRequest &request);
  HttpResponse create(Portal &portal, const ObjectType &type, const HttpRequest &request);
  HttpResponse patch(Portal &portal, const ObjectType &type, const std::string &id,
                     const HttpRequest &request);
  HttpResponse archive(Portal &portal, const ObjectType &type, const std::string &id,
                       const HttpRequest &request);
  HttpResponse merge(Portal &portal, const ObjectType &type, const HttpRequest &request);
  HttpResponse batch(Portal &portal, const ObjectType &type, const std::string &operation,
                     const HttpRequest &request);
  HttpResponse search(Portal &portal, const ObjectType &type, const HttpRequest &request);

  // Record operations shared by the API and the C++ interface; called with `mutex` held.
  Portal &portal(int64_t id);
  StoredRecord *find(Portal &portal, const ObjectType &type, const std::string &id,
                     const std::string &id_property, bool archived);
  std::optional<ApiError> validate(Portal &portal, const ObjectType &type, Properties &properties,
                                   int64_t self_id);
  int64_t insert(Portal &portal, const ObjectType &type, Properties properties, int64_t created_ms,
                 int64_t updated_ms, bool notify);
  void apply(Portal &portal, const ObjectType &type, StoredRecord &record,
             const Properties &changes);
  void archive_record(Portal &portal, const ObjectType &type, StoredRecord &record);
  void restore_record(Portal &portal, const ObjectType &type, StoredRecord &record);
  std::optional<ApiError> merge_records(Portal &portal, const ObjectType &type,
                                        const std::string &primary, const std::string &merged,
                                        StoredRecord **out);
  void index(StoredRecord &record, int64_t now);
  const Snapshot *searchable(StoredRecord &record, int64_t now);
  void notify(const Portal &portal, const ObjectType &type, const std::string &kind,
              const StoredRecord &record, const std::string &property = "",
              const std::string &value = "");

  // Admin endpoints under /_sandbox/ (hubspot_admin.cpp).
  HttpResponse admin(const HttpRequest &request);
};

// JSON property values as HubSpot stores them: strings; numbers and booleans as text; null
// clears. Returns the error message for objects and arrays.
std::optional<std::string> read_properties(const rapidjson::Value &object, Properties &out);

}  // namespace crmsandbox
