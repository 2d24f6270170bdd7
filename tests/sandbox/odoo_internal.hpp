#pragma once
// The Odoo emulator's state and the helpers its source files share (not a public header). The
// helpers live in crmsandbox::odoo so their names cannot meet the HubSpot emulator's.
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "sandbox/odoo.hpp"

namespace crmsandbox::odoo {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

enum class FieldType { Integer, Char, Boolean, Float, Many2one, Selection, Datetime };

struct FieldDef {
  std::string name;
  std::string label;
  FieldType type = FieldType::Char;
  std::string relation;  // many2one: the related model
  std::vector<std::pair<std::string, std::string>> selection;
  bool readonly = false;  // id, dates, display_name: ignored in writes (guess)
  bool required = false;
  bool stored = true;  // display_name is computed at read
};

struct ModelDef {
  std::string name;
  std::string label;  // "Contact": in Odoo's messages
  std::vector<FieldDef> fields;
  std::string default_order;
  const FieldDef *field(std::string_view wanted) const;
  bool has_active() const { return field("active") != nullptr; }
};

const ModelDef *find_model(std::string_view name);
const std::vector<ModelDef> &all_models();
const char *type_name(FieldType type);

// An Odoo exception as the API reports it: JSON-RPC's error.data, JSON-2's body.
struct Error : std::runtime_error {
  Error(std::string exception_name, const std::string &message)
      : std::runtime_error(message), name(std::move(exception_name)) {}
  std::string name;  // "odoo.exceptions.ValidationError", "builtins.ValueError", ...
  int status = 0;    // JSON-2's HTTP status; 0: by name
  int json2_status() const;
};

inline constexpr const char *kAccessDenied = "odoo.exceptions.AccessDenied";
inline constexpr const char *kAccessError = "odoo.exceptions.AccessError";
inline constexpr const char *kValidationError = "odoo.exceptions.ValidationError";
inline constexpr const char *kMissingError = "odoo.exceptions.MissingError";
inline constexpr const char *kUserError = "odoo.exceptions.UserError";
inline constexpr const char *kValueError = "builtins.ValueError";
inline constexpr const char *kTypeError = "builtins.TypeError";

// Python's repr of a JSON value, for messages that quote what the caller sent.
std::string py_repr(const rapidjson::Value &value);
std::string py_repr(const OdooValue &value);

// "YYYY-MM-DD HH:MM:SS" of Unix seconds, and back (a date alone is its midnight).
std::string odoo_datetime(int64_t unix_seconds);
std::optional<int64_t> parse_odoo_datetime(std::string_view text);

// A JSON scalar as a stored value; arrays and objects throw ValueError naming `what`.
OdooValue from_json(const rapidjson::Value &value, const std::string &what);
void write_value(odoo::JsonWriter &w, const OdooValue &value);

struct User {
  int64_t uid = 0;
  OdooUser spec;
};

struct Table {
  std::map<int64_t, OdooValues> rows;  // visible rows by id
  int64_t next_id = 1;                 // a sequence: taken ids are never reused
};

struct Database {
  std::string name;
  std::map<std::string, Table> tables;  // every model
  std::map<int64_t, User> users;        // by uid
  int64_t next_uid = 2;
};

// A write of an open transaction, applied at commit.
struct PendingOp {
  enum Kind { Create, Write, Unlink } kind = Create;
  std::string model;
  std::vector<int64_t> ids;
  OdooValues values;
};

struct Transaction {
  std::string db;
  std::string stamp;
  std::vector<PendingOp> ops;
};

// A parsed domain: leaves and the prefix operators as a tree.
struct Domain {
  enum Kind { Leaf, And, Or, Not, True, False } kind = True;
  std::string field;
  std::string op;
  std::vector<OdooValue> values;  // one for scalar operands
  bool list = false;              // the operand was a list
  std::vector<Domain> children;
  bool mentions(std::string_view name) const;
};

// Create: every required field set; write: none cleared. Throws ValidationError.
void check_required(const ModelDef &model, const OdooValues &values, bool create);
bool truthy(const OdooValue &value);

// Odoo's domain grammar (Polish notation, implicit '&'); throws ValueError on a bad leaf.
Domain parse_domain(const ModelDef &model, const rapidjson::Value *domain);

struct SortKey {
  const FieldDef *field = nullptr;  // nullptr: id
  bool descending = false;
  std::optional<bool> nulls_first;
};
// "write_date asc, id desc"; empty: the model's default order. Throws UserError.
std::vector<SortKey> parse_order(const ModelDef &model, const std::string &order);

// Sends webhook POSTs one at a time on its own thread, once, and logs each outcome.
class WebhookSender {
 public:
  explicit WebhookSender(std::chrono::milliseconds timeout);
  ~WebhookSender();
  void send(std::vector<OdooDelivery> deliveries);
  std::vector<OdooDelivery> log() const;
  void clear();
  bool wait_for(size_t n, std::chrono::milliseconds timeout) const;

 private:
  void run();
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::chrono::milliseconds timeout_;
  std::deque<OdooDelivery> queue_;
  std::vector<OdooDelivery> log_;
  bool stopping_ = false;
  std::thread thread_;
};

// Named arguments of a model method, bound from JSON-RPC's args and kwargs or JSON-2's body.
struct Params {
  std::map<std::string, const rapidjson::Value *> named;
  const rapidjson::Value *get(const std::string &name) const;
};

}  // namespace crmsandbox::odoo

namespace crmsandbox {

struct OdooSandbox::Impl {
  explicit Impl(OdooOptions o);

  OdooOptions options;
  OdooSandbox *owner = nullptr;  // the admin endpoints call the public interface
  mutable std::mutex mutex;      // everything below but the fault injector and the sender
  std::map<std::string, odoo::Database> databases;
  std::map<int64_t, odoo::Transaction> transactions;
  int64_t next_transaction = 1;
  int64_t clock_offset_s = 0;
  std::optional<int64_t> frozen_s;
  OdooStats stats;
  std::vector<OdooWebhookRule> rules;
  int64_t next_rule = 1;
  FaultInjector faults;
  odoo::WebhookSender sender;
  std::unique_ptr<LoopbackServer> server;

  // The request pipeline (odoo.cpp): admin, or faults then a protocol.
  HttpResponse handle(const HttpRequest &request);
  // The protocols (odoo_rpc.cpp); they take `mutex` themselves.
  HttpResponse jsonrpc(const HttpRequest &request);
  HttpResponse json2(const HttpRequest &request);
  // A model method with bound arguments; writes its result. Called with `mutex` held.
  void execute(odoo::Database &db, const odoo::User &user, const odoo::ModelDef &model,
               const std::string &method, const odoo::Params &params, odoo::JsonWriter &w,
               const std::string &stamp, std::vector<OdooDelivery> &webhooks);

  // The sandbox's controls under /_sandbox/odoo/ (odoo_admin.cpp).
  HttpResponse admin(const HttpRequest &request);

  // Records (odoo_records.cpp); called with `mutex` held.
  odoo::Database &database(const std::string &name);  // created on first use
  std::string stamp_now() const;
  // Checks and converts values as Odoo's fields would; throws odoo::Error.
  // `reserved`: (model, id) taken by an open transaction, valid many2one targets in it.
  OdooValues check_values(odoo::Database &db, const odoo::ModelDef &model, const OdooValues &values,
                          const std::set<std::pair<std::string, int64_t>> &reserved = {});
  // Default values, required fields; the row is visible on return.
  int64_t insert(odoo::Database &db, const odoo::ModelDef &model, OdooValues values,
                 const std::string &stamp, int64_t id = 0);
  void update(odoo::Database &db, const odoo::ModelDef &model, const std::vector<int64_t> &ids,
              const OdooValues &values, const std::string &stamp);
  void remove(odoo::Database &db, const odoo::ModelDef &model, const std::vector<int64_t> &ids);
  // Throws MissingError unless every id is a visible row.
  void require_rows(odoo::Database &db, const odoo::ModelDef &model,
                    const std::vector<int64_t> &ids, int64_t uid);
  std::vector<int64_t> search(odoo::Database &db, const odoo::ModelDef &model,
                              const odoo::Domain &domain, bool active_test, int64_t offset,
                              std::optional<int64_t> limit, const std::string &order);
  bool matches(odoo::Database &db, const odoo::ModelDef &model, int64_t id, const OdooValues &row,
               const odoo::Domain &domain);
  std::string display_name(odoo::Database &db, const odoo::ModelDef &model, int64_t id);
  // A field of a row as Odoo reads it; `names`: many2one as [id, name], else the bare id.
  void write_field(odoo::JsonWriter &w, odoo::Database &db, const odoo::FieldDef &field, int64_t id,
                   const OdooValues &row, const odoo::ModelDef &model, bool names);
  void write_row(odoo::JsonWriter &w, odoo::Database &db, const odoo::ModelDef &model, int64_t id,
                 const std::vector<const odoo::FieldDef *> &fields, bool names);
  // Field list of read/search_read: every field when absent; ValueError on an unknown one.
  std::vector<const odoo::FieldDef *> read_fields(const odoo::ModelDef &model,
                                                  const rapidjson::Value *fields);

  // Webhook payloads of the rules matching a change, built from the row as it is now.
  void collect_webhooks(odoo::Database &db, const odoo::ModelDef &model, int64_t id,
                        const std::string &trigger, std::vector<OdooDelivery> &out);
  // Transactions of begin_transaction and the admin endpoints; they take `mutex` and throw
  // std::invalid_argument.
  int64_t begin(const std::string &db, int64_t backdate_seconds, std::string &stamp);
  int64_t tx_create(int64_t tx, const std::string &model, const OdooValues &values);
  void tx_write(int64_t tx, const std::string &model, const std::vector<int64_t> &ids,
                const OdooValues &values);
  void tx_unlink(int64_t tx, const std::string &model, const std::vector<int64_t> &ids);
  void tx_commit(int64_t tx);
  bool tx_rollback(int64_t tx);
  // Applies an open transaction's writes with its stamp; the webhooks it triggers.
  void commit(int64_t transaction_id, std::vector<OdooDelivery> &webhooks);
};

}  // namespace crmsandbox
