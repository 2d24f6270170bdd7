#pragma once
// The Zoho CRM emulator of crm-sandbox: Zoho's two hosts per data centre, the accounts server
// (POST /oauth/v2/token, refresh grant) and the API server (/crm/v8/..., /crm/v2/... answering
// the same shapes) with Leads, Contacts, Accounts and Deals, stateful and in memory, over real
// HTTP on loopback. Several orgs, several data centres, API credits and a concurrency cap per
// org, actions/watch notification channels and workflow-rule webhooks, a test clock.
// Source of truth: shared/design/providers/zoho.md. Link `crm_sandbox_lib` to use it in a test:
//
//   crmsandbox::ZohoSandbox zoho;                          // data centre "com" on 127.0.0.1:0
//   zoho.add_org({.id = 777, .utc_offset_minutes = 330});  // times render as ...+05:30
//   zoho.add_client("client-1", "secret-1", "refresh-1", 777);
//   zoho.start();                                          // ports are known from here on
//   settings.accounts_url = zoho.accounts_base_url();      // "http://127.0.0.1:<port>"
//   settings.api_url = zoho.api_base_url();                // = the token reply's api_domain
//   zoho.seed_generated(777, "Leads", 50, {.seed = 7});    // the same seed, the same records
//   const auto id = zoho.create_record(777, "Contacts", {{"Last_Name", std::string("Doe")}});
//   const auto token = zoho.issue_token(777);              // skips the refresh round trip
//
//   zoho.add_workflow_rule({.org_id = 777, .module = "Leads", .url = receiver_url,
//                           .header_name = "X-Secret", .header_value = "s3cret"});
//   zoho.advance_clock(std::chrono::hours(2));             // tokens and channels expire
//   zoho.set_faults({.p429 = 0.1, .p5xx = 0.05});
//   ... zoho.records(777, "Leads"), zoho.write_calls(), zoho.deliveries(), zoho.stats() ...
//
// Every public function is thread-safe and may be called before or after start(). Orgs are
// created on first use with the defaults of ZohoOrg. Everything time-bound (access tokens,
// page tokens, credits, channel expiry, Created_Time and Modified_Time) follows the sandbox
// clock: the system clock plus what advance_clock() added. Record times have second precision,
// as Zoho renders them. A C++ call Zoho would refuse (unknown module, a missing mandatory field,
// a missing id) throws std::invalid_argument. Faults apply to both hosts' answers, never to the
// /_sandbox/zoho/ controls (zoho_admin.cpp lists them; they answer on either host).
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "sandbox/common.hpp"

namespace crmsandbox {

// A JSON value kept as its compact text: lookups ({"id":"..","name":".."}), nested arrays.
struct ZohoJson {
  std::string text;
  bool operator==(const ZohoJson &) const = default;
};

// A field value as stored. Multi-select picklists are arrays of strings; numbers from JSON are
// int64_t when whole, double otherwise; null clears a field.
using ZohoValue = std::variant<std::nullptr_t, bool, int64_t, double, std::string,
                               std::vector<std::string>, ZohoJson>;
using ZohoFields = std::map<std::string, ZohoValue>;

struct ZohoRecord {
  std::string id{};  // Zoho's long ids as decimal text ("4876876000000100001")
  std::string module{};
  ZohoFields fields{};     // the stored fields; the system times are below, not in here
  int64_t created_ms = 0;  // sandbox clock, whole seconds
  int64_t modified_ms = 0;
};

// A record in the recycle bin (type "recycle") or deleted from it (type "permanent").
struct ZohoDeletedRecord {
  std::string id{};
  std::string module{};
  std::string display_name{};  // the record's name field (Full_Name, Account_Name, Deal_Name)
  std::string type{};          // recycle | permanent
  int64_t deleted_ms = 0;
  int64_t created_ms = 0;
};

struct ZohoOrg {
  int64_t id = 0;
  std::string data_centre = "com";         // one of ZohoOptions::data_centres
  int utc_offset_minutes = 0;              // Created_Time/Modified_Time rendered in this offset
  int64_t credits_per_day = 50'000;        // API credits per rolling 24 h, 1 per call (Standard)
  int64_t concurrency = 10;                // requests in flight at once (Standard edition)
  std::string user_name = "Sandbox User";  // Owner, Created_By, Modified_By, deleted_by
};

// One write call the API received (insert, update, upsert, delete), as sent.
struct ZohoWriteCall {
  int64_t org_id = 0;
  std::string module{};
  std::string operation{};                            // insert | update | upsert | delete
  std::optional<std::vector<std::string>> trigger{};  // nullopt: the key was absent
  std::optional<std::vector<std::string>> duplicate_check_fields{};
  std::vector<std::string> ids{};  // the records written (successful items only)
  std::string body{};              // the request body as received
  int64_t at_ms = 0;               // sandbox clock
};

// An actions/watch channel as subscribed through the API (or add_channel).
struct ZohoChannel {
  int64_t org_id = 0;
  std::string channel_id{};           // a long as text
  std::vector<std::string> events{};  // "Leads.create", "Leads.edit", "Leads.delete", "Leads.all"
  int64_t expiry_ms = 0;              // sandbox clock; callbacks stop after it
  std::string token{};                // echoed in callbacks; at most 49 characters
  std::string notify_url{};           // http:// only; its query string is echoed as query_params
  bool return_affected_field_values = false;
  bool notify_on_related_action = true;
};

// A workflow rule with a webhook action, as an operator sets one up in Zoho's UI. It fires on
// writes whose `trigger` is absent or includes "workflow", and on writes made through the C++
// interface (a user in the UI).
struct ZohoWorkflowRule {
  int64_t id = 0;  // assigned by add_workflow_rule
  int64_t org_id = 0;
  std::string module{};                                         // Leads, Contacts, Accounts, Deals
  std::set<std::string> events = {"create", "edit", "delete"};  // when the rule runs
  std::string url{};                                            // http:// only
  std::string header_name{};  // a custom header the operator added (a shared secret); empty: none
  std::string header_value{};
  // The body. Empty: {"operation":"Leads.edit","module":"Leads","data":[{...record...}]}.
  // Otherwise the text with ${id}, ${module}, ${operation} (Leads.create|edit|delete),
  // ${org_id} and ${<Field_API_Name>} replaced by the value, JSON-escaped without quotes.
  std::string payload_template{};
  std::string content_type = "application/json";
};

// One callback POST (actions/watch) or workflow webhook, as the receiver saw it. Never retried
// (guess: Zoho documents no retry).
struct ZohoDelivery {
  std::string kind{};  // notification | workflow
  int64_t org_id = 0;
  std::string channel_id{};  // notification
  int64_t rule_id = 0;       // workflow
  std::string module{};
  std::string operation{};  // notification: insert | update | delete; workflow: Leads.edit, ...
  std::vector<std::string> ids{};
  std::string url{};
  Headers headers{};   // as sent
  std::string body{};  // the exact bytes sent
  int status = 0;      // the receiver's status; 0 when none (error says why)
  std::string error{};
  int64_t sent_at_ms = 0;  // sandbox clock
};

struct ZohoStats {
  uint64_t requests = 0;             // API host requests (controls excluded)
  uint64_t token_requests = 0;       // accounts host requests
  uint64_t unauthorized = 0;         // 401s (missing, unknown, expired or wrong-DC tokens)
  uint64_t limited_credits = 0;      // 429: the org's credits for the rolling day are spent
  uint64_t limited_concurrency = 0;  // 429: too many of the org's requests in flight
  uint64_t injected_429 = 0;
  uint64_t injected_5xx = 0;
  uint64_t dropped = 0;
  uint64_t malformed = 0;
  std::map<std::string, uint64_t> by_path;  // "GET /crm/v8/Leads": API requests
  uint64_t too_many_requests() const {
    return limited_credits + limited_concurrency + injected_429;
  }
};

struct ZohoSeedOptions {
  uint64_t seed = 0;          // the generated values; the same seed, the same records
  bool multi_select = false;  // every third record gets Product_Interest as an array
  int64_t spacing_ms = 1000;  // Created/Modified_Time step between records, ending now
};

struct ZohoOptions {
  // The first data centre's listeners; the others listen on the same host, port 0.
  std::string api_listen = "127.0.0.1:0";
  std::string accounts_listen = "127.0.0.1:0";
  std::vector<std::string> data_centres = {"com"};  // labels: com, eu, in, com.au, jp, ...
  int64_t token_ttl_seconds = 3600;                 // expires_in of issued access tokens
  std::chrono::milliseconds page_token_ttl = std::chrono::hours(24);
  std::chrono::milliseconds search_index_delay{0};  // records reach search this long after a write
  uint64_t seed = 0;                                // fault injection
  FaultConfig faults;
  size_t handler_threads = 8;
  std::chrono::milliseconds callback_timeout{5000};
};

class ZohoSandbox {
 public:
  explicit ZohoSandbox(ZohoOptions options = {});
  ~ZohoSandbox();  // stops the servers and the delivery thread
  ZohoSandbox(const ZohoSandbox &) = delete;
  ZohoSandbox &operator=(const ZohoSandbox &) = delete;

  void start();  // throws std::runtime_error when an address cannot be bound
  void stop();   // the state is kept; start() again serves it on new servers
  // dc empty: the first data centre. Ports are 0 and URLs empty when not serving.
  uint16_t api_port(const std::string &dc = "") const;
  uint16_t accounts_port(const std::string &dc = "") const;
  std::string api_base_url(const std::string &dc = "") const;       // "http://127.0.0.1:<port>"
  std::string accounts_base_url(const std::string &dc = "") const;  // "http://127.0.0.1:<port>"
  std::vector<std::string> data_centres() const;

  // Each host's whole API as a function (what its server calls for each request).
  HttpResponse handle_api(const HttpRequest &request, const std::string &dc = "");
  HttpResponse handle_accounts(const HttpRequest &request, const std::string &dc = "");

  // Orgs. add_org replaces the settings of an existing org and keeps its records.
  void add_org(const ZohoOrg &org);
  ZohoOrg org(int64_t org_id) const;
  std::vector<int64_t> orgs() const;
  void set_org_utc_offset(int64_t org_id, int minutes);
  void set_credits(int64_t org_id, int64_t per_day);
  void set_concurrency(int64_t org_id, int64_t in_flight);
  void reset_credits(int64_t org_id);          // forget the calls counted so far
  int64_t credits_used(int64_t org_id) const;  // within the rolling 24 h ending now

  // Auth. Refresh tokens belong to a client and an org; the org's data centre is the only one
  // whose accounts server grants them and whose API host accepts the access tokens.
  void add_client(const std::string &client_id, const std::string &client_secret,
                  const std::string &refresh_token, int64_t org_id);
  std::string issue_token(int64_t org_id);  // a fresh access token, as a refresh would give
  void set_token_ttl(std::chrono::seconds ttl);
  void expire_tokens();  // every issued access token expires now: the next call gets 401
  void revoke_token(const std::string &access_token);
  std::vector<std::string> issued_access_tokens() const;
  void set_page_token_ttl(std::chrono::milliseconds ttl);  // for page tokens issued from now

  // The sandbox clock.
  void advance_clock(std::chrono::milliseconds by);
  int64_t now_ms() const;  // what a write now is stamped with (before second truncation)

  // Records written directly: no webhooks, no notifications, no credits. Return the ids.
  std::vector<std::string> seed(int64_t org_id, const std::string &module,
                                const std::vector<ZohoFields> &records);
  // n generated records (Leads/Contacts: First_Name, Last_Name, Email, Phone, Company/Title;
  // Accounts: Account_Name, Website, Phone; Deals: Deal_Name, Amount, Stage, Closing_Date),
  // the same for the same options.seed, spaced options.spacing_ms apart, ending now.
  std::vector<std::string> seed_generated(int64_t org_id, const std::string &module, size_t n,
                                          const ZohoSeedOptions &options = {});
  // Writes as a user in Zoho's UI makes them: workflow rules and notifications fire.
  std::string create_record(int64_t org_id, const std::string &module, const ZohoFields &fields);
  bool update_record(int64_t org_id, const std::string &module, const std::string &id,
                     const ZohoFields &fields);  // false when the record is missing
  bool delete_record(int64_t org_id, const std::string &module, const std::string &id);
  // Recycle-bin entries become permanent deletions (as emptying the bin does).
  void empty_recycle_bin(int64_t org_id, const std::string &module);

  std::optional<ZohoRecord> record(int64_t org_id, const std::string &module,
                                   const std::string &id) const;
  std::vector<ZohoRecord> records(int64_t org_id, const std::string &module) const;  // by id
  size_t count(int64_t org_id, const std::string &module) const;
  std::vector<ZohoDeletedRecord> deleted_records(int64_t org_id, const std::string &module) const;

  // Fields marked "do not allow duplicate values": inserts and updates meeting a value already
  // stored answer DUPLICATE_DATA; upserts match on them after duplicate_check_fields. Per
  // module, every org. None by default.
  void set_unique_fields(const std::string &module, const std::vector<std::string> &fields);
  void set_search_index_delay(std::chrono::milliseconds delay);

  // Knobs, effective for the next request.
  void set_faults(const FaultConfig &faults);
  void set_fault_seed(uint64_t seed);
  FaultConfig faults() const;
  ZohoStats stats() const;
  void reset_stats();

  // What the write calls carried (trigger, duplicate_check_fields), oldest first.
  std::vector<ZohoWriteCall> write_calls() const;
  void clear_write_calls();

  // actions/watch channels, as the API leaves them; add_channel subscribes without the API.
  std::vector<ZohoChannel> channels(int64_t org_id) const;
  void add_channel(const ZohoChannel &channel);

  // Workflow rules with webhook actions.
  int64_t add_workflow_rule(const ZohoWorkflowRule &rule);  // returns the rule id
  bool remove_workflow_rule(int64_t rule_id);
  void clear_workflow_rules();
  std::vector<ZohoWorkflowRule> workflow_rules() const;

  // Callbacks and webhooks: POSTed once each on a background thread, after the write.
  std::vector<ZohoDelivery> deliveries() const;  // oldest first
  void clear_deliveries();
  // Waits until at least `n` deliveries are recorded; false on timeout.
  bool wait_for_deliveries(size_t n, std::chrono::milliseconds timeout) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Zoho's time text of Unix milliseconds in a UTC offset: "2026-12-08T10:15:00+05:30".
std::string zoho_time(int64_t unix_ms, int utc_offset_minutes);

}  // namespace crmsandbox
