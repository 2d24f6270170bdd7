#pragma once
// The Zoho CRM connector: the v8 REST API through the host's crm.http.v1, OAuth tokens and
// channel state kept in crm.state.v1, webhooks verified and parsed by webhook_events.hpp.
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "channel.hpp"
#include "common.hpp"
#include "crmhost/plugin.hpp"
#include "settings.hpp"

namespace crmhost::zoho {

class ZohoConnector : public sdk::Connector {
 public:
  ZohoConnector(crm_host_instance *instance, const rapidjson::Value &settings);
  static std::string describe();

  crm_status check(rapidjson::Document &result) override;
  crm_status poll(const rapidjson::Value &request, rapidjson::Document &result) override;
  crm_status fetch(const rapidjson::Value &request, rapidjson::Document &result) override;
  crm_status push(const rapidjson::Value &request, rapidjson::Document &result) override;
  crm_status webhook(const rapidjson::Value &request, std::string_view body,
                     rapidjson::Document &result) override;

  // channel.cpp, crm.maintenance.v1: {"reason":"start"|"periodic"} ensures the actions/watch
  // channel of settings.notifications, "shutdown" stops it; next_in_ms asks for the renewal.
  crm_status maintain(const rapidjson::Value &request, rapidjson::Document &result) override;
  ChannelReport ensure_channel();
  ChannelReport stop_channel();

  const Settings &settings() const { return settings_; }

 private:
  using Alloc = rapidjson::Document::AllocatorType;
  using Value = rapidjson::Value;
  using Headers = std::vector<std::pair<std::string, std::string>>;

  // One authenticated call to `path` (after /crm/<version>). A 401 INVALID_TOKEN refreshes the
  // token and tries once more; an exhausted credit budget fails at once with rate_limited. Any
  // HTTP status is returned; transport failures throw sdk::Error.
  sdk::HttpResponse api(std::string_view method, const std::string &path, std::string_view body,
                        uint32_t flags, const Headers &extra = {});
  // api() for calls whose failure fails the whole call: the JSON object of a 2xx (an empty object
  // for 204 and 304), or a thrown sdk::Error.
  rapidjson::Document api_json(std::string_view method, const std::string &path,
                               std::string_view body, uint32_t flags, const Headers &extra = {},
                               int *status = nullptr);
  [[noreturn]] void fail(const sdk::HttpResponse &response, const std::string &what);

  // OAuth: the access token to send, refreshed before its expiry or when `force`d.
  std::string access_token(bool force_refresh);
  void refresh_access_token();
  std::string api_base();

  // Credits: Zoho's rolling 24-hour budget. Once it is spent every call fails with rate_limited
  // until credits_until_ms_ instead of spending requests on refusals.
  void throw_if_out_of_credits() const;
  void note_credits(const sdk::HttpResponse &response);
  void out_of_credits(int64_t retry_after_ms, const std::string &why);

  const ModuleInfo &module_of(const Value &request, const char *call) const;
  std::string list_path(const ModuleInfo &module) const;
  Value record_json(const ModuleInfo &module, const Value &record, Alloc &alloc) const;
  // The records of `ids` (at most 100) with `fields` (comma-separated): one GET with ids=, then,
  // when the answer shows ids= was not honoured (records not asked for), one GET per id left.
  // A JSON array of Zoho's records; ids Zoho does not hold are simply absent.
  rapidjson::Document read_ids(const ModuleInfo &module, const std::vector<std::string> &ids,
                               const std::string &fields);
  void check_cancel() const;

  // poll.cpp
  struct Candidate {
    int64_t ms;
    std::string id;
    const Value *record;
  };
  bool read_deletions(const ModuleInfo &module, Cursor &pos, Value &records, Alloc &alloc);

  // push.cpp
  struct PushItem;
  void write_batch(const ModuleInfo &module, const std::string &action,
                   std::vector<PushItem *> items, const std::string &match_key, bool &written);
  void delete_batch(const ModuleInfo &module, std::vector<PushItem *> items, bool &written);
  void resolve_by_key(const ModuleInfo &module, const std::string &key,
                      const sdk::MatchNormalize &normalize, std::vector<PushItem> &items);
  void confirm_ids(const ModuleInfo &module, std::vector<PushItem> &items);

  Settings settings_;
  // OAuth access token, the API host Zoho named with it, and when to refresh (Unix ms); mirrored
  // in crm.state.v1.
  std::string access_token_, api_domain_;
  int64_t refresh_at_ms_ = 0;
  bool state_loaded_ = false;
  int64_t credits_until_ms_ = 0;
  std::optional<int64_t> credits_remaining_;  // the last X-API-CREDITS-REMAINING seen
};

}  // namespace crmhost::zoho
