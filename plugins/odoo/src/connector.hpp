#pragma once
// The Odoo connector: res.partner and crm.lead through JSON-RPC (/jsonrpc, execute_kw) or
// JSON-2 (/json/2/{model}/{method}), all HTTP through the host's crm.http.v1 and the
// reconciliation snapshots in crm.state.v1.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common.hpp"
#include "crmhost/plugin.hpp"

namespace crmhost::odoo {

struct Settings {
  std::string url;  // without a trailing slash
  std::string database, login;
  std::string secret;  // the API key or the password
  bool api_key = true;
  bool json2 = false;
  std::set<std::string> objects{"contact", "company", "deal"};
  std::map<std::string, std::string> models;               // by object; defaults in common
  std::map<std::string, std::vector<std::string>> fields;  // by object
  int64_t lookback_s = 60;
  int64_t reconcile_interval_s = 3600;  // 0: no deletion detection
  unsigned page_size = 200;
  uint32_t timeout_ms = 0;  // 0: the host's default
  std::string webhook_header, webhook_secret;

  static Settings from_json(const rapidjson::Value &settings);
};

// One object as this connection reads and writes it.
struct Target {
  const ObjectInfo *info;
  std::string model;
  std::vector<std::string> fields;
  bool partner_kind() const { return info->is_company >= 0 && model == "res.partner"; }
};

class OdooConnector : public sdk::Connector {
 public:
  OdooConnector(crm_host_instance *instance, const rapidjson::Value &settings);
  static std::string describe();

  crm_status check(rapidjson::Document &result) override;
  crm_status poll(const rapidjson::Value &request, rapidjson::Document &result) override;
  crm_status fetch(const rapidjson::Value &request, rapidjson::Document &result) override;
  crm_status push(const rapidjson::Value &request, rapidjson::Document &result) override;
  crm_status webhook(const rapidjson::Value &request, std::string_view body,
                     rapidjson::Document &result) override;

 private:
  using Alloc = rapidjson::Document::AllocatorType;
  using Value = rapidjson::Value;

  // One model method. `args` holds named arguments (JSON-2's body); JSON-RPC sends the leading
  // ones positionally. The reply's root is the method's result, or `fault` says what failed.
  // Transport failures throw sdk::Error.
  struct Reply {
    rapidjson::Document result;
    std::optional<Fault> fault;
  };
  Reply rpc(const std::string &model, const std::string &method, rapidjson::Document &args,
            bool idempotent);
  // rpc() whose fault fails the whole call.
  rapidjson::Document call(const std::string &model, const std::string &method,
                           rapidjson::Document &args, bool idempotent);
  [[noreturn]] void fail(const Fault &fault, const std::string &what);
  int64_t uid();  // JSON-RPC: authenticates once and keeps the uid
  void check_cancel() const;

  const Target &target_of(const rapidjson::Value &request, const char *call) const;
  // ('active','in',[true,false]) and, for partners, the is_company term.
  void base_domain(const Target &t, Value &domain, Alloc &alloc) const;
  Value record_json(const Target &t, const Value &r, Alloc &alloc) const;
  // Adds _country_code to records whose country_id is set (res.country codes, cached).
  void add_country_codes(Value &records, Alloc &alloc);
  std::vector<int64_t> search_ids(const Target &t);

  // Field types of a model (fields_get), for false -> null and many2one writes.
  struct FieldType {
    std::string type, relation;
  };
  const std::map<std::string, FieldType> &field_types(const std::string &model);
  // A many2one value named by text -> the id, cached; nullopt when nothing has that name.
  std::optional<int64_t> lookup_many2one(const std::string &relation, const std::string &value);

  // poll.cpp: reconciliation snapshots (ids present at a reconciliation) and ids seen since.
  struct IdMemo {
    std::string token;
    std::vector<int64_t> snapshot;  // sorted
    std::set<int64_t> seen;
    size_t seen_chunks = 0;
  };
  IdMemo &id_memo(const Target &t, const std::string &token);
  void note_seen(const Target &t, IdMemo &memo, const std::vector<int64_t> &ids);
  void write_snapshot(const Target &t, const std::string &token, const std::vector<int64_t> &ids);
  void drop_snapshot(const Target &t, const std::string &token);
  std::string new_token() const;

  // push.cpp
  struct PushItem;
  std::string to_vals(const Target &t, const Value &data, Value &vals, Alloc &alloc);
  void create_batch(const Target &t, std::vector<PushItem *> items, bool &written);
  void write_one(const Target &t, PushItem &item, bool &written);
  void remove_batch(const Target &t, std::vector<PushItem *> items, bool archive, bool &written);
  void resolve_by_match_key(const Target &t, const std::string &match_on,
                            const sdk::MatchNormalize &normalize, std::vector<PushItem> &items);
  void confirm_ids(const Target &t, std::vector<PushItem> &items);

  Settings settings_;
  std::map<std::string, Target> targets_;  // by object
  std::optional<int64_t> uid_;
  uint64_t next_request_id_ = 1;
  std::map<std::string, std::map<std::string, FieldType>> field_types_;  // by model
  std::map<std::string, int64_t> many2one_ids_;                          // "relation\nvalue" -> id
  std::map<int64_t, std::string> country_codes_;  // res.country id -> ISO code
  bool country_codes_refused_ = false;
  std::map<std::string, IdMemo> id_memos_;  // by object
};

}  // namespace crmhost::odoo
