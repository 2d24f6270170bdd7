#include "settings.hpp"

#include <algorithm>

#include "crmhost/plugin.hpp"

namespace crmhost::zoho {
namespace {

using rapidjson::Value;
using sdk::Error;
using sdk::get_string;
using sdk::string_list;

const std::vector<DataCentre> kDataCentres = {
    {"us", "https://accounts.zoho.com", "https://www.zohoapis.com"},
    {"eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"},
    {"in", "https://accounts.zoho.in", "https://www.zohoapis.in"},
    {"au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"},
    {"cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"},
    {"jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"},
    {"sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"},
    {"ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"},
};

// What each module reads unless settings.fields says otherwise: the fields the presets map.
const std::map<std::string, std::vector<std::string>> &default_fields() {
  static const std::map<std::string, std::vector<std::string>> defaults = {
      {"lead",
       {"First_Name", "Last_Name", "Email", "Phone", "Mobile", "Company", "Designation",
        "Lead_Source", "Lead_Status", "Industry", "Website", "Street", "City", "State", "Zip_Code",
        "Country", "Created_Time", "Modified_Time"}},
      {"contact",
       {"First_Name", "Last_Name", "Email", "Phone", "Mobile", "Account_Name", "Title",
        "Department", "Lead_Source", "Mailing_Street", "Mailing_City", "Mailing_State",
        "Mailing_Zip", "Mailing_Country", "Created_Time", "Modified_Time"}},
      {"account",
       {"Account_Name", "Website", "Phone", "Industry", "Employees", "Annual_Revenue",
        "Billing_Street", "Billing_City", "Billing_State", "Billing_Code", "Billing_Country",
        "Created_Time", "Modified_Time"}},
      {"deal",
       {"Deal_Name", "Amount", "Stage", "Probability", "Closing_Date", "Account_Name",
        "Contact_Name", "Pipeline", "Currency", "Created_Time", "Modified_Time"}},
  };
  return defaults;
}

std::string strip_slashes(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

bool is_http_url(const std::string &url) {
  return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
}

// settings.<name> as an object keyed by object name, each member passed to `read`.
template <class Read>
void per_object(const Value &s, const char *name, Read &&read) {
  auto it = s.FindMember(name);
  if (it == s.MemberEnd()) return;
  if (!it->value.IsObject())
    throw Error(CRM_ERR_INVALID_INPUT, std::string("settings.") + name + ": expected an object");
  for (const auto &m : it->value.GetObject()) {
    const ModuleInfo *module = find_module(m.name.GetString());
    if (!module)
      throw Error(CRM_ERR_INVALID_INPUT, std::string("settings.") + name + ": \"" +
                                             m.name.GetString() +
                                             "\" is not lead, contact, account or deal");
    read(*module, m.value);
  }
}

int64_t seconds_setting(const Value &s, const char *name, int64_t fallback_ms) {
  auto it = s.FindMember(name);
  if (it == s.MemberEnd() || !it->value.IsUint64()) return fallback_ms;
  return static_cast<int64_t>(it->value.GetUint64()) * 1000;
}

NotificationSettings read_notifications(const Value &n) {
  NotificationSettings out;
  if (!n.IsObject()) throw Error(CRM_ERR_INVALID_INPUT, "settings.notifications: an object");
  out.channel_id = get_string(n, "channel_id");
  if (out.channel_id.empty() && n.HasMember("channel_id") && n["channel_id"].IsUint64())
    out.channel_id = std::to_string(n["channel_id"].GetUint64());
  if (out.channel_id.empty() || out.channel_id.size() > 19 ||
      !std::all_of(out.channel_id.begin(), out.channel_id.end(),
                   [](char c) { return c >= '0' && c <= '9'; }))
    throw Error(CRM_ERR_INVALID_INPUT,
                "settings.notifications.channel_id: Zoho's channel ids are numbers (a long): "
                "give digits, e.g. \"1000000068001\"");
  out.token = get_string(n, "token");
  // Zoho's page says both "up to 50" and "less than 50": 49 is safe under either.
  if (out.token.empty() || out.token.size() > 49)
    throw Error(CRM_ERR_INVALID_INPUT,
                "settings.notifications.token: 1 to 49 characters (Zoho refuses longer tokens)");
  out.notify_url = get_string(n, "notify_url");
  if (!is_http_url(out.notify_url))
    throw Error(CRM_ERR_INVALID_INPUT,
                "settings.notifications.notify_url: the http(s) URL Zoho calls is required");
  if (n.HasMember("operations")) {
    out.operations = string_list(n["operations"]);
    for (const auto &op : out.operations)
      if (op != "create" && op != "edit" && op != "delete" && op != "all")
        throw Error(CRM_ERR_INVALID_INPUT, "settings.notifications.operations: \"" + op +
                                               "\" is not create, edit, delete or all");
    if (out.operations.empty())
      throw Error(CRM_ERR_INVALID_INPUT, "settings.notifications.operations: name at least one");
  }
  if (auto it = n.FindMember("expiry_hours"); it != n.MemberEnd() && it->value.IsUint())
    out.expiry_ms = std::clamp<int64_t>(it->value.GetUint(), 1, 168) * 3600 * 1000;
  if (auto it = n.FindMember("renew_before_hours"); it != n.MemberEnd() && it->value.IsUint())
    out.renew_before_ms = static_cast<int64_t>(it->value.GetUint()) * 3600 * 1000;
  if (auto it = n.FindMember("stop_on_shutdown"); it != n.MemberEnd() && it->value.IsBool())
    out.stop_on_shutdown = it->value.GetBool();
  // Renewing must leave a channel alive between two maintenance runs: at most half its life.
  out.renew_before_ms = std::min(out.renew_before_ms, out.expiry_ms / 2);
  return out;
}

}  // namespace

const std::vector<DataCentre> &all_data_centres() {
  return kDataCentres;
}

const DataCentre *find_data_centre(std::string_view code) {
  for (const auto &dc : kDataCentres)
    if (code == dc.code) return &dc;
  return nullptr;
}

Settings Settings::from_json(const Value &s) {
  if (!s.IsObject()) throw Error(CRM_ERR_INVALID_INPUT, "settings: expected an object");
  Settings out;
  out.data_centre = get_string(s, "data_centre");
  out.accounts_url = strip_slashes(get_string(s, "accounts_url"));
  out.api_url = strip_slashes(get_string(s, "api_url"));
  out.api_url_explicit = !out.api_url.empty();
  if (!out.data_centre.empty()) {
    const DataCentre *dc = find_data_centre(out.data_centre);
    if (!dc)
      throw Error(CRM_ERR_INVALID_INPUT, "settings.data_centre: \"" + out.data_centre +
                                             "\" is not us, eu, in, au, cn, jp, sa or ca");
    if (out.accounts_url.empty()) out.accounts_url = dc->accounts;
    if (out.api_url.empty()) out.api_url = dc->api;
  } else if (out.accounts_url.empty()) {
    throw Error(CRM_ERR_INVALID_INPUT,
                "settings.data_centre: name the Zoho data centre of the account (us, eu, in, au, "
                "cn, jp, sa, ca), or give accounts_url (and api_url) explicitly");
  }
  if (!is_http_url(out.accounts_url))
    throw Error(CRM_ERR_INVALID_INPUT,
                "settings.accounts_url: an http:// or https:// URL is required");
  if (!out.api_url.empty() && !is_http_url(out.api_url))
    throw Error(CRM_ERR_INVALID_INPUT, "settings.api_url: an http:// or https:// URL is required");
  if (auto v = get_string(s, "api_version"); !v.empty()) out.api_version = v;

  auto auth = s.FindMember("auth");
  if (auth == s.MemberEnd() || !auth->value.IsObject())
    throw Error(CRM_ERR_INVALID_INPUT,
                "settings.auth: {client_id, client_secret, refresh_token} are required");
  out.client_id = get_string(auth->value, "client_id");
  out.client_secret = get_string(auth->value, "client_secret");
  out.refresh_token = get_string(auth->value, "refresh_token");
  if (out.client_id.empty() || out.client_secret.empty() || out.refresh_token.empty())
    throw Error(CRM_ERR_INVALID_INPUT,
                "settings.auth: client_id, client_secret and refresh_token are each a non-empty "
                "string (the secrets as ${ENV} references)");

  if (s.HasMember("objects")) {
    out.objects.clear();
    for (const auto &o : string_list(s["objects"])) {
      const ModuleInfo *module = find_module(o);
      if (!module)
        throw Error(CRM_ERR_INVALID_INPUT,
                    "settings.objects: \"" + o + "\" is not lead, contact, account or deal");
      out.objects.insert(module->object);
    }
    if (out.objects.empty())
      throw Error(CRM_ERR_INVALID_INPUT, "settings.objects: name at least one object");
  }
  per_object(s, "fields", [&](const ModuleInfo &m, const Value &v) {
    out.fields[m.object] = string_list(v);
    if (out.fields[m.object].size() > 48)
      throw Error(CRM_ERR_INVALID_INPUT, std::string("settings.fields.") + m.object +
                                             ": Zoho reads at most 50 fields a call (48 besides "
                                             "Modified_Time and the match key)");
  });
  per_object(s, "match_keys", [&](const ModuleInfo &m, const Value &v) {
    if (!v.IsString() || v.GetStringLength() == 0)
      throw Error(CRM_ERR_INVALID_INPUT,
                  std::string("settings.match_keys.") + m.object + ": a field API name");
    out.match_keys[m.object] = v.GetString();
  });
  per_object(s, "multi_select_fields", [&](const ModuleInfo &m, const Value &v) {
    for (const auto &f : string_list(v)) out.multi_select[m.object].insert(f);
  });
  out.lookback_ms = seconds_setting(s, "lookback_seconds", out.lookback_ms);
  if (s.HasMember("page_size") && s["page_size"].IsUint())
    out.page_size = std::clamp(s["page_size"].GetUint(), 1u, 200u);
  if (s.HasMember("timeout_ms") && s["timeout_ms"].IsUint())
    out.timeout_ms = s["timeout_ms"].GetUint();
  out.credits_wait_ms = seconds_setting(s, "credits_wait_seconds", out.credits_wait_ms);
  if (auto n = s.FindMember("notifications"); n != s.MemberEnd())
    out.notifications = read_notifications(n->value);
  if (auto w = s.FindMember("workflow_webhook"); w != s.MemberEnd()) {
    out.workflow_header = get_string(w->value, "header");
    out.workflow_secret = get_string(w->value, "secret");
    if (out.workflow_header.empty() || out.workflow_secret.empty())
      throw Error(CRM_ERR_INVALID_INPUT,
                  "settings.workflow_webhook: both header (its name) and secret are required");
  }
  return out;
}

std::vector<std::string> Settings::fields_of(const ModuleInfo &module) const {
  auto configured = fields.find(module.object);
  std::vector<std::string> out =
      configured != fields.end() ? configured->second : default_fields().at(module.object);
  // The cursor needs the modification time; pushes match on the key.
  for (const std::string &required : {std::string("Modified_Time"), match_key_of(module)})
    if (std::find(out.begin(), out.end(), required) == out.end()) out.push_back(required);
  out.erase(std::remove(out.begin(), out.end(), "id"), out.end());
  return out;
}

std::string Settings::match_key_of(const ModuleInfo &module) const {
  auto it = match_keys.find(module.object);
  return it != match_keys.end() ? it->second : module.default_match;
}

const std::set<std::string> &Settings::multi_select_of(const ModuleInfo &module) const {
  static const std::set<std::string> none;
  auto it = multi_select.find(module.object);
  return it != multi_select.end() ? it->second : none;
}

std::string Settings::describe_accounts() const {
  if (!data_centre.empty()) return "data centre " + data_centre + " (" + accounts_url + ")";
  return accounts_url;
}

}  // namespace crmhost::zoho
