#include "connector.hpp"

#include <algorithm>

#include "webhook_events.hpp"

namespace crmhost::zoho {

using rapidjson::Value;
using sdk::Error;
using sdk::get_string;

namespace {

const char kTokenStateKey[] = "oauth.access_token";
const char kCreditsStateKey[] = "credits.exhausted_until";

bool is_2xx(int status) {
  return status >= 200 && status <= 299;
}

// Zoho's error shape: {"code","details","message","status":"error"}.
struct ZohoError {
  std::string code, message;
};

ZohoError error_of(const std::string &body) {
  rapidjson::Document doc;
  ZohoError out;
  if (sdk::try_parse_json(body, doc) != sdk::JsonParse::ok || !doc.IsObject()) return out;
  out.code = get_string(doc, "code");
  out.message = get_string(doc, "message").substr(0, 300);
  return out;
}

std::optional<int64_t> retry_after_ms(const sdk::HttpResponse &response) {
  if (auto after = response.header("Retry-After")) try {
      return static_cast<int64_t>(std::stoll(*after)) * 1000;
    } catch (const std::exception &) {
    }
  return std::nullopt;
}

// A 429 that says the day's credits are spent rather than too many calls at once (guess: the
// fact sheet quotes only the concurrency message, "too many requests...").
bool credits_spent(const sdk::HttpResponse &response, const ZohoError &error) {
  if (auto remaining = response.header("X-API-CREDITS-REMAINING"); remaining && *remaining == "0")
    return true;
  const std::string message = sdk::lower_ascii(error.message);
  return message.find("credit") != std::string::npos ||
         message.find("api limit") != std::string::npos;
}

}  // namespace

ZohoConnector::ZohoConnector(crm_host_instance *instance, const Value &settings)
    : Connector(instance), settings_(Settings::from_json(settings)) {}

std::string ZohoConnector::describe() {
  return R"json({"name":"zoho","display_name":"Zoho CRM (v8 API)",
  "objects":[{"name":"lead","id_field":"id"},{"name":"contact","id_field":"id"},
             {"name":"account","id_field":"id"},{"name":"deal","id_field":"id"}],
  "capabilities":["check","poll","fetch","push","webhook","cancel"],
  "push_modes":["upsert","create","update","delete","archive","match"],
  "match_normalize":["trim","lower"],
  "max_batch":100,
  "settings_schema":{
    "type":"object",
    "additionalProperties":false,
    "required":["auth"],
    "anyOf":[{"required":["data_centre"]},{"required":["accounts_url"]}],
    "properties":{
      "data_centre":{"enum":["us","eu","in","au","cn","jp","sa","ca"]},
      "accounts_url":{"type":"string","pattern":"^https?://"},
      "api_url":{"type":"string","pattern":"^https?://"},
      "api_version":{"enum":["v2","v3","v4","v5","v6","v7","v8"]},
      "auth":{"type":"object","additionalProperties":false,
              "required":["client_id","client_secret","refresh_token"],
              "properties":{"client_id":{"type":"string","minLength":1},
                            "client_secret":{"type":"string","minLength":1},
                            "refresh_token":{"type":"string","minLength":1}}},
      "objects":{"type":"array","minItems":1,"uniqueItems":true,
                 "items":{"enum":["lead","contact","account","deal"]}},
      "fields":{"type":"object","additionalProperties":false,"properties":{
        "lead":{"type":"array","maxItems":48,"items":{"type":"string","minLength":1}},
        "contact":{"type":"array","maxItems":48,"items":{"type":"string","minLength":1}},
        "account":{"type":"array","maxItems":48,"items":{"type":"string","minLength":1}},
        "deal":{"type":"array","maxItems":48,"items":{"type":"string","minLength":1}}}},
      "match_keys":{"type":"object","additionalProperties":false,"properties":{
        "lead":{"type":"string","minLength":1},"contact":{"type":"string","minLength":1},
        "account":{"type":"string","minLength":1},"deal":{"type":"string","minLength":1}}},
      "multi_select_fields":{"type":"object","additionalProperties":false,"properties":{
        "lead":{"type":"array","items":{"type":"string","minLength":1}},
        "contact":{"type":"array","items":{"type":"string","minLength":1}},
        "account":{"type":"array","items":{"type":"string","minLength":1}},
        "deal":{"type":"array","items":{"type":"string","minLength":1}}}},
      "lookback_seconds":{"type":"integer","minimum":0,"maximum":86400},
      "page_size":{"type":"integer","minimum":1,"maximum":200},
      "timeout_ms":{"type":"integer","minimum":1000,"maximum":600000},
      "credits_wait_seconds":{"type":"integer","minimum":60,"maximum":86400},
      "notifications":{"type":"object","additionalProperties":false,
        "required":["channel_id","token","notify_url"],"x-crmhost-needs-state":true,
        "properties":{
          "channel_id":{"type":"string","pattern":"^[0-9]{1,19}$"},
          "token":{"type":"string","minLength":1,"maxLength":49},
          "notify_url":{"type":"string","pattern":"^https?://"},
          "operations":{"type":"array","minItems":1,"uniqueItems":true,
                        "items":{"enum":["create","edit","delete","all"]}},
          "expiry_hours":{"type":"integer","minimum":1,"maximum":168},
          "renew_before_hours":{"type":"integer","minimum":1,"maximum":167},
          "stop_on_shutdown":{"type":"boolean","default":false}}},
      "workflow_webhook":{"type":"object","additionalProperties":false,
        "required":["header","secret"],
        "properties":{"header":{"type":"string","minLength":1},
                      "secret":{"type":"string","minLength":16}}}
    }}})json";
}

void ZohoConnector::check_cancel() const {
  if (cancelled()) throw Error(CRM_ERR_CANCELLED, "cancelled");
}

const ModuleInfo &ZohoConnector::module_of(const Value &request, const char *call) const {
  const std::string name = get_string(request, "object");
  const ModuleInfo *info = find_module(name);
  if (!info)
    throw Error(CRM_ERR_UNSUPPORTED, std::string(call) + ": object \"" + name +
                                         "\" is not lead, contact, account or deal");
  if (!settings_.objects.count(info->object))
    throw Error(CRM_ERR_UNSUPPORTED, std::string(call) + ": object \"" + info->object +
                                         "\" is not in this connection's settings.objects");
  return *info;
}

std::string ZohoConnector::list_path(const ModuleInfo &module) const {
  std::string fields;
  for (const auto &f : settings_.fields_of(module)) fields += (fields.empty() ? "" : ",") + f;
  return std::string("/") + module.module + "?fields=" + url_encode(fields);
}

// ---- HTTP, auth and credits -------------------------------------------------------------------

std::string ZohoConnector::api_base() {
  if (settings_.api_url_explicit) return settings_.api_url;
  if (!api_domain_.empty()) return api_domain_;
  return settings_.api_url;
}

sdk::HttpResponse ZohoConnector::api(std::string_view method, const std::string &path,
                                     std::string_view body, uint32_t flags, const Headers &extra) {
  check_cancel();
  throw_if_out_of_credits();
  for (int attempt = 0;; ++attempt) {
    const std::string token = access_token(attempt > 0);
    const std::string base = api_base();
    if (base.empty())
      throw Error(CRM_ERR_REMOTE,
                  "Zoho's token answer named no api_domain and settings give no api_url or "
                  "data_centre",
                  0, 0, 0);
    Headers headers = {{"Authorization", "Zoho-oauthtoken " + token},
                       {"Accept", "application/json"}};
    if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
    headers.insert(headers.end(), extra.begin(), extra.end());
    sdk::HttpResponse response = http(method, base + "/crm/" + settings_.api_version + path,
                                      headers, body, settings_.timeout_ms, flags);
    note_credits(response);
    // A revoked or early-expired token: refresh once and repeat the call.
    if (response.status == 401 && attempt == 0) {
      const std::string code = error_of(response.body).code;
      if (code.empty() || code == "INVALID_TOKEN") {
        log(CRM_LOG_INFO, "Zoho answered 401 INVALID_TOKEN; refreshing the OAuth access token");
        continue;
      }
    }
    return response;
  }
}

void ZohoConnector::fail(const sdk::HttpResponse &response, const std::string &what) {
  const ZohoError error = error_of(response.body);
  const int status = response.status;
  const std::string detail =
      error.code.empty()
          ? ""
          : " (" + error.code + (error.message.empty() ? "" : ": ") + error.message + ")";
  const std::string text = what + ": Zoho answered " + std::to_string(status) + detail;
  if (status == 401 && error.code == "OAUTH_SCOPE_MISMATCH")
    throw Error(CRM_ERR_UNAUTHORIZED, text + "; the refresh token lacks a scope this call needs",
                status, 0, 0);
  if (status == 401)
    throw Error(CRM_ERR_UNAUTHORIZED,
                text + "; Zoho refused a freshly refreshed token at " + api_base() +
                    ": check that the API host belongs to " + settings_.describe_accounts(),
                status, 0, 0);
  if (status == 403)
    throw Error(CRM_ERR_UNAUTHORIZED, text + "; the Zoho user lacks a permission this call needs",
                status, 0, 0);
  if (status == 429) {
    // Zoho's 429 body is the same for spent credits and for too many calls at once: a budget
    // last seen nearly spent tells them apart (guess: the sheet gives no other sign).
    if (credits_spent(response, error) || (credits_remaining_ && *credits_remaining_ <= 10)) {
      out_of_credits(retry_after_ms(response).value_or(settings_.credits_wait_ms),
                     "Zoho answered 429 with the API credits spent");
      throw_if_out_of_credits();
    }
    // Too many calls at once (Zoho's concurrency limit): the host already waited and retried.
    throw Error(CRM_ERR_RATE_LIMITED, text, status,
                static_cast<int>(retry_after_ms(response).value_or(5000)), 1);
  }
  if (error.code == "INVALID_HOST" || error.code == "INVALID_URL_PATTERN")
    throw Error(CRM_ERR_REMOTE,
                text + "; the API host " + api_base() +
                    " does not serve this account: check "
                    "settings.data_centre (" +
                    settings_.describe_accounts() + ")",
                status, 0, 0);
  throw Error(CRM_ERR_REMOTE, text, status, 0, status >= 500 ? 1 : 0);
}

rapidjson::Document ZohoConnector::api_json(std::string_view method, const std::string &path,
                                            std::string_view body, uint32_t flags,
                                            const Headers &extra, int *status) {
  const sdk::HttpResponse response = api(method, path, body, flags, extra);
  const std::string what = std::string(method) + " " + path.substr(0, path.find('?'));
  if (status) *status = response.status;
  if (!is_2xx(response.status) && response.status != 304) fail(response, what);
  rapidjson::Document doc;
  // No records (204) and nothing modified since (304) come without a body.
  if (response.status == 204 || response.status == 304 || response.body.empty()) {
    doc.SetObject();
    return doc;
  }
  const sdk::JsonParse parsed = sdk::try_parse_json(response.body, doc);
  // A hostile or broken answer: the same request would get it again.
  if (parsed == sdk::JsonParse::too_deep)
    throw Error(CRM_ERR_REMOTE, what + ": Zoho answered " + too_deep(response.status),
                response.status, 0, 0);
  if (parsed != sdk::JsonParse::ok || !doc.IsObject())
    throw Error(CRM_ERR_REMOTE,
                what + ": Zoho answered " + std::to_string(response.status) +
                    " with a body that is not a JSON object",
                response.status, 0, 1);
  return doc;
}

void ZohoConnector::throw_if_out_of_credits() const {
  const int64_t now = sdk::Host::now_ms();
  if (credits_until_ms_ <= now) return;
  const int64_t wait = credits_until_ms_ - now;
  throw Error(CRM_ERR_RATE_LIMITED,
              "Zoho API credits are spent for this account's rolling 24 hours; calls resume at " +
                  format_iso_ms(credits_until_ms_),
              429, static_cast<int>(std::min<int64_t>(wait, INT32_MAX)), 1);
}

void ZohoConnector::out_of_credits(int64_t wait_ms, const std::string &why) {
  credits_until_ms_ = sdk::Host::now_ms() + std::max<int64_t>(wait_ms, 1000);
  log(CRM_LOG_WARN, why + "; no calls until " + format_iso_ms(credits_until_ms_));
  try {
    state_put(kCreditsStateKey, std::to_string(credits_until_ms_));
  } catch (const Error &e) {
    log(CRM_LOG_WARN, std::string("could not keep the credit wait: ") + e.what());
  }
}

void ZohoConnector::note_credits(const sdk::HttpResponse &response) {
  // Zoho sends the header once half the budget is used; 0 means the next call is refused.
  const auto remaining = response.header("X-API-CREDITS-REMAINING");
  if (!remaining) return;
  try {
    credits_remaining_ = std::stoll(*remaining);
  } catch (const std::exception &) {
    return;
  }
  if (*credits_remaining_ <= 0 && response.status != 429)
    out_of_credits(retry_after_ms(response).value_or(settings_.credits_wait_ms),
                   "Zoho reports X-API-CREDITS-REMAINING 0");
}

std::string ZohoConnector::access_token(bool force_refresh) {
  const int64_t now = sdk::Host::now_ms();
  if (!state_loaded_) {
    state_loaded_ = true;
    // A restart reuses the token the last process refreshed, if it was issued for the same
    // client, accounts server and refresh token.
    try {
      if (auto saved = state_get(kTokenStateKey)) {
        rapidjson::Document doc;
        if (sdk::try_parse_json(*saved, doc) == sdk::JsonParse::ok && doc.IsObject() &&
            get_string(doc, "for") ==
                sha256_hex(settings_.client_id + "\n" + settings_.accounts_url + "\n" +
                           settings_.refresh_token) &&
            doc.HasMember("refresh_at_ms") && doc["refresh_at_ms"].IsInt64()) {
          access_token_ = get_string(doc, "access_token");
          api_domain_ = get_string(doc, "api_domain");
          refresh_at_ms_ = doc["refresh_at_ms"].GetInt64();
        }
      }
      if (auto until = state_get(kCreditsStateKey)) credits_until_ms_ = std::stoll(*until);
    } catch (const std::exception &e) {
      log(CRM_LOG_WARN, std::string("could not read the saved OAuth token: ") + e.what());
    }
    throw_if_out_of_credits();
  }
  if (force_refresh || access_token_.empty() || now >= refresh_at_ms_) refresh_access_token();
  return access_token_;
}

void ZohoConnector::refresh_access_token() {
  const std::string form = "grant_type=refresh_token&client_id=" + url_encode(settings_.client_id) +
                           "&client_secret=" + url_encode(settings_.client_secret) +
                           "&refresh_token=" + url_encode(settings_.refresh_token);
  const std::string where = settings_.describe_accounts();
  const sdk::HttpResponse response =
      http("POST", settings_.accounts_url + "/oauth/v2/token",
           {{"Content-Type", "application/x-www-form-urlencoded;charset=utf-8"},
            {"Accept", "application/json"}},
           form, settings_.timeout_ms, CRM_HTTP_IDEMPOTENT);
  rapidjson::Document doc;
  const sdk::JsonParse parsed = sdk::try_parse_json(response.body, doc);
  if (parsed == sdk::JsonParse::too_deep)
    throw Error(CRM_ERR_REMOTE, "OAuth token refresh: Zoho answered " + too_deep(response.status),
                response.status, 0, 0);
  const bool object = parsed == sdk::JsonParse::ok && doc.IsObject();
  // Zoho names a refused grant in "error", with 200 as often as with 400 (invalid_code: the
  // refresh token is unknown here, which is what a token from another data centre gets).
  const std::string refused = object ? get_string(doc, "error") : "";
  if (!refused.empty() || response.status == 400 || response.status == 401 ||
      response.status == 403)
    throw Error(CRM_ERR_UNAUTHORIZED,
                "Zoho's accounts server for " + where + " refused the OAuth refresh (" +
                    std::to_string(response.status) + (refused.empty() ? "" : " " + refused) +
                    "); a refresh token works only in the data centre that issued it: check "
                    "settings.data_centre, then client_id, client_secret and refresh_token",
                response.status, 0, 0);
  if (!is_2xx(response.status))
    throw Error(
        CRM_ERR_REMOTE,
        "OAuth token refresh at " + where + ": Zoho answered " + std::to_string(response.status),
        response.status, 0, response.status >= 500 || response.status == 429 ? 1 : 0);
  const std::string token = object ? get_string(doc, "access_token") : "";
  // expires_in is seconds today; older answers gave milliseconds beside expires_in_sec (guess).
  double lifetime_s = 0;
  if (object && doc.HasMember("expires_in_sec") && doc["expires_in_sec"].IsNumber())
    lifetime_s = doc["expires_in_sec"].GetDouble();
  else if (object && doc.HasMember("expires_in") && doc["expires_in"].IsNumber())
    lifetime_s = doc["expires_in"].GetDouble();
  if (lifetime_s > 86400 * 2) lifetime_s /= 1000;
  if (token.empty() || lifetime_s <= 0)
    throw Error(CRM_ERR_REMOTE,
                "OAuth token refresh at " + where + ": the answer lacks access_token or expires_in",
                response.status, 0, 1);
  const int64_t lifetime_ms = static_cast<int64_t>(lifetime_s * 1000);
  // Refresh ahead of expiry: 5 minutes, or half the lifetime when that is shorter.
  const int64_t margin = std::min<int64_t>(5 * 60 * 1000, lifetime_ms / 2);
  access_token_ = token;
  if (std::string domain = get_string(doc, "api_domain"); !domain.empty()) {
    while (!domain.empty() && domain.back() == '/') domain.pop_back();
    if (domain != api_domain_ && !settings_.api_url_explicit && !settings_.api_url.empty() &&
        domain != settings_.api_url)
      log(CRM_LOG_WARN, "Zoho's token answer names the API host " + domain + ", not " +
                            settings_.api_url + " of " + where + "; using " + domain);
    api_domain_ = domain;
  }
  refresh_at_ms_ = sdk::Host::now_ms() + lifetime_ms - margin;

  rapidjson::Document saved(rapidjson::kObjectType);
  auto &alloc = saved.GetAllocator();
  saved.AddMember("access_token", Value(access_token_.c_str(), alloc), alloc);
  saved.AddMember("api_domain", Value(api_domain_.c_str(), alloc), alloc);
  saved.AddMember("refresh_at_ms", refresh_at_ms_, alloc);
  saved.AddMember("expires_at_ms", sdk::Host::now_ms() + lifetime_ms, alloc);
  saved.AddMember("for",
                  Value(sha256_hex(settings_.client_id + "\n" + settings_.accounts_url + "\n" +
                                   settings_.refresh_token)
                            .c_str(),
                        alloc),
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

// ---- check, records, fetch, webhook -----------------------------------------------------------

crm_status ZohoConnector::check(rapidjson::Document &result) {
  const ModuleInfo *module = find_module(*settings_.objects.begin());
  const sdk::HttpResponse response =
      api("GET", std::string("/") + module->module + "?fields=Modified_Time&per_page=1", {}, 0);
  if (!is_2xx(response.status)) fail(response, std::string("check: GET /") + module->module);
  auto &alloc = result.GetAllocator();
  result.AddMember("ok", true, alloc);
  std::string message = std::string("Zoho accepted the OAuth token at ") + api_base() +
                        " and listed " + module->module;
  if (auto remaining = response.header("X-API-CREDITS-REMAINING"))
    message += "; " + *remaining + " API credits remain";
  result.AddMember("message", Value(message.c_str(), alloc), alloc);
  return CRM_OK;
}

Value ZohoConnector::record_json(const ModuleInfo &module, const Value &r, Alloc &alloc) const {
  Value out(rapidjson::kObjectType);
  std::string id = get_string(r, "id");
  if (id.empty() && r.HasMember("id") && r["id"].IsUint64())
    id = std::to_string(r["id"].GetUint64());
  out.AddMember("id", Value(id.c_str(), alloc), alloc);
  out.AddMember("event", "upsert", alloc);
  if (auto ms = parse_time_ms(get_string(r, "Modified_Time")))
    out.AddMember("modified_at", Value(format_iso_ms(*ms).c_str(), alloc), alloc);
  Value data(r, alloc);
  normalise_record(data, settings_.multi_select_of(module), alloc);
  out.AddMember("data", data, alloc);
  return out;
}

rapidjson::Document ZohoConnector::read_ids(const ModuleInfo &module,
                                            const std::vector<std::string> &ids,
                                            const std::string &fields) {
  rapidjson::Document out(rapidjson::kArrayType);
  auto &alloc = out.GetAllocator();
  const std::set<std::string> wanted(ids.begin(), ids.end());
  std::string joined;
  for (const auto &id : ids) joined += (joined.empty() ? "" : ",") + id;
  const rapidjson::Document page =
      api_json("GET",
               std::string("/") + module.module + "?fields=" + url_encode(fields) +
                   "&ids=" + url_encode(joined),
               {}, 0);
  std::set<std::string> found;
  bool honoured = true;
  if (page.HasMember("data") && page["data"].IsArray())
    for (const auto &r : page["data"].GetArray()) {
      if (!r.IsObject() || !r.HasMember("id")) continue;
      const std::string id = sdk::scalar_text(r["id"]);
      if (!wanted.count(id)) {
        honoured = false;  // a server that lists the module instead
        continue;
      }
      if (found.insert(id).second) out.PushBack(Value(r, alloc), alloc);
    }
  if (honoured) return out;
  for (const auto &id : ids) {
    if (found.count(id)) continue;
    check_cancel();
    const sdk::HttpResponse response = api(
        "GET",
        std::string("/") + module.module + "/" + url_encode(id) + "?fields=" + url_encode(fields),
        {}, 0);
    // A missing (or deleted) record: 204, or a 4xx naming the id.
    if (response.status == 204 || response.status == 404 ||
        (response.status == 400 && error_of(response.body).code == "INVALID_DATA"))
      continue;
    if (!is_2xx(response.status)) fail(response, std::string("GET /") + module.module + "/{id}");
    rapidjson::Document doc;
    if (sdk::try_parse_json(response.body, doc) != sdk::JsonParse::ok || !doc.IsObject() ||
        !doc.HasMember("data") || !doc["data"].IsArray())
      throw Error(CRM_ERR_REMOTE,
                  std::string("GET /") + module.module +
                      "/{id}: Zoho answered with a body that is not a record list",
                  response.status, 0, 0);
    for (const auto &r : doc["data"].GetArray())
      if (r.IsObject() && found.insert(sdk::scalar_text(r["id"])).second)
        out.PushBack(Value(r, alloc), alloc);
  }
  return out;
}

crm_status ZohoConnector::fetch(const Value &request, rapidjson::Document &result) {
  const ModuleInfo &module = module_of(request, "fetch");
  const std::vector<std::string> ids = sdk::request_ids(request);
  auto &alloc = result.GetAllocator();
  Value records(rapidjson::kArrayType), missing(rapidjson::kArrayType);
  std::string fields;
  for (const auto &f : settings_.fields_of(module)) fields += (fields.empty() ? "" : ",") + f;
  for (size_t start = 0; start < ids.size(); start += 100) {
    const size_t end = std::min(ids.size(), start + 100);
    const std::vector<std::string> chunk(ids.begin() + start, ids.begin() + end);
    const rapidjson::Document found = read_ids(module, chunk, fields);
    std::set<std::string> seen;
    for (const auto &r : found.GetArray()) {
      Value record = record_json(module, r, alloc);
      seen.insert(record["id"].GetString());
      records.PushBack(record, alloc);
    }
    for (const auto &id : chunk)
      if (!seen.count(id)) missing.PushBack(Value(id.c_str(), alloc), alloc);
  }
  result.AddMember("records", records, alloc);
  result.AddMember("missing", missing, alloc);
  return CRM_OK;
}

crm_status ZohoConnector::webhook(const Value &request, std::string_view body,
                                  rapidjson::Document &result) {
  HeaderList headers;
  if (request.HasMember("headers") && request["headers"].IsArray())
    for (const auto &pair : request["headers"].GetArray())
      if (pair.IsArray() && pair.Size() == 2 && pair[0].IsString() && pair[1].IsString())
        headers.emplace_back(pair[0].GetString(), pair[1].GetString());
  WebhookSettings verify;
  verify.channel_id = settings_.notifications.channel_id;
  verify.token = settings_.notifications.token;
  verify.workflow_header = settings_.workflow_header;
  verify.workflow_secret = settings_.workflow_secret;
  verify.objects = settings_.objects;
  const WebhookOutcome outcome = parse_webhook(verify, headers, body);
  if (outcome.verdict == WebhookOutcome::Verdict::malformed)
    throw Error(CRM_ERR_INVALID_INPUT, "webhook (" + outcome.kind + "): " + outcome.reason);
  if (outcome.verdict != WebhookOutcome::Verdict::ok) {
    log(CRM_LOG_WARN, "webhook refused (" + outcome.kind + "): " + outcome.reason);
    throw Error(CRM_ERR_UNAUTHORIZED, "webhook (" + outcome.kind + "): " + outcome.reason);
  }
  auto &alloc = result.GetAllocator();
  Value events(rapidjson::kArrayType);
  for (const auto &e : outcome.events) {
    // No data: the delivery names records; the host fetches their current fields.
    Value event(rapidjson::kObjectType);
    event.AddMember("object", Value(e.object.c_str(), alloc), alloc);
    event.AddMember("id", Value(e.id.c_str(), alloc), alloc);
    event.AddMember("event", e.is_delete() ? "delete" : "upsert", alloc);
    event.AddMember("event_id", Value(e.event_id.c_str(), alloc), alloc);
    if (!e.occurred_at.empty())
      event.AddMember("occurred_at", Value(e.occurred_at.c_str(), alloc), alloc);
    events.PushBack(event, alloc);
  }
  result.AddMember("events", events, alloc);
  return CRM_OK;
}

}  // namespace crmhost::zoho

CRMHOST_SDK_PLUGIN(crmhost::zoho::ZohoConnector, "zoho", "1.0.0", "crmhost")
