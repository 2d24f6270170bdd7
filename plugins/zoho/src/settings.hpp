#pragma once
// A Zoho connection's settings: data centre and hosts, OAuth, modules and fields, webhooks.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "common.hpp"

namespace crmhost::zoho {

// One of Zoho's data centres and the two hosts a connection there talks to.
struct DataCentre {
  const char *code;      // us, eu, in, au, cn, jp, sa, ca
  const char *accounts;  // https://accounts.zoho.com
  const char *api;       // https://www.zohoapis.com
};

// The data centre named `code`, or nullptr.
const DataCentre *find_data_centre(std::string_view code);
const std::vector<DataCentre> &all_data_centres();

// actions/watch notifications (settings.notifications).
struct NotificationSettings {
  std::string channel_id;  // digits; empty: notifications are not used
  std::string token;       // echoed by Zoho in every callback, 1-49 characters
  std::string notify_url;  // the URL Zoho calls (the host's webhook route)
  std::vector<std::string> operations{"create", "edit", "delete"};
  int64_t expiry_ms = 7 * 24 * 3600 * 1000LL;        // asked of Zoho; it caps at one week
  int64_t renew_before_ms = 2 * 24 * 3600 * 1000LL;  // re-subscribe when less is left
  // Unsubscribe when crmhost stops. Off by default: the channel outlives a restart (Zoho's
  // callbacks during the gap fail and polling covers them) instead of being re-created each time.
  bool stop_on_shutdown = false;
  bool enabled() const { return !channel_id.empty(); }
};

struct Settings {
  std::string data_centre;   // empty when both URLs are explicit
  std::string accounts_url;  // without a trailing slash
  std::string api_url;       // explicit or derived; empty: the token answer's api_domain only
  bool api_url_explicit = false;
  std::string api_version = "v8";
  std::string client_id, client_secret, refresh_token;
  std::set<std::string> objects{"lead", "contact", "account", "deal"};
  std::map<std::string, std::vector<std::string>> fields;     // by object
  std::map<std::string, std::string> match_keys;              // by object
  std::map<std::string, std::set<std::string>> multi_select;  // by object
  int64_t lookback_ms = 60'000;
  unsigned page_size = 200;
  uint32_t timeout_ms = 0;             // 0: the host's default
  int64_t credits_wait_ms = 3600'000;  // how long an exhausted credit budget is waited out
  NotificationSettings notifications;
  std::string workflow_header, workflow_secret;

  // Throws sdk::Error(CRM_ERR_INVALID_INPUT) naming the setting that is wrong.
  static Settings from_json(const rapidjson::Value &settings);

  // The fields read for `object` (the configured or default ones plus Modified_Time and the
  // match key), at most 50 as Zoho allows.
  std::vector<std::string> fields_of(const ModuleInfo &module) const;
  std::string match_key_of(const ModuleInfo &module) const;
  const std::set<std::string> &multi_select_of(const ModuleInfo &module) const;
  // "data centre eu (https://accounts.zoho.eu)" or the explicit URL: for messages.
  std::string describe_accounts() const;
};

}  // namespace crmhost::zoho
