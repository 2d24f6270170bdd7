#pragma once
// The Odoo emulator of crm-sandbox: Odoo's external API (JSON-RPC at /jsonrpc, JSON-2 at
// /json/2/{model}/{method}) on res.partner, crm.lead, crm.stage and res.country, stateful and in
// memory, over real HTTP on loopback, with Odoo's write_date trap and automation-rule webhooks.
// Source of truth: shared/design/providers/odoo.md. Link `crm_sandbox_lib` to use it in a test:
//
//   crmsandbox::OdooSandbox odoo;                             // listens on 127.0.0.1:0
//   odoo.add_user("crm", {"admin", "admin", {"key-1"}});      // database "crm", uid 2
//   odoo.start();                                             // port() is known from here on
//   settings.url = odoo.base_url();                           // "http://127.0.0.1:<port>"
//   odoo.seed_partners("crm", 50);                            // one transaction, no webhooks
//   const auto id = odoo.create("crm", "res.partner", {{"name", std::string("Ann")}});
//
//   // The late commit: stamped 5 s ago, visible only at commit(), after newer writes.
//   auto tx = odoo.begin_transaction("crm", std::chrono::seconds(5));
//   const auto late = tx.create("res.partner", {{"name", std::string("Late")}});
//   odoo.write("crm", "res.partner", {id}, {{"city", std::string("Ghent")}});  // newer, visible
//   tx.commit();                                              // `late` appears with an older date
//
//   odoo.add_webhook({.model = "res.partner", .url = receiver_url,
//                     .header_name = "X-Secret", .header_value = "s3cret"});
//   odoo.set_faults({.p429 = 0.1, .p5xx = 0.05});
//   ... odoo.records("crm", "res.partner"), odoo.deliveries(), odoo.stats() ...
//
// Every public function is thread-safe and may be called before or after start(). Databases are
// created on first use (with res.country rows and the crm.stage rows New, Qualified,
// Proposition, Won). A C++ call Odoo would refuse (unknown model or field, a wrong value, a
// missing id) throws std::invalid_argument. Every API call is one transaction: the records it
// writes share one write_date, the transaction's start in UTC at second precision. Faults apply
// to the API, never to the /_sandbox/odoo/ controls (odoo_admin.cpp lists them).
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

// A field value as stored: `false` is Odoo's empty value for every type but boolean; many2one
// fields hold the related id; datetimes their UTC text "YYYY-MM-DD HH:MM:SS".
using OdooValue = std::variant<bool, int64_t, double, std::string>;
using OdooValues = std::map<std::string, OdooValue>;

struct OdooRecord {
  int64_t id = 0;
  OdooValues values;  // every stored field, create_date and write_date included
};

struct OdooUser {
  std::string login;
  std::string password;
  std::vector<std::string> api_keys;  // each works as the password, and as JSON-2's bearer
  bool read_only = false;             // create, write and unlink answer AccessError
};

// An automation rule "Send Webhook Notification" on one model.
struct OdooWebhookRule {
  int64_t id = 0;           // assigned by add_webhook; the action id in `_action`
  std::string model;        // "res.partner", "crm.lead", ...
  std::string url;          // http:// only
  std::string header_name;  // the operator's shared secret, sent as this header; empty: none
  std::string header_value;
  std::vector<std::string> fields;                                 // added to the payload
  std::set<std::string> triggers = {"create", "write", "unlink"};  // when the rule runs
  std::string name = "Send Webhook Notification";                  // `_action` is "<name>(#<id>)"
};

// One webhook POST, as the receiver saw it (or did not). Never retried.
struct OdooDelivery {
  int64_t rule_id = 0;
  std::string database;
  std::string model;
  int64_t record_id = 0;
  std::string trigger;  // create | write | unlink
  std::string url;
  Headers headers;   // as sent, the secret header included
  std::string body;  // the exact bytes sent
  int status = 0;    // the receiver's status; 0 when none (error says why)
  std::string error;
  int64_t sent_at_ms = 0;
};

struct OdooStats {
  uint64_t requests = 0;  // API requests (admin endpoints excluded)
  uint64_t jsonrpc = 0;
  uint64_t json2 = 0;
  uint64_t access_denied = 0;  // refused credentials, either protocol
  uint64_t errors = 0;         // answers carrying an Odoo error, AccessDenied included
  uint64_t injected_429 = 0;
  uint64_t injected_5xx = 0;
  uint64_t dropped = 0;
  uint64_t malformed = 0;
};

struct OdooOptions {
  std::string listen = "127.0.0.1:0";
  std::string server_version = "19.0";  // version()'s answer; 19 is the first with JSON-2
  uint64_t seed = 0;                    // fault injection
  FaultConfig faults;
  size_t handler_threads = 4;
  std::chrono::milliseconds webhook_timeout{1000};  // Odoo's: 1 s
};

class OdooTransaction;

class OdooSandbox {
 public:
  explicit OdooSandbox(OdooOptions options = {});
  ~OdooSandbox();  // stops the server and the webhook thread
  OdooSandbox(const OdooSandbox &) = delete;
  OdooSandbox &operator=(const OdooSandbox &) = delete;

  void start();                  // throws std::runtime_error when the address cannot be bound
  void stop();                   // the state is kept; start() again serves it on a new server
  uint16_t port() const;         // 0 when not serving
  std::string base_url() const;  // "http://127.0.0.1:<port>"

  // The whole API as a function (what the server calls for each request).
  HttpResponse handle(const HttpRequest &request);

  // Databases and users. The first user of a database gets uid 2 (Odoo's admin), then 3, ...
  void add_database(const std::string &db);
  std::vector<std::string> databases() const;
  int64_t add_user(const std::string &db, const OdooUser &user);  // an existing login: replaced
  void add_api_key(const std::string &db, const std::string &login, const std::string &key);
  void revoke_api_key(const std::string &key);  // in every database

  // Records written as a user in Odoo's UI would: one transaction per call, webhooks fire.
  int64_t create(const std::string &db, const std::string &model, const OdooValues &values);
  std::vector<int64_t> create(const std::string &db, const std::string &model,
                              const std::vector<OdooValues> &values);
  void write(const std::string &db, const std::string &model, const std::vector<int64_t> &ids,
             const OdooValues &values);
  void unlink(const std::string &db, const std::string &model, const std::vector<int64_t> &ids);
  // Records written in one transaction without webhooks. Return the ids.
  std::vector<int64_t> seed(const std::string &db, const std::string &model,
                            const std::vector<OdooValues> &values);
  // n generated partners: every fifth a company ("Company <i>"), the others its contacts
  // ("Contact <i>", contact<i>@example.com, parent_id the company before them).
  std::vector<int64_t> seed_partners(const std::string &db, size_t n);
  // n generated crm.lead rows spread over the stages, half leads, half opportunities.
  std::vector<int64_t> seed_leads(const std::string &db, size_t n);

  // A transaction stamped now minus `backdate`; its writes stay invisible to the API until
  // commit(). Ids are taken at once, as PostgreSQL sequences do.
  OdooTransaction begin_transaction(const std::string &db,
                                    std::chrono::seconds backdate = std::chrono::seconds(0));

  std::optional<OdooRecord> record(const std::string &db, const std::string &model,
                                   int64_t id) const;
  // Ordered by id; archived ones only when asked.
  std::vector<OdooRecord> records(const std::string &db, const std::string &model,
                                  bool include_archived = false) const;
  size_t count(const std::string &db, const std::string &model) const;  // active only

  // The clock that stamps transactions: the system's UTC plus an offset, or frozen.
  void set_clock_offset(std::chrono::seconds offset);
  void freeze_clock(const std::string &utc);  // "YYYY-MM-DD HH:MM:SS"; empty: runs again
  std::string now() const;                    // what a transaction starting now is stamped

  // Knobs, effective for the next request.
  void set_faults(const FaultConfig &faults);
  void set_fault_seed(uint64_t seed);
  FaultConfig faults() const;
  OdooStats stats() const;

  // Automation-rule webhooks: POSTed after commit, fire-and-forget, one per record and rule.
  int64_t add_webhook(const OdooWebhookRule &rule);  // returns the rule id
  bool remove_webhook(int64_t rule_id);
  void clear_webhooks();
  std::vector<OdooWebhookRule> webhooks() const;
  std::vector<OdooDelivery> deliveries() const;  // oldest first
  void clear_deliveries();
  // Waits until at least `n` deliveries are recorded; false on timeout.
  bool wait_for_deliveries(size_t n, std::chrono::milliseconds timeout) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// An open transaction of OdooSandbox::begin_transaction. It must not outlive its sandbox;
// destroyed while open, it rolls back.
class OdooTransaction {
 public:
  OdooTransaction(OdooTransaction &&other) noexcept;
  OdooTransaction &operator=(OdooTransaction &&other) noexcept;
  ~OdooTransaction();

  int64_t create(const std::string &model, const OdooValues &values);  // the reserved id
  void write(const std::string &model, const std::vector<int64_t> &ids, const OdooValues &values);
  void unlink(const std::string &model, const std::vector<int64_t> &ids);
  void commit();    // every write becomes visible with stamp() as its write_date; webhooks fire
  void rollback();  // the reserved ids stay used
  int64_t id() const { return id_; }
  const std::string &stamp() const { return stamp_; }

 private:
  friend class OdooSandbox;
  OdooTransaction(OdooSandbox::Impl *impl, int64_t id, std::string stamp);
  OdooSandbox::Impl *impl_ = nullptr;
  int64_t id_ = 0;
  std::string stamp_;
};

}  // namespace crmsandbox
