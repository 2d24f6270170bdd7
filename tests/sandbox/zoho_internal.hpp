#pragma once
// The Zoho emulator's state and the helpers its source files share (not a public header). The
// helpers live in crmsandbox::zoho so their names cannot meet the other emulators'.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "sandbox/zoho.hpp"

namespace crmsandbox::zoho {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

inline constexpr int64_t kDayMs = 86'400'000;
inline constexpr int64_t kMaxRecordsPerCall = 100;   // (doc v7)
inline constexpr int64_t kMaxFields = 50;            // fields= of a list (doc v7)
inline constexpr int64_t kMaxPerPage = 200;          // (doc v7)
inline constexpr int64_t kDiscretePageLimit = 2000;  // records page= reaches (doc v7)
inline constexpr int64_t kPageTokenLimit = 100'000;  // records page_token reaches (doc v7)
inline constexpr int64_t kSearchLimit = 2000;        // search results (doc v7)
inline constexpr int64_t kMaxCriteria = 10;          // conditions in one criteria (doc v7)

enum class FieldKind { Text, Email, Double, Integer, Date, MultiSelect, Lookup };

struct FieldDef {
  std::string name;
  FieldKind kind = FieldKind::Text;
};

struct ModuleDef {
  std::string name;              // "Leads": the API name, in paths and messages
  std::string resource_id;       // the module's id in actions/watch answers (guess: made up)
  std::string mandatory;         // the field an insert cannot omit
  std::string system_unique;     // the system duplicate-check field of upserts (doc v7)
  std::vector<FieldDef> fields;  // the typed ones; any other field is stored as sent (guess)
  const FieldDef *field(std::string_view wanted) const;
  bool has_full_name() const { return name == "Leads" || name == "Contacts"; }
};

// Leads, Contacts, Accounts, Deals; matched case-insensitively (guess); nullptr otherwise.
const ModuleDef *find_module(std::string_view name);
const std::vector<ModuleDef> &all_modules();

// System fields: computed, never stored; ignored in writes (guess: Zoho ignores read-only keys).
bool is_system_field(std::string_view name);

// A failed request or record, in Zoho's error shape. `details` holds JSON texts by key.
struct ApiError {
  int status = 400;
  std::string code;
  std::string message;
  std::vector<std::pair<std::string, std::string>> details;
  ApiError &detail(const std::string &key, const std::string &text);  // a JSON string
  ApiError &detail_raw(const std::string &key, const std::string &json);
};

HttpResponse json_response(int status, std::string body);
HttpResponse error_response(const ApiError &error);
void write_error(JsonWriter &w, const ApiError &error);
std::string json_string(std::string_view text);  // "\"...\"" escaped
void key(JsonWriter &w, std::string_view name);

// A JSON value as stored, and back.
ZohoValue from_json(const rapidjson::Value &value);
void write_value(JsonWriter &w, const ZohoValue &value);
// The texts a search compares: one for scalars, the elements of a multi-select, none for null.
std::vector<std::string> value_texts(const ZohoValue &value);
bool is_empty(const ZohoValue &value);

struct Stored {
  int64_t id = 0;
  ZohoFields fields;
  int64_t created_ms = 0;
  int64_t modified_ms = 0;
};

struct DeletedEntry {
  int64_t id = 0;
  std::string display_name;
  std::string type = "recycle";
  int64_t deleted_ms = 0;
  int64_t created_ms = 0;
};

struct ModuleTable {
  std::map<int64_t, Stored> records;  // by id
  std::vector<DeletedEntry> deleted;  // oldest first
};

struct Org {
  ZohoOrg spec;
  std::map<std::string, ModuleTable> tables;  // by module name
  RollingWindow credits;                      // granted calls, sandbox clock
  int64_t in_flight = 0;
  std::map<std::string, ZohoChannel> channels;  // by channel id
  std::string user_id() const;
};

struct AccessToken {
  int64_t org_id = 0;
  std::string dc;
  int64_t expires_ms = 0;
};

struct Client {
  std::string secret;
  std::string refresh_token;
  int64_t org_id = 0;
};

// A page_token: where the next page starts and what it is bound to (doc v7: bound to the other
// params and the user).
struct PageToken {
  int64_t org_id = 0;
  std::string module;
  std::string binding;   // fields, sort_by, sort_order, If-Modified-Since (guess: per_page free)
  int64_t last_key = 0;  // the sort value and id of the last record served (a keyset, guess)
  int64_t last_id = 0;
  int64_t served = 0;  // records before the next page
  int64_t expires_ms = 0;
};

// A change made by one write call, for notifications and workflow rules.
struct Change {
  std::string module;
  std::string operation;  // insert | update | delete
  int64_t id = 0;
  std::vector<std::string> affected_fields;  // update: the fields the call sent
  ZohoFields values;                         // update: their new values
  ZohoFields record;                         // the record after the write (before a delete)
  int64_t created_ms = 0;
  int64_t modified_ms = 0;
};

// Sends deliveries one at a time on its own thread, once, and logs each outcome.
class Sender {
 public:
  Sender(std::chrono::milliseconds timeout, const std::atomic<int64_t> &clock_offset);
  ~Sender();
  void send(std::vector<ZohoDelivery> deliveries);
  std::vector<ZohoDelivery> log() const;
  void clear();
  bool wait_for(size_t n, std::chrono::milliseconds timeout) const;

 private:
  void run();
  std::chrono::milliseconds timeout_;
  const std::atomic<int64_t> &clock_offset_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::deque<ZohoDelivery> queue_;
  std::vector<ZohoDelivery> log_;
  bool stopping_ = false;
  std::thread thread_;
};

// One data centre's two listeners.
struct DataCentre {
  std::string label;
  std::unique_ptr<LoopbackServer> api;
  std::unique_ptr<LoopbackServer> accounts;
};

// A parsed search criteria: conditions and and/or groups.
struct Criteria {
  enum Kind { Condition, And, Or } kind = Condition;
  std::string field;
  std::string op;
  std::vector<std::string> values;
  std::vector<Criteria> children;
  size_t conditions() const;
};
// "((Last_Name:equals:Doe)and(Email:starts_with:a\(b))"; nullopt and `error` when malformed.
std::optional<Criteria> parse_criteria(std::string_view text, std::string &error);

}  // namespace crmsandbox::zoho

namespace crmsandbox {

struct ZohoSandbox::Impl {
  explicit Impl(ZohoOptions o);

  ZohoOptions options;
  ZohoSandbox *owner = nullptr;  // the controls call the public interface
  std::atomic<int64_t> clock_offset_ms{0};
  mutable std::mutex mutex;               // everything below but the fault injector and the sender
  int64_t next_id = 4876876000000100001;  // shared by every org and module (guess: Zoho-like)
  int64_t next_rule = 1;
  std::map<int64_t, zoho::Org> orgs;
  std::map<std::string, zoho::AccessToken> tokens;
  std::map<std::string, zoho::Client> clients;  // by client id
  std::map<std::string, zoho::PageToken> page_tokens;
  std::map<std::string, std::vector<std::string>> unique_fields;  // by module
  std::vector<ZohoWorkflowRule> rules;
  std::vector<ZohoWriteCall> write_log;
  int64_t token_ttl_seconds = 3600;
  int64_t page_token_ttl_ms = zoho::kDayMs;
  int64_t search_index_delay_ms = 0;
  ZohoStats stats;
  FaultInjector faults;
  std::vector<zoho::DataCentre> dcs;  // options.data_centres, in order
  zoho::Sender sender;

  int64_t clock() const { return crmsandbox::now_ms() + clock_offset_ms.load(); }
  std::string dc_label(const std::string &dc) const;  // empty: the first; throws if unknown
  std::string api_url(const std::string &dc) const;   // with `mutex` held or not: ports only

  // The pipelines (zoho.cpp): controls, faults, then the host's routes.
  HttpResponse handle_api(const HttpRequest &request, const std::string &dc);
  HttpResponse handle_accounts(const HttpRequest &request, const std::string &dc);
  HttpResponse token(const HttpRequest &request, const std::string &dc);
  HttpResponse route(const HttpRequest &request, int64_t org_id, const std::string &dc);

  // Reads (zoho_reads.cpp); called with `mutex` held.
  HttpResponse list(zoho::Org &org, const zoho::ModuleDef &module, const HttpRequest &request);
  HttpResponse get(zoho::Org &org, const zoho::ModuleDef &module, const std::string &id,
                   const HttpRequest &request);
  HttpResponse search(zoho::Org &org, const zoho::ModuleDef &module, const HttpRequest &request);
  HttpResponse deleted(zoho::Org &org, const zoho::ModuleDef &module, const HttpRequest &request);

  // Writes (zoho_writes.cpp); called with `mutex` held; they queue their deliveries in `out`.
  HttpResponse write(zoho::Org &org, const zoho::ModuleDef &module, const std::string &operation,
                     const std::string &path_id, const HttpRequest &request,
                     std::vector<ZohoDelivery> &out);
  HttpResponse remove(zoho::Org &org, const zoho::ModuleDef &module, const std::string &path_id,
                      const HttpRequest &request, std::vector<ZohoDelivery> &out);

  // actions/watch (zoho_notify.cpp); called with `mutex` held.
  HttpResponse watch(zoho::Org &org, const HttpRequest &request, const std::string &dc);

  // Shared record operations; called with `mutex` held.
  zoho::Org &org(int64_t id);
  zoho::Stored *find(zoho::Org &org, const zoho::ModuleDef &module, const std::string &id);
  // Checks and normalises one record's fields: types, then the mandatory field (insert, or an
  // update clearing it), then unique fields. `path` is the record's JSON path ("$.data[0]").
  std::optional<zoho::ApiError> validate(zoho::Org &org, const zoho::ModuleDef &module,
                                         ZohoFields &fields, int64_t self_id, bool insert,
                                         const std::string &path);
  int64_t insert(zoho::Org &org, const zoho::ModuleDef &module, ZohoFields fields,
                 int64_t created_ms, int64_t modified_ms);
  void apply(zoho::Stored &record, const ZohoFields &changes);
  void remove_record(zoho::Org &org, const zoho::ModuleDef &module, int64_t id);
  std::string display_name(const zoho::ModuleDef &module, const ZohoFields &fields) const;
  // The record as the API renders it: `only` given, id and those fields; else every field.
  void write_record(zoho::JsonWriter &w, const zoho::Org &org, const zoho::ModuleDef &module,
                    const zoho::Stored &record, const std::vector<std::string> *only) const;
  void write_user(zoho::JsonWriter &w, const zoho::Org &org) const;

  // Notifications and workflow webhooks of one write call (zoho_notify.cpp).
  void deliveries_for(zoho::Org &org, const std::vector<zoho::Change> &changes, bool run_workflows,
                      const std::string &dc, std::vector<ZohoDelivery> &out);

  // Controls under /_sandbox/zoho/ (zoho_admin.cpp).
  HttpResponse admin(const HttpRequest &request);
};

}  // namespace crmsandbox
