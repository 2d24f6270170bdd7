#include "connector.hpp"

#include <algorithm>
#include <cctype>

namespace crmhost::odoo {

using rapidjson::Value;
using sdk::Error;

namespace {

using sdk::get_string;

using sdk::string_list;

// What each object reads unless `fields` says otherwise: the fields the presets map (the fact
// sheet's; e.g. `function` or `country_code` can be added per connection).
const std::map<std::string, std::vector<std::string>> &default_fields() {
  static const std::map<std::string, std::vector<std::string>> defaults = {
      {"contact",
       {"name", "email", "phone", "mobile", "street", "city", "zip", "country_id", "parent_id",
        "function", "create_date"}},
      {"company",
       {"name", "email", "phone", "website", "street", "city", "zip", "country_id", "create_date"}},
      {"deal",
       {"name", "type", "stage_id", "expected_revenue", "partner_id", "email_from", "create_date"}},
  };
  return defaults;
}

// Fields the connector itself needs: the cursor's, the archive flag, the partner kind.
std::vector<std::string> required_fields(const Target &t) {
  std::vector<std::string> out = {"id", "write_date", "active"};
  if (t.partner_kind()) out.push_back("is_company");
  return out;
}

// Booleans keep `false`; elsewhere Odoo's `false` means "no value" and becomes null (guess: the
// field types are known only through fields_get, which reads do not wait for).
bool boolean_field(std::string_view name) {
  return name == "active" || name == "is_company" || name.substr(0, 3) == "is_" ||
         name.substr(0, 4) == "has_";
}

std::string ms_iso(int64_t ms) {
  std::string iso = format_iso(ms / 1000);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03lld", static_cast<long long>(ms % 1000));
  iso.insert(iso.size() - 1, frac);
  return iso;
}

}  // namespace

Settings Settings::from_json(const Value &s) {
  if (!s.IsObject()) throw Error(CRM_ERR_INVALID_INPUT, "settings: expected an object");
  Settings out;
  out.url = get_string(s, "url");
  while (!out.url.empty() && out.url.back() == '/') out.url.pop_back();
  if (out.url.rfind("http://", 0) != 0 && out.url.rfind("https://", 0) != 0)
    throw Error(CRM_ERR_INVALID_INPUT, "settings.url: an http:// or https:// URL is required");
  out.database = get_string(s, "database");
  if (out.database.empty())
    throw Error(CRM_ERR_INVALID_INPUT, "settings.database: the Odoo database name is required");
  const std::string login = get_string(s, "login"), username = get_string(s, "username");
  if (!login.empty() && !username.empty() && login != username)
    throw Error(CRM_ERR_INVALID_INPUT, "settings: give login or username (the same), not both");
  out.login = login.empty() ? username : login;
  const std::string key = get_string(s, "api_key"), password = get_string(s, "password");
  if (!key.empty() && !password.empty())
    throw Error(CRM_ERR_INVALID_INPUT, "settings: give either api_key or password, not both");
  out.secret = key.empty() ? password : key;
  out.api_key = !key.empty();
  if (out.secret.empty())
    throw Error(CRM_ERR_INVALID_INPUT, "settings.api_key: an API key (or a password) is required");
  const std::string protocol = get_string(s, "protocol");
  if (!protocol.empty() && protocol != "jsonrpc" && protocol != "json2")
    throw Error(CRM_ERR_INVALID_INPUT,
                "settings.protocol: \"" + protocol + "\" is not jsonrpc or json2");
  out.json2 = protocol == "json2";
  if (out.json2 && !out.api_key)
    throw Error(CRM_ERR_INVALID_INPUT,
                "settings.password: JSON-2 authenticates with an API key only; set api_key");
  if (!out.json2 && out.login.empty())
    throw Error(CRM_ERR_INVALID_INPUT, "settings.login: the Odoo login is required for JSON-RPC");
  if (s.HasMember("objects")) {
    out.objects.clear();
    for (const auto &o : string_list(s["objects"])) {
      if (!find_object(o))
        throw Error(CRM_ERR_INVALID_INPUT,
                    "settings.objects: \"" + o + "\" is not contact, company or deal");
      out.objects.insert(o);
    }
    if (out.objects.empty())
      throw Error(CRM_ERR_INVALID_INPUT, "settings.objects: name at least one object");
  }
  for (const char *key_name : {"models", "fields"})
    if (auto m = s.FindMember(key_name); m != s.MemberEnd() && m->value.IsObject())
      for (const auto &entry : m->value.GetObject()) {
        const std::string object = entry.name.GetString();
        if (!find_object(object))
          throw Error(CRM_ERR_INVALID_INPUT, std::string("settings.") + key_name + ": \"" + object +
                                                 "\" is not contact, company or deal");
        if (std::string_view(key_name) == "models")
          out.models[object] = entry.value.IsString() ? entry.value.GetString() : "";
        else
          out.fields[object] = string_list(entry.value);
      }
  auto uint_setting = [&](const char *name, auto &into, auto low, auto high) {
    if (auto it = s.FindMember(name); it != s.MemberEnd() && it->value.IsUint64())
      into = static_cast<std::decay_t<decltype(into)>>(std::clamp<uint64_t>(
          it->value.GetUint64(), static_cast<uint64_t>(low), static_cast<uint64_t>(high)));
  };
  uint_setting("lookback_seconds", out.lookback_s, 0, 86400);
  uint_setting("reconcile_interval_seconds", out.reconcile_interval_s, 0, 30 * 86400);
  uint_setting("page_size", out.page_size, 1, 5000);
  uint_setting("timeout_ms", out.timeout_ms, 1000, 600000);
  if (auto h = s.FindMember("webhook_secret_header"); h != s.MemberEnd()) {
    out.webhook_header = get_string(h->value, "name");
    out.webhook_secret = get_string(h->value, "value");
    if (out.webhook_header.empty() || out.webhook_secret.empty())
      throw Error(CRM_ERR_INVALID_INPUT,
                  "settings.webhook_secret_header: both name and value are required");
  }
  return out;
}

OdooConnector::OdooConnector(crm_host_instance *instance, const Value &settings)
    : Connector(instance), settings_(Settings::from_json(settings)) {
  for (const auto &object : settings_.objects) {
    Target t;
    t.info = find_object(object);
    auto model = settings_.models.find(object);
    t.model =
        model != settings_.models.end() && !model->second.empty() ? model->second : t.info->model;
    auto fields = settings_.fields.find(object);
    t.fields = fields != settings_.fields.end() ? fields->second : default_fields().at(object);
    for (const auto &f : required_fields(t))
      if (std::find(t.fields.begin(), t.fields.end(), f) == t.fields.end()) t.fields.push_back(f);
    targets_.emplace(object, std::move(t));
  }
}

std::string OdooConnector::describe() {
  return R"json({"name":"odoo","display_name":"Odoo (JSON-RPC or JSON-2)",
  "objects":[{"name":"contact","id_field":"id"},{"name":"company","id_field":"id"},
             {"name":"deal","id_field":"id"}],
  "capabilities":["check","poll","fetch","push","webhook","cancel"],
  "push_modes":["upsert","create","update","delete","archive","match"],
  "match_normalize":["trim","lower"],
  "max_batch":100,
  "settings_schema":{
    "type":"object",
    "additionalProperties":false,
    "required":["url","database"],
    "anyOf":[{"required":["api_key"]},{"required":["password"]}],
    "properties":{
      "url":{"type":"string","pattern":"^https?://"},
      "database":{"type":"string","minLength":1},
      "login":{"type":"string","minLength":1},
      "username":{"type":"string","minLength":1},
      "api_key":{"type":"string","minLength":1},
      "password":{"type":"string","minLength":1},
      "protocol":{"enum":["jsonrpc","json2"]},
      "objects":{"type":"array","minItems":1,"uniqueItems":true,
                 "items":{"enum":["contact","company","deal"]}},
      "models":{"type":"object","additionalProperties":false,
        "properties":{"contact":{"type":"string","minLength":1},
                      "company":{"type":"string","minLength":1},
                      "deal":{"type":"string","minLength":1}}},
      "fields":{"type":"object","additionalProperties":false,
        "properties":{"contact":{"type":"array","items":{"type":"string","minLength":1}},
                      "company":{"type":"array","items":{"type":"string","minLength":1}},
                      "deal":{"type":"array","items":{"type":"string","minLength":1}}}},
      "lookback_seconds":{"type":"integer","minimum":0,"maximum":86400},
      "reconcile_interval_seconds":{"type":"integer","minimum":0,"maximum":2592000,"default":3600,"x-crmhost-needs-state":true},
      "page_size":{"type":"integer","minimum":1,"maximum":5000},
      "timeout_ms":{"type":"integer","minimum":1000,"maximum":600000},
      "webhook_secret_header":{"type":"object","additionalProperties":false,
        "required":["name","value"],
        "properties":{"name":{"type":"string","minLength":1},
                      "value":{"type":"string","minLength":8}}}
    }}})json";
}

void OdooConnector::check_cancel() const {
  if (cancelled()) throw Error(CRM_ERR_CANCELLED, "cancelled");
}

const Target &OdooConnector::target_of(const Value &request, const char *call) const {
  const std::string name = get_string(request, "object");
  if (!find_object(name))
    throw Error(CRM_ERR_UNSUPPORTED,
                std::string(call) + ": object \"" + name + "\" is not contact, company or deal");
  auto it = targets_.find(name);
  if (it == targets_.end())
    throw Error(CRM_ERR_UNSUPPORTED, std::string(call) + ": object \"" + name +
                                         "\" is not in this connection's settings.objects");
  return it->second;
}

// ---- RPC ------------------------------------------------------------------------------------

namespace {

// JSON-RPC's execute_kw takes these leading arguments positionally, the rest as keywords.
std::vector<const char *> positional(const std::string &method) {
  if (method == "search_read" || method == "search" || method == "search_count") return {"domain"};
  if (method == "read" || method == "unlink") return {"ids"};
  if (method == "write") return {"ids", "vals"};
  if (method == "create") return {"vals_list"};
  return {};
}

// Odoo's error object: JSON-RPC's error.data, or JSON-2's body.
Fault fault_of(const Value &e, int http_status) {
  Fault f;
  f.http_status = http_status;
  f.name = get_string(e, "name");
  f.message = get_string(e, "message").substr(0, 300);
  return f;
}

}  // namespace

OdooConnector::Reply OdooConnector::rpc(const std::string &model, const std::string &method,
                                        rapidjson::Document &args, bool idempotent) {
  check_cancel();
  const uint32_t flags = idempotent ? CRM_HTTP_IDEMPOTENT : 0u;
  Reply reply;
  if (settings_.json2) {
    const std::string url = settings_.url + "/json/2/" + model + "/" + method;
    const sdk::HttpResponse response = http("POST", url,
                                            {{"Authorization", "bearer " + settings_.secret},
                                             {"X-Odoo-Database", settings_.database},
                                             {"Content-Type", "application/json"},
                                             {"Accept", "application/json"}},
                                            sdk::to_json(args), settings_.timeout_ms, flags);
    const sdk::JsonParse parsed = sdk::try_parse_json(response.body, reply.result);
    if (response.status >= 200 && response.status <= 299 && parsed == sdk::JsonParse::ok)
      return reply;
    Fault f;
    if (parsed == sdk::JsonParse::ok && reply.result.IsObject())
      f = fault_of(reply.result, response.status);
    f.http_status = response.status;
    if (parsed == sdk::JsonParse::too_deep) {
      f.message = too_deep_message();
      reply.fault = f;
      return reply;
    }
    // A 2xx body cut short is a transport failure (retryable), not Odoo's verdict.
    if (response.status >= 200 && response.status <= 299) {
      f.http_status = 0;
      f.message = "a truncated or non-JSON answer";
    }
    if (f.message.empty()) f.message = "HTTP " + std::to_string(response.status);
    reply.fault = f;
    return reply;
  }

  rapidjson::Document body(rapidjson::kObjectType);
  auto &a = body.GetAllocator();
  Value params(rapidjson::kObjectType), call_args(rapidjson::kArrayType),
      method_args(rapidjson::kArrayType), kwargs(rapidjson::kObjectType);
  const auto leading = positional(method);
  for (const char *name : leading)
    if (auto it = args.FindMember(name); it != args.MemberEnd())
      method_args.PushBack(Value(it->value, a), a);
  for (const auto &m : args.GetObject())
    if (std::none_of(leading.begin(), leading.end(),
                     [&](const char *name) { return m.name == name; }))
      kwargs.AddMember(Value(m.name, a), Value(m.value, a), a);
  call_args.PushBack(Value(settings_.database.c_str(), a), a);
  call_args.PushBack(uid(), a);
  call_args.PushBack(Value(settings_.secret.c_str(), a), a);
  call_args.PushBack(Value(model.c_str(), a), a);
  call_args.PushBack(Value(method.c_str(), a), a);
  call_args.PushBack(method_args, a);
  call_args.PushBack(kwargs, a);
  params.AddMember("service", "object", a);
  params.AddMember("method", "execute_kw", a);
  params.AddMember("args", call_args, a);
  body.AddMember("jsonrpc", "2.0", a);
  body.AddMember("method", "call", a);
  body.AddMember("params", params, a);
  body.AddMember("id", next_request_id_++, a);
  const sdk::HttpResponse response =
      http("POST", settings_.url + "/jsonrpc",
           {{"Content-Type", "application/json"}, {"Accept", "application/json"}},
           sdk::to_json(body), settings_.timeout_ms, flags);
  rapidjson::Document doc;
  const sdk::JsonParse parsed = sdk::try_parse_json(response.body, doc);
  if (parsed == sdk::JsonParse::too_deep) {
    reply.fault = Fault{"", too_deep_message(), response.status};
    return reply;
  }
  const bool json = parsed == sdk::JsonParse::ok && doc.IsObject();
  if (response.status == 200 && json && doc.HasMember("result")) {
    // The result becomes the reply's root; its storage stays in the document's allocator.
    Value taken;
    taken = doc["result"];
    static_cast<Value &>(doc) = taken;
    reply.result = std::move(doc);
    return reply;
  }
  Fault f;
  if (json && doc.HasMember("error") && doc["error"].IsObject()) {
    const Value &e = doc["error"];
    f = e.HasMember("data") && e["data"].IsObject() ? fault_of(e["data"], response.status)
                                                    : fault_of(e, response.status);
    if (f.message.empty()) f.message = get_string(e, "message");
    f.http_status = response.status;
  } else {
    // No JSON-RPC error object: a proxy's status, or a 200 body cut short (transport).
    f.http_status = response.status == 200 ? 0 : response.status;
    if (response.status == 200) f.message = "a truncated or non-JSON answer";
  }
  if (f.message.empty()) f.message = "HTTP " + std::to_string(response.status);
  // A revoked key shows as AccessDenied here: authenticate afresh next time.
  if (classify_fault(f).status == CRM_ERR_UNAUTHORIZED &&
      f.name.find("AccessDenied") != f.name.npos)
    uid_.reset();
  reply.fault = f;
  return reply;
}

void OdooConnector::fail(const Fault &f, const std::string &what) {
  const Classified c = classify_fault(f);
  std::string text = what + ": Odoo answered ";
  text += !f.name.empty()      ? f.name
          : f.http_status == 0 ? std::string("with no usable body")
                               : "HTTP " + std::to_string(f.http_status);
  if (!f.message.empty() && f.message != "HTTP " + std::to_string(f.http_status))
    text += " (" + f.message + ")";
  if (c.status == CRM_ERR_UNAUTHORIZED && c.code == "unauthorized")
    text += "; check settings.login and settings.api_key (or password) for database \"" +
            settings_.database + "\"";
  const int retry_ms = c.status == CRM_ERR_RATE_LIMITED ? 5000 : 0;
  throw Error(c.status, text, f.http_status, retry_ms, c.retryable ? 1 : 0);
}

rapidjson::Document OdooConnector::call(const std::string &model, const std::string &method,
                                        rapidjson::Document &args, bool idempotent) {
  Reply reply = rpc(model, method, args, idempotent);
  if (reply.fault) fail(*reply.fault, model + "." + method);
  return std::move(reply.result);
}

int64_t OdooConnector::uid() {
  if (uid_) return *uid_;
  rapidjson::Document body(rapidjson::kObjectType);
  auto &a = body.GetAllocator();
  Value params(rapidjson::kObjectType), args(rapidjson::kArrayType);
  args.PushBack(Value(settings_.database.c_str(), a), a);
  args.PushBack(Value(settings_.login.c_str(), a), a);
  args.PushBack(Value(settings_.secret.c_str(), a), a);
  args.PushBack(Value(rapidjson::kObjectType), a);
  params.AddMember("service", "common", a);
  params.AddMember("method", "authenticate", a);
  params.AddMember("args", args, a);
  body.AddMember("jsonrpc", "2.0", a);
  body.AddMember("method", "call", a);
  body.AddMember("params", params, a);
  body.AddMember("id", next_request_id_++, a);
  const sdk::HttpResponse response =
      http("POST", settings_.url + "/jsonrpc",
           {{"Content-Type", "application/json"}, {"Accept", "application/json"}},
           sdk::to_json(body), settings_.timeout_ms, CRM_HTTP_IDEMPOTENT);
  rapidjson::Document doc;
  const sdk::JsonParse parsed = sdk::try_parse_json(response.body, doc);
  if (parsed == sdk::JsonParse::too_deep)
    fail(Fault{"", too_deep_message(), response.status}, "common.authenticate");
  const bool json = parsed == sdk::JsonParse::ok && doc.IsObject();
  if (response.status == 200 && json && doc.HasMember("result")) {
    const Value &r = doc["result"];
    if (r.IsInt64() && r.GetInt64() > 0) return *(uid_ = r.GetInt64());
    throw Error(CRM_ERR_UNAUTHORIZED,
                "Odoo refused the login \"" + settings_.login + "\" on database \"" +
                    settings_.database +
                    "\" (authenticate returned false); check settings.login "
                    "and settings." +
                    (settings_.api_key ? "api_key" : "password"),
                response.status, 0, 0);
  }
  Fault f;
  if (json && doc.HasMember("error") && doc["error"].IsObject()) {
    const Value &e = doc["error"];
    f = e.HasMember("data") && e["data"].IsObject() ? fault_of(e["data"], response.status)
                                                    : fault_of(e, response.status);
  }
  f.http_status = f.name.empty() && response.status == 200 ? 0 : response.status;
  fail(f, "common.authenticate");
}

// ---- records ------------------------------------------------------------------------------

void OdooConnector::base_domain(const Target &t, Value &domain, Alloc &alloc) const {
  Value active(rapidjson::kArrayType), both(rapidjson::kArrayType);
  both.PushBack(true, alloc).PushBack(false, alloc);
  active.PushBack("active", alloc).PushBack("in", alloc).PushBack(both, alloc);
  if (t.partner_kind()) {
    Value kind(rapidjson::kArrayType);
    kind.PushBack("is_company", alloc)
        .PushBack("=", alloc)
        .PushBack(t.info->is_company == 1, alloc);
    domain.PushBack("&", alloc);
    domain.PushBack(active, alloc);
    domain.PushBack(kind, alloc);
  } else {
    domain.PushBack(active, alloc);
  }
}

Value OdooConnector::record_json(const Target &t, const Value &r, Alloc &alloc) const {
  Value out(rapidjson::kObjectType);
  std::string id;
  if (auto it = r.FindMember("id"); it != r.MemberEnd() && it->value.IsInt64())
    id = std::to_string(it->value.GetInt64());
  out.AddMember("id", Value(id.c_str(), alloc), alloc);
  out.AddMember("event", "upsert", alloc);
  if (auto w = parse_odoo_time(get_string(r, "write_date")))
    out.AddMember("modified_at", Value(format_iso(*w).c_str(), alloc), alloc);
  Value data(rapidjson::kObjectType);
  auto known = field_types_.find(t.model);
  for (const auto &m : r.GetObject()) {
    Value v(m.value, alloc);
    const std::string_view name(m.name.GetString(), m.name.GetStringLength());
    bool boolean = boolean_field(name);
    if (known != field_types_.end())
      if (auto f = known->second.find(std::string(name)); f != known->second.end())
        boolean = f->second.type == "boolean";
    if (v.IsFalse() && !boolean) v.SetNull();
    data.AddMember(Value(m.name, alloc), v, alloc);
  }
  // Helpers the presets map from, as the mapping language cannot split text (see README).
  if (t.partner_kind() && t.info->is_company == 0) {
    const std::string name = get_string(r, "name");
    const auto space = name.find_last_of(' ');
    const std::string first = space == std::string::npos ? name : name.substr(0, space);
    const std::string last = space == std::string::npos ? "" : name.substr(space + 1);
    if (!first.empty()) data.AddMember("_first_name", Value(first.c_str(), alloc), alloc);
    if (!last.empty()) data.AddMember("_last_name", Value(last.c_str(), alloc), alloc);
  }
  if (t.partner_kind() && t.info->is_company == 1) {
    std::string domain = get_string(r, "website");
    if (auto scheme = domain.find("://"); scheme != std::string::npos)
      domain = domain.substr(scheme + 3);
    if (domain.rfind("www.", 0) == 0) domain = domain.substr(4);
    domain = domain.substr(0, domain.find_first_of("/?#"));
    std::transform(domain.begin(), domain.end(), domain.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!domain.empty()) data.AddMember("_domain", Value(domain.c_str(), alloc), alloc);
  }
  out.AddMember("data", data, alloc);
  return out;
}

void OdooConnector::add_country_codes(Value &records, Alloc &alloc) {
  auto country_of = [](const Value &record) -> std::optional<int64_t> {
    auto data = record.FindMember("data");
    if (data == record.MemberEnd() || !data->value.IsObject()) return std::nullopt;
    auto c = data->value.FindMember("country_id");
    if (c == data->value.MemberEnd() || !c->value.IsArray() || c->value.Empty() ||
        !c->value[0].IsInt64())
      return std::nullopt;
    return c->value[0].GetInt64();
  };
  std::set<int64_t> wanted;
  for (const auto &r : records.GetArray())
    if (auto id = country_of(r); id && !country_codes_.count(*id)) wanted.insert(*id);
  if (!wanted.empty() && !country_codes_refused_) {
    rapidjson::Document args(rapidjson::kObjectType);
    auto &a = args.GetAllocator();
    Value domain(rapidjson::kArrayType), term(rapidjson::kArrayType), list(rapidjson::kArrayType),
        fields(rapidjson::kArrayType);
    for (int64_t id : wanted) list.PushBack(id, a);
    term.PushBack("id", a).PushBack("in", a).PushBack(list, a);
    domain.PushBack(term, a);
    fields.PushBack("code", a);
    args.AddMember("domain", domain, a);
    args.AddMember("fields", fields, a);
    Reply reply = rpc("res.country", "search_read", args, true);
    if (reply.fault) {
      // Codes are a convenience: a user who may not read countries still syncs the rest.
      country_codes_refused_ = true;
      log(CRM_LOG_WARN, "res.country is not readable (" + reply.fault->name +
                            "); records carry no _country_code");
    } else if (reply.result.IsArray()) {
      for (const auto &c : reply.result.GetArray())
        if (c.IsObject() && c.HasMember("id") && c["id"].IsInt64())
          country_codes_[c["id"].GetInt64()] = get_string(c, "code");
    }
  }
  for (auto &r : records.GetArray())
    if (auto id = country_of(r))
      if (auto code = country_codes_.find(*id);
          code != country_codes_.end() && !code->second.empty())
        r["data"].AddMember("_country_code", Value(code->second.c_str(), alloc), alloc);
}

std::vector<int64_t> OdooConnector::search_ids(const Target &t) {
  rapidjson::Document args(rapidjson::kObjectType);
  auto &a = args.GetAllocator();
  Value domain(rapidjson::kArrayType);
  base_domain(t, domain, a);
  args.AddMember("domain", domain, a);
  args.AddMember("order", "id asc", a);
  const rapidjson::Document ids = call(t.model, "search", args, true);
  std::vector<int64_t> out;
  if (ids.IsArray())
    for (const auto &id : ids.GetArray())
      if (id.IsInt64()) out.push_back(id.GetInt64());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

const std::map<std::string, OdooConnector::FieldType> &OdooConnector::field_types(
    const std::string &model) {
  if (auto it = field_types_.find(model); it != field_types_.end()) return it->second;
  std::map<std::string, FieldType> types;
  rapidjson::Document args(rapidjson::kObjectType);
  auto &a = args.GetAllocator();
  Value attributes(rapidjson::kArrayType);
  attributes.PushBack("type", a).PushBack("relation", a);
  args.AddMember("attributes", attributes, a);
  Reply reply = rpc(model, "fields_get", args, true);
  if (!reply.fault && reply.result.IsObject()) {
    for (const auto &m : reply.result.GetObject())
      if (m.value.IsObject())
        types[m.name.GetString()] = {get_string(m.value, "type"), get_string(m.value, "relation")};
  } else {
    // Without fields_get the usual many2one fields are still known, and `active`, which the
    // default models have (guess: a server that refuses fields_get to an integration user).
    log(CRM_LOG_WARN, "fields_get on " + model + " failed; using the built-in field list");
    for (const auto &[field, relation] :
         std::map<std::string, std::string>{{"parent_id", "res.partner"},
                                            {"partner_id", "res.partner"},
                                            {"country_id", "res.country"},
                                            {"state_id", "res.country.state"},
                                            {"stage_id", "crm.stage"},
                                            {"user_id", "res.users"},
                                            {"team_id", "crm.team"},
                                            {"company_id", "res.company"},
                                            {"title", "res.partner.title"}})
      types[field] = {"many2one", relation};
    types["active"] = {"boolean", ""};
  }
  return field_types_[model] = std::move(types);
}

std::optional<int64_t> OdooConnector::lookup_many2one(const std::string &relation,
                                                      const std::string &value) {
  const std::string key = relation + "\n" + value;
  if (auto it = many2one_ids_.find(key); it != many2one_ids_.end()) return it->second;
  rapidjson::Document args(rapidjson::kObjectType);
  auto &a = args.GetAllocator();
  Value domain(rapidjson::kArrayType), term(rapidjson::kArrayType);
  std::string field = "name", wanted = value;
  // Countries are named by ISO code in the canonical model; users by login when it is an email.
  if (relation == "res.country" && value.size() == 2) {
    field = "code";
    std::transform(wanted.begin(), wanted.end(), wanted.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  } else if (relation == "res.users" && value.find('@') != std::string::npos) {
    field = "login";
  }
  term.PushBack(Value(field.c_str(), a), a).PushBack("=", a).PushBack(Value(wanted.c_str(), a), a);
  domain.PushBack(term, a);
  args.AddMember("domain", domain, a);
  args.AddMember("limit", 1, a);
  args.AddMember("order", "id asc", a);
  const rapidjson::Document ids = call(relation, "search", args, true);
  if (!ids.IsArray() || ids.Empty() || !ids[0].IsInt64()) return std::nullopt;
  return many2one_ids_[key] = ids[0].GetInt64();
}

// ---- check, fetch, webhook ------------------------------------------------------------------

crm_status OdooConnector::check(rapidjson::Document &result) {
  const Target &t = targets_.begin()->second;
  if (!settings_.json2) uid_.reset();  // a check proves the credentials afresh
  rapidjson::Document args(rapidjson::kObjectType);
  auto &a = args.GetAllocator();
  Value domain(rapidjson::kArrayType);
  base_domain(t, domain, a);
  args.AddMember("domain", domain, a);
  const rapidjson::Document count = call(t.model, "search_count", args, true);
  auto &alloc = result.GetAllocator();
  result.AddMember("ok", true, alloc);
  std::string message = "Odoo accepted ";
  message += settings_.json2 ? "the API key (JSON-2)"
                             : "login \"" + settings_.login + "\" (JSON-RPC, uid " +
                                   std::to_string(uid_.value_or(0)) + ")";
  message += " on database \"" + settings_.database + "\"";
  if (count.IsUint64())
    message += "; " + std::to_string(count.GetUint64()) + " " + t.info->name + " records";
  result.AddMember("message", Value(message.c_str(), alloc), alloc);
  return CRM_OK;
}

crm_status OdooConnector::fetch(const Value &request, rapidjson::Document &result) {
  const Target &t = target_of(request, "fetch");
  const std::vector<std::string> ids = sdk::request_ids(request);
  auto &alloc = result.GetAllocator();
  Value records(rapidjson::kArrayType), missing(rapidjson::kArrayType);
  std::set<std::string> found;
  for (size_t start = 0; start < ids.size(); start += 200) {
    // search_read on the ids rather than read: a deleted id is then missing, not a MissingError
    // failing the whole batch, and a partner of the other kind is missing too.
    rapidjson::Document args(rapidjson::kObjectType);
    auto &a = args.GetAllocator();
    Value domain(rapidjson::kArrayType), term(rapidjson::kArrayType), list(rapidjson::kArrayType),
        fields(rapidjson::kArrayType);
    for (size_t i = start; i < std::min(ids.size(), start + 200); ++i) {
      const std::string &id = ids[i];
      if (!id.empty() &&
          std::all_of(id.begin(), id.end(), [](unsigned char c) { return std::isdigit(c); }) &&
          id.size() < 19)
        list.PushBack(static_cast<int64_t>(std::stoll(id)), a);
    }
    if (list.Empty()) continue;
    domain.PushBack("&", a);
    term.PushBack("id", a).PushBack("in", a).PushBack(list, a);
    domain.PushBack(term, a);
    base_domain(t, domain, a);
    for (const auto &f : t.fields) fields.PushBack(Value(f.c_str(), a), a);
    args.AddMember("domain", domain, a);
    args.AddMember("fields", fields, a);
    const rapidjson::Document page = call(t.model, "search_read", args, true);
    if (page.IsArray())
      for (const auto &r : page.GetArray()) {
        Value record = record_json(t, r, alloc);
        found.insert(record["id"].GetString());
        records.PushBack(record, alloc);
      }
  }
  add_country_codes(records, alloc);
  for (const auto &id : ids)
    if (!found.count(id)) missing.PushBack(Value(id.c_str(), alloc), alloc);
  result.AddMember("records", records, alloc);
  result.AddMember("missing", missing, alloc);
  return CRM_OK;
}

crm_status OdooConnector::webhook(const Value &request, std::string_view body,
                                  rapidjson::Document &result) {
  if (settings_.webhook_header.empty())
    throw Error(CRM_ERR_UNAUTHORIZED,
                "webhook: settings.webhook_secret_header is not set, so no delivery is trusted");
  // Every header of that name is compared, so a duplicate cannot hide the right one's absence.
  bool verified = false, present = false;
  if (request.HasMember("headers") && request["headers"].IsArray())
    for (const auto &pair : request["headers"].GetArray()) {
      if (!pair.IsArray() || pair.Size() != 2 || !pair[0].IsString() || !pair[1].IsString())
        continue;
      const std::string_view name(pair[0].GetString(), pair[0].GetStringLength());
      if (name.size() != settings_.webhook_header.size() ||
          !std::equal(name.begin(), name.end(), settings_.webhook_header.begin(),
                      [](char x, char y) {
                        return std::tolower(static_cast<unsigned char>(x)) ==
                               std::tolower(static_cast<unsigned char>(y));
                      }))
        continue;
      present = true;
      verified = secret_matches({pair[1].GetString(), pair[1].GetStringLength()},
                                settings_.webhook_secret);
      if (!verified) break;
    }
  if (!verified) {
    log(CRM_LOG_WARN, std::string("webhook refused: the ") + settings_.webhook_header +
                          (present ? " header is wrong" : " header is missing"));
    throw Error(CRM_ERR_UNAUTHORIZED, "webhook: the secret header is missing or wrong");
  }
  const WebhookDelivery delivery = parse_webhook(body);
  std::vector<std::string> objects;
  for (const auto &[name, t] : targets_)
    if (t.model == delivery.model) objects.push_back(name);
  if (objects.size() > 1 && std::all_of(objects.begin(), objects.end(), [&](const auto &o) {
        return targets_.at(o).partner_kind();
      })) {
    // A partner is a contact or a company; a rule that did not send is_company is asked.
    std::optional<bool> is_company = delivery.is_company;
    if (!is_company) {
      rapidjson::Document args(rapidjson::kObjectType);
      auto &a = args.GetAllocator();
      Value domain(rapidjson::kArrayType), term(rapidjson::kArrayType),
          active(rapidjson::kArrayType), both(rapidjson::kArrayType), list(rapidjson::kArrayType),
          fields(rapidjson::kArrayType);
      list.PushBack(static_cast<int64_t>(std::stoll(delivery.id)), a);
      term.PushBack("id", a).PushBack("in", a).PushBack(list, a);
      both.PushBack(true, a).PushBack(false, a);
      active.PushBack("active", a).PushBack("in", a).PushBack(both, a);
      domain.PushBack("&", a).PushBack(term, a).PushBack(active, a);
      fields.PushBack("is_company", a);
      args.AddMember("domain", domain, a);
      args.AddMember("fields", fields, a);
      const rapidjson::Document found = call(delivery.model, "search_read", args, true);
      if (found.IsArray() && !found.Empty() && found[0].HasMember("is_company") &&
          found[0]["is_company"].IsBool())
        is_company = found[0]["is_company"].GetBool();
    }
    objects.clear();
    if (is_company) objects.push_back(*is_company ? "company" : "contact");
  } else if (objects.size() == 1 && targets_.at(objects[0]).partner_kind() && delivery.is_company &&
             *delivery.is_company != (targets_.at(objects[0]).info->is_company == 1)) {
    objects.clear();  // a partner of the kind this connection does not sync
  }
  auto &alloc = result.GetAllocator();
  Value events(rapidjson::kArrayType);
  const auto written = parse_odoo_time(delivery.write_date);
  int64_t received = 0;
  if (auto it = request.FindMember("received_at_ms");
      it != request.MemberEnd() && it->value.IsInt64())
    received = it->value.GetInt64();
  for (const auto &object : objects) {
    Value event(rapidjson::kObjectType);
    event.AddMember("object", Value(object.c_str(), alloc), alloc);
    event.AddMember("id", Value(delivery.id.c_str(), alloc), alloc);
    event.AddMember("event", "upsert", alloc);
    // No data: the host fetches the record. The key names the version when the rule sent
    // write_date; otherwise the receipt time keeps later changes apart.
    if (written) {
      const std::string key =
          "odoo:" + delivery.model + ":" + delivery.id + ":" + std::to_string(*written);
      event.AddMember("event_id", Value(key.c_str(), alloc), alloc);
      event.AddMember("occurred_at", Value(format_iso(*written).c_str(), alloc), alloc);
    } else if (received > 0) {
      event.AddMember("occurred_at", Value(ms_iso(received).c_str(), alloc), alloc);
    }
    events.PushBack(event, alloc);
  }
  result.AddMember("events", events, alloc);
  Value response(rapidjson::kObjectType), headers(rapidjson::kObjectType);
  headers.AddMember("Content-Type", "text/plain", alloc);
  response.AddMember("status", 200, alloc);
  response.AddMember("headers", headers, alloc);
  response.AddMember("body", "ok", alloc);
  result.AddMember("response", response, alloc);
  return CRM_OK;
}

}  // namespace crmhost::odoo

CRMHOST_SDK_PLUGIN(crmhost::odoo::OdooConnector, "odoo", "1.0.0", "crmhost")
