#pragma once
// The HubSpot connector: CRM v3 objects through the host's crm.http.v1, OAuth tokens kept in
// crm.state.v1, webhooks verified by signature.hpp and parsed by webhook_events.hpp.
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
#include "signature.hpp"

namespace crmhost::hubspot {

struct Settings {
  std::string token;  // private-app token; empty with OAuth
  std::string client_id, client_secret, refresh_token;
  std::string base_url = "https://api.hubapi.com";
  SignatureSettings signature;
  std::set<std::string> objects{"contact", "company", "deal"};
  std::map<std::string, std::vector<std::string>> properties;  // by object
  int64_t lookback_ms = 30'000;
  unsigned page_size = 100;
  uint32_t timeout_ms = 0;  // 0: the host's default

  bool oauth() const { return token.empty(); }
  static Settings from_json(const rapidjson::Value &settings);
};

class HubSpotConnector : public sdk::Connector {
 public:
  HubSpotConnector(crm_host_instance *instance, const rapidjson::Value &settings);
  static std::string describe();

  crm_status check(rapidjson::Document &result) override;
  crm_status poll(const rapidjson::Value &request, rapidjson::Document &result) override;
  crm_status fetch(const rapidjson::Value &request, rapidjson::Document &result) override;
  crm_status push(const rapidjson::Value &request, rapidjson::Document &result) override;
  crm_status webhook(const rapidjson::Value &request, std::string_view body,
                     rapidjson::Document &result) override;

 private:
  using Alloc = rapidjson::Document::AllocatorType;

  // One authenticated API call; a 401 under OAuth refreshes the token and tries once more.
  // Any HTTP status is returned; transport failures throw sdk::Error.
  sdk::HttpResponse api(std::string_view method, const std::string &path, std::string_view body,
                        uint32_t flags, std::string_view bucket = {});
  // api() for reads whose failure fails the whole call: 2xx (and 207) or a thrown sdk::Error.
  rapidjson::Document api_json(std::string_view method, const std::string &path,
                               std::string_view body, uint32_t flags, std::string_view bucket = {});
  [[noreturn]] void fail(const sdk::HttpResponse &response, const std::string &what) const;

  // OAuth: the access token to send, refreshed before its expiry or when `force`d.
  std::string access_token(bool force_refresh);
  void refresh_access_token();

  const ObjectInfo &object_of(const rapidjson::Value &request, const char *call) const;
  std::vector<std::string> properties_of(const ObjectInfo &object) const;
  rapidjson::Value record_json(const ObjectInfo &object, const rapidjson::Value &result,
                               Alloc &alloc) const;
  void check_cancel() const;

  // poll.cpp
  struct SearchPage {
    rapidjson::Document doc;
    std::vector<const rapidjson::Value *> results;
    std::optional<uint64_t> total;
  };
  SearchPage search(const ObjectInfo &object, rapidjson::Value filters, const char *sort_by,
                    unsigned limit);
  std::optional<int64_t> modified_ms(const ObjectInfo &object, const rapidjson::Value &r) const;

  // push.cpp
  struct PushItem;
  void push_batch(const ObjectInfo &object, const std::string &action,
                  std::vector<PushItem *> items, const std::string &id_property,
                  bool &anything_written);
  void resolve_by_property(const ObjectInfo &object, const std::string &property,
                           const sdk::MatchNormalize &normalize, std::vector<PushItem> &items);
  void confirm_ids(const ObjectInfo &object, std::vector<PushItem> &items);
  void delete_one(const ObjectInfo &object, PushItem &item, bool &anything_written);

  Settings settings_;
  // OAuth access token and when to refresh it (Unix ms); mirrored in crm.state.v1.
  std::string access_token_;
  std::string current_refresh_token_;  // HubSpot's newer one when it rotates it
  int64_t refresh_at_ms_ = 0;
  bool state_loaded_ = false;
};

}  // namespace crmhost::hubspot
