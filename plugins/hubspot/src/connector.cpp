#include "connector.hpp"

#include <algorithm>

#include "webhook_events.hpp"

namespace crmhost::hubspot {

using rapidjson::Value;
using sdk::Error;

namespace {

const char kTokenStateKey[] = "oauth.access_token";

using sdk::get_string;

using sdk::string_list;

// What each object reads unless `properties` says otherwise: the fields the presets map.
const std::map<std::string, std::vector<std::string>> &default_properties() {
  static const std::map<std::string, std::vector<std::string>> defaults = {
      {"contact",
       {"email", "firstname", "lastname", "phone", "mobilephone", "company", "jobtitle",
        "lifecyclestage", "hs_analytics_source", "address", "city", "state", "zip", "country",
        "associatedcompanyid", "createdate", "lastmodifieddate"}},
      {"company",
       {"name", "domain", "phone", "industry", "numberofemployees", "annualrevenue", "address",
        "city", "state", "zip", "country", "createdate", "hs_lastmodifieddate"}},
      {"deal",
       {"dealname", "amount", "deal_currency_code", "dealstage", "pipeline",
        "hs_deal_stage_probability", "closedate", "hubspot_owner_id", "createdate",
        "hs_lastmodifieddate"}},
  };
  return defaults;
}

}  // namespace

Settings Settings::from_json(const Value &s) {
  if (!s.IsObject()) throw Error(CRM_ERR_INVALID_INPUT, "settings: expected an object");
  Settings out;
  const std::string shorthand = get_string(s, "access_token");
  auto auth = s.FindMember("auth");
  if (auth != s.MemberEnd()) {
    if (!shorthand.empty())
      throw Error(CRM_ERR_INVALID_INPUT, "settings: give either auth or access_token, not both");
    const Value &a = auth->value;
    out.token = get_string(a, "token");
    out.client_id = get_string(a, "client_id");
    out.client_secret = get_string(a, "client_secret");
    out.refresh_token = get_string(a, "refresh_token");
    const bool oauth =
        !out.client_id.empty() || !out.client_secret.empty() || !out.refresh_token.empty();
    if (out.token.empty() == !oauth ||
        (oauth &&
         (out.client_id.empty() || out.client_secret.empty() || out.refresh_token.empty())))
      throw Error(CRM_ERR_INVALID_INPUT,
                  "settings.auth: either {token} (a private-app token) or {client_id, "
                  "client_secret, refresh_token} (OAuth), each a non-empty string");
  } else if (!shorthand.empty()) {
    out.token = shorthand;
  } else {
    throw Error(CRM_ERR_INVALID_INPUT,
                "settings.auth: a private-app token or OAuth credentials are required");
  }
  out.signature.secret = get_string(s, "app_secret");
  if (s.HasMember("signature_versions")) {
    out.signature.versions = string_list(s["signature_versions"]);
    for (const auto &v : out.signature.versions)
      if (v != "v1" && v != "v2" && v != "v3")
        throw Error(CRM_ERR_INVALID_INPUT,
                    "settings.signature_versions: \"" + v + "\" is not v1, v2 or v3");
  }
  out.signature.public_base_url = get_string(s, "public_base_url");
  if (auto base = get_string(s, "base_url"); !base.empty()) out.base_url = base;
  while (!out.base_url.empty() && out.base_url.back() == '/') out.base_url.pop_back();
  if (out.base_url.rfind("http://", 0) != 0 && out.base_url.rfind("https://", 0) != 0)
    throw Error(CRM_ERR_INVALID_INPUT, "settings.base_url: an http:// or https:// URL is required");
  if (s.HasMember("objects")) {
    out.objects.clear();
    for (const auto &o : string_list(s["objects"])) {
      const ObjectInfo *info = find_object(o);
      if (!info)
        throw Error(CRM_ERR_INVALID_INPUT,
                    "settings.objects: \"" + o + "\" is not contact, company or deal");
      out.objects.insert(info->name);
    }
  }
  if (auto props = s.FindMember("properties"); props != s.MemberEnd() && props->value.IsObject())
    for (const auto &m : props->value.GetObject()) {
      const ObjectInfo *info = find_object(m.name.GetString());
      if (!info)
        throw Error(CRM_ERR_INVALID_INPUT, std::string("settings.properties: \"") +
                                               m.name.GetString() +
                                               "\" is not contact, company or deal");
      out.properties[info->name] = string_list(m.value);
    }
  if (s.HasMember("lookback_seconds") && s["lookback_seconds"].IsUint())
    out.lookback_ms = static_cast<int64_t>(s["lookback_seconds"].GetUint()) * 1000;
  if (s.HasMember("page_size") && s["page_size"].IsUint())
    out.page_size = std::clamp(s["page_size"].GetUint(), 1u, 200u);
  if (s.HasMember("timeout_ms") && s["timeout_ms"].IsUint())
    out.timeout_ms = s["timeout_ms"].GetUint();
  return out;
}

HubSpotConnector::HubSpotConnector(crm_host_instance *instance, const Value &settings)
    : Connector(instance), settings_(Settings::from_json(settings)) {}

std::string HubSpotConnector::describe() {
  return R"json({"name":"hubspot","display_name":"HubSpot CRM (v3 API)",
  "objects":[{"name":"contact","id_field":"id"},{"name":"company","id_field":"id"},
             {"name":"deal","id_field":"id"}],
  "capabilities":["check","poll","fetch","push","webhook","cancel"],
  "push_modes":["upsert","create","update","delete","archive","match"],
  "match_normalize":["trim","lower"],
  "max_batch":100,
  "rate_limits":{"default":{"requests":100,"per_ms":10000},
                 "search":{"requests":4,"per_ms":1000}},
  "settings_schema":{
    "type":"object",
    "additionalProperties":false,
    "oneOf":[{"required":["auth"]},{"required":["access_token"]}],
    "properties":{
      "auth":{"oneOf":[
        {"type":"object","additionalProperties":false,"required":["token"],
         "properties":{"token":{"type":"string","minLength":1}}},
        {"type":"object","additionalProperties":false,
         "required":["client_id","client_secret","refresh_token"],
         "properties":{"client_id":{"type":"string","minLength":1},
                       "client_secret":{"type":"string","minLength":1},
                       "refresh_token":{"type":"string","minLength":1}}}]},
      "access_token":{"type":"string","minLength":1},
      "app_secret":{"type":"string","minLength":1},
      "signature_versions":{"type":"array","minItems":1,"uniqueItems":true,
                            "items":{"enum":["v1","v2","v3"]}},
      "public_base_url":{"type":"string","pattern":"^https?://"},
      "base_url":{"type":"string","pattern":"^https?://"},
      "objects":{"type":"array","minItems":1,"uniqueItems":true,
                 "items":{"enum":["contact","company","deal"]}},
      "properties":{"type":"object","additionalProperties":false,
        "properties":{"contact":{"type":"array","items":{"type":"string","minLength":1}},
                      "company":{"type":"array","items":{"type":"string","minLength":1}},
                      "deal":{"type":"array","items":{"type":"string","minLength":1}}}},
      "lookback_seconds":{"type":"integer","minimum":0,"maximum":86400},
      "page_size":{"type":"integer","minimum":1,"maximum":200},
      "timeout_ms":{"type":"integer","minimum":1000,"maximum":600000}
    }}})json";
}

void HubSpotConnector::check_cancel() const {
  if (cancelled()) throw Error(CRM_ERR_CANCELLED, "cancelled");
}

const ObjectInfo &HubSpotConnector::object_of(const Value &request, const char *call) const {
  const std::string name = get_string(request, "object");
  const ObjectInfo *info = find_object(name);
  if (!info)
    throw Error(CRM_ERR_UNSUPPORTED,
                std::string(call) + ": object \"" + name + "\" is not contact, company or deal");
  if (!settings_.objects.count(info->name))
    throw Error(CRM_ERR_UNSUPPORTED, std::string(call) + ": object \"" + info->name +
                                         "\" is not in this connection's settings.objects");
  return *info;
}

std::vector<std::string> HubSpotConnector::properties_of(const ObjectInfo &object) const {
  auto configured = settings_.properties.find(object.name);
  std::vector<std::string> props = configured != settings_.properties.end()
                                       ? configured->second
                                       : default_properties().at(object.name);
  // The cursor needs the modification time; contacts are matched on email.
  for (const char *required : {object.modified_prop, "hs_object_id"})
    if (std::find(props.begin(), props.end(), required) == props.end()) props.push_back(required);
  if (std::string_view(object.name) == "contact" &&
      std::find(props.begin(), props.end(), "email") == props.end())
    props.push_back("email");
  return props;
}

// ---- HTTP and auth ----------------------------------------------------------------------------

sdk::HttpResponse HubSpotConnector::api(std::string_view method, const std::string &path,
                                        std::string_view body, uint32_t flags,
                                        std::string_view bucket) {
  check_cancel();
  const std::string url = settings_.base_url + path;
  for (int attempt = 0;; ++attempt) {
    const std::string token = settings_.oauth() ? access_token(attempt > 0) : settings_.token;
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Authorization", "Bearer " + token}, {"Accept", "application/json"}};
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    sdk::HttpResponse response =
        http(method, url, headers, body, settings_.timeout_ms, flags, bucket);
    // An access token can be revoked or expire early: refresh once and repeat the call.
    if (response.status == 401 && settings_.oauth() && attempt == 0) {
      log(CRM_LOG_INFO, "HubSpot answered 401; refreshing the OAuth access token");
      continue;
    }
    return response;
  }
}

void HubSpotConnector::fail(const sdk::HttpResponse &response, const std::string &what) const {
  std::string detail;
  rapidjson::Document doc;
  if (sdk::try_parse_json(response.body, doc) == sdk::JsonParse::ok && doc.IsObject()) {
    detail = get_string(doc, "category");
    const std::string message = get_string(doc, "message");
    if (!message.empty()) detail += (detail.empty() ? "" : ": ") + message.substr(0, 300);
  }
  const std::string text = what + ": HubSpot answered " + std::to_string(response.status) +
                           (detail.empty() ? "" : " (" + detail + ")");
  const int status = response.status;
  if (status == 401)
    throw Error(CRM_ERR_UNAUTHORIZED,
                what +
                    ": HubSpot refused the credentials (401); check the private-app token or "
                    "the OAuth client and refresh token",
                status, 0, 0);
  if (status == 403)
    throw Error(CRM_ERR_UNAUTHORIZED, text + "; the token lacks a scope this call needs", status, 0,
                0);
  if (status == 429) {
    // The host already waited and retried; tell the caller how long HubSpot's window is.
    int retry_ms = response.body.find("secondly limit") != std::string::npos ? 1000 : 10000;
    if (auto after = response.header("Retry-After")) try {
        retry_ms = std::max(retry_ms, std::stoi(*after) * 1000);
      } catch (const std::exception &) {
      }
    throw Error(CRM_ERR_RATE_LIMITED, text, status, retry_ms, 1);
  }
  throw Error(CRM_ERR_REMOTE, text, status, 0, status >= 500 ? 1 : 0);
}

rapidjson::Document HubSpotConnector::api_json(std::string_view method, const std::string &path,
                                               std::string_view body, uint32_t flags,
                                               std::string_view bucket) {
  const sdk::HttpResponse response = api(method, path, body, flags, bucket);
  const std::string what = std::string(method) + " " + path;
  if (response.status < 200 || response.status > 299) fail(response, what);
  rapidjson::Document doc;
  const sdk::JsonParse parsed = sdk::try_parse_json(response.body, doc);
  // A hostile or broken answer: the same request would get it again.
  if (parsed == sdk::JsonParse::too_deep)
    throw Error(CRM_ERR_REMOTE, what + ": HubSpot answered " + too_deep(response.status),
                response.status, 0, 0);
  if (parsed != sdk::JsonParse::ok || !doc.IsObject())
    throw Error(CRM_ERR_REMOTE,
                what + ": HubSpot answered " + std::to_string(response.status) +
                    " with a body that is not a JSON object",
                response.status, 0, 1);
  return doc;
}

std::string HubSpotConnector::access_token(bool force_refresh) {
  const int64_t now = sdk::Host::now_ms();
  if (!state_loaded_) {
    state_loaded_ = true;
    // A restart reuses the token the last process refreshed, if it was issued for the same
    // client and refresh token.
    if (auto saved = state_get(kTokenStateKey)) {
      rapidjson::Document doc;
      if (sdk::try_parse_json(*saved, doc) == sdk::JsonParse::ok && doc.IsObject() &&
          get_string(doc, "for") ==
              sha256_hex(settings_.client_id + "\n" + settings_.refresh_token) &&
          doc.HasMember("refresh_at_ms") && doc["refresh_at_ms"].IsInt64()) {
        access_token_ = get_string(doc, "access_token");
        refresh_at_ms_ = doc["refresh_at_ms"].GetInt64();
        if (auto rotated = get_string(doc, "refresh_token"); !rotated.empty())
          current_refresh_token_ = rotated;
      }
    }
  }
  if (force_refresh || access_token_.empty() || now >= refresh_at_ms_) refresh_access_token();
  return access_token_;
}

void HubSpotConnector::refresh_access_token() {
  const std::string refresh =
      current_refresh_token_.empty() ? settings_.refresh_token : current_refresh_token_;
  const std::string form =
      "grant_type=refresh_token&client_id=" + form_encode(settings_.client_id) +
      "&client_secret=" + form_encode(settings_.client_secret) +
      "&refresh_token=" + form_encode(refresh);
  const sdk::HttpResponse response =
      http("POST", settings_.base_url + "/oauth/v1/token",
           {{"Content-Type", "application/x-www-form-urlencoded;charset=utf-8"},
            {"Accept", "application/json"}},
           form, settings_.timeout_ms, CRM_HTTP_IDEMPOTENT);
  if (response.status == 400 || response.status == 401 || response.status == 403)
    throw Error(CRM_ERR_UNAUTHORIZED,
                "HubSpot refused the OAuth refresh (" + std::to_string(response.status) +
                    "); check client_id, client_secret and refresh_token",
                response.status, 0, 0);
  if (response.status < 200 || response.status > 299) fail(response, "OAuth token refresh");
  rapidjson::Document doc;
  if (sdk::try_parse_json(response.body, doc) == sdk::JsonParse::too_deep)
    throw Error(CRM_ERR_REMOTE,
                "OAuth token refresh: HubSpot answered " + too_deep(response.status),
                response.status, 0, 0);
  const std::string token = !doc.HasParseError() ? get_string(doc, "access_token") : "";
  if (token.empty() || !doc.HasMember("expires_in") || !doc["expires_in"].IsNumber())
    throw Error(CRM_ERR_REMOTE,
                "OAuth token refresh: HubSpot's answer lacks access_token or expires_in",
                response.status, 0, 1);
  const int64_t lifetime_ms = static_cast<int64_t>(doc["expires_in"].GetDouble() * 1000);
  // Refresh ahead of expiry: 5 minutes, or half the lifetime when that is shorter.
  const int64_t margin = std::min<int64_t>(5 * 60 * 1000, lifetime_ms / 2);
  access_token_ = token;
  refresh_at_ms_ = sdk::Host::now_ms() + lifetime_ms - margin;
  if (auto rotated = get_string(doc, "refresh_token"); !rotated.empty())
    current_refresh_token_ = rotated;

  rapidjson::Document saved(rapidjson::kObjectType);
  auto &alloc = saved.GetAllocator();
  saved.AddMember("access_token", Value(access_token_.c_str(), alloc), alloc);
  saved.AddMember("refresh_at_ms", refresh_at_ms_, alloc);
  saved.AddMember("expires_at_ms", sdk::Host::now_ms() + lifetime_ms, alloc);
  if (!current_refresh_token_.empty())
    saved.AddMember("refresh_token", Value(current_refresh_token_.c_str(), alloc), alloc);
  saved.AddMember(
      "for", Value(sha256_hex(settings_.client_id + "\n" + settings_.refresh_token).c_str(), alloc),
      alloc);
  try {
    state_put(kTokenStateKey, sdk::to_json(saved));
  } catch (const Error &e) {
    // Keeping the token is an optimisation; losing it only costs a refresh after a restart.
    log(CRM_LOG_WARN, std::string("could not keep the refreshed OAuth token: ") + e.what());
  }
  log(CRM_LOG_INFO,
      "OAuth access token refreshed; valid for " + std::to_string(lifetime_ms / 1000) + " s");
}

// ---- check, fetch, webhook --------------------------------------------------------------------

crm_status HubSpotConnector::check(rapidjson::Document &result) {
  const ObjectInfo *object = find_object(*settings_.objects.begin());
  const std::string path = std::string("/crm/v3/objects/") + object->path + "?limit=1";
  const sdk::HttpResponse response = api("GET", path, {}, 0);
  if (response.status < 200 || response.status > 299) fail(response, "check");
  auto &alloc = result.GetAllocator();
  result.AddMember("ok", true, alloc);
  const std::string message = std::string("HubSpot accepted the ") +
                              (settings_.oauth() ? "OAuth token" : "private-app token") +
                              " and listed " + object->path;
  result.AddMember("message", Value(message.c_str(), alloc), alloc);
  return CRM_OK;
}

std::optional<int64_t> HubSpotConnector::modified_ms(const ObjectInfo &object,
                                                     const Value &r) const {
  if (r.HasMember("properties") && r["properties"].IsObject())
    if (auto t = parse_time_ms(get_string(r["properties"], object.modified_prop))) return t;
  return parse_time_ms(get_string(r, "updatedAt"));
}

Value HubSpotConnector::record_json(const ObjectInfo &object, const Value &r, Alloc &alloc) const {
  Value out(rapidjson::kObjectType);
  std::string id = get_string(r, "id");
  if (id.empty() && r.HasMember("id") && r["id"].IsUint64())
    id = std::to_string(r["id"].GetUint64());
  out.AddMember("id", Value(id.c_str(), alloc), alloc);
  out.AddMember("event", "upsert", alloc);
  if (auto ms = modified_ms(object, r))
    out.AddMember("modified_at", Value(format_iso_ms(*ms).c_str(), alloc), alloc);
  Value data(rapidjson::kObjectType);
  if (r.HasMember("properties") && r["properties"].IsObject())
    data.CopyFrom(r["properties"], alloc);
  out.AddMember("data", data, alloc);
  return out;
}

crm_status HubSpotConnector::fetch(const Value &request, rapidjson::Document &result) {
  const ObjectInfo &object = object_of(request, "fetch");
  const std::vector<std::string> ids = sdk::request_ids(request);
  auto &alloc = result.GetAllocator();
  Value records(rapidjson::kArrayType), missing(rapidjson::kArrayType);
  const std::vector<std::string> props = properties_of(object);
  for (size_t start = 0; start < ids.size(); start += 100) {
    rapidjson::Document body(rapidjson::kObjectType);
    auto &a = body.GetAllocator();
    Value inputs(rapidjson::kArrayType), properties(rapidjson::kArrayType);
    const size_t end = std::min(ids.size(), start + 100);
    for (size_t i = start; i < end; ++i) {
      Value input(rapidjson::kObjectType);
      input.AddMember("id", Value(ids[i].c_str(), a), a);
      inputs.PushBack(input, a);
    }
    for (const auto &p : props) properties.PushBack(Value(p.c_str(), a), a);
    body.AddMember("properties", properties, a);
    body.AddMember("inputs", inputs, a);
    // 207 carries the ids HubSpot does not know among its errors; they are reported as missing.
    const rapidjson::Document page =
        api_json("POST", std::string("/crm/v3/objects/") + object.path + "/batch/read",
                 sdk::to_json(body), CRM_HTTP_IDEMPOTENT);
    std::set<std::string> found;
    if (page.HasMember("results") && page["results"].IsArray())
      for (const auto &r : page["results"].GetArray()) {
        Value record = record_json(object, r, alloc);
        found.insert(record["id"].GetString());
        records.PushBack(record, alloc);
      }
    for (size_t i = start; i < end; ++i)
      if (!found.count(ids[i])) missing.PushBack(Value(ids[i].c_str(), alloc), alloc);
  }
  result.AddMember("records", records, alloc);
  result.AddMember("missing", missing, alloc);
  return CRM_OK;
}

crm_status HubSpotConnector::webhook(const Value &request, std::string_view body,
                                     rapidjson::Document &result) {
  HeaderList headers;
  if (request.HasMember("headers") && request["headers"].IsArray())
    for (const auto &pair : request["headers"].GetArray())
      if (pair.IsArray() && pair.Size() == 2 && pair[0].IsString() && pair[1].IsString())
        headers.emplace_back(pair[0].GetString(), pair[1].GetString());
  const std::string method = get_string(request, "method");
  const std::string url = get_string(request, "url");
  const Verification verdict =
      verify_signature(settings_.signature, method.empty() ? "POST" : method, url, headers, body,
                       sdk::Host::now_ms());
  if (verdict.outcome == Verification::Outcome::malformed)
    throw Error(CRM_ERR_INVALID_INPUT, "webhook: " + verdict.reason);
  if (verdict.outcome != Verification::Outcome::ok) {
    log(CRM_LOG_WARN, "webhook refused: " + verdict.reason);
    throw Error(CRM_ERR_UNAUTHORIZED, "webhook: " + verdict.reason);
  }
  auto &alloc = result.GetAllocator();
  Value events(rapidjson::kArrayType);
  for (const auto &e : parse_webhook_events(body, settings_.objects)) {
    Value event(rapidjson::kObjectType);
    event.AddMember("object", Value(e.object.c_str(), alloc), alloc);
    event.AddMember("id", Value(e.id.c_str(), alloc), alloc);
    event.AddMember("event", Value(e.event.c_str(), alloc), alloc);
    event.AddMember("event_id", Value(e.event_id.c_str(), alloc), alloc);
    if (!e.occurred_at.empty())
      event.AddMember("occurred_at", Value(e.occurred_at.c_str(), alloc), alloc);
    events.PushBack(event, alloc);
  }
  result.AddMember("events", events, alloc);
  return CRM_OK;
}

}  // namespace crmhost::hubspot

CRMHOST_SDK_PLUGIN(crmhost::hubspot::HubSpotConnector, "hubspot", "1.0.0", "crmhost")
