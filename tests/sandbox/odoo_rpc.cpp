// The Odoo emulator's two protocols, JSON-RPC (/jsonrpc) and JSON-2 (/json/2/{model}/{method}),
// and the model methods both reach.
#include <algorithm>

#include "sandbox/odoo_internal.hpp"

namespace crmsandbox {

using namespace odoo;

namespace {

// Each method's parameters in Python's positional order (Odoo 17-19 signatures).
const std::map<std::string, std::vector<std::string>> kSignatures = {
    {"search", {"domain", "offset", "limit", "order"}},
    {"search_read", {"domain", "fields", "offset", "limit", "order", "load"}},
    {"read", {"ids", "fields", "load"}},
    {"search_count", {"domain", "limit"}},
    {"create", {"vals_list"}},
    {"write", {"ids", "vals"}},
    {"unlink", {"ids"}},
    {"fields_get", {"allfields", "attributes"}},
    {"name_search", {"name", "domain", "operator", "limit"}},
};

HttpResponse json_answer(int status, std::string body) {
  return {status, "application/json", {}, std::move(body)};
}

// (guess) a plausible traceback: Odoo sends the server's, which says little to a client.
std::string traceback(const Error &error) {
  const auto dot = error.name.rfind('.');
  const std::string shown =
      error.name.rfind("builtins.", 0) == 0 ? error.name.substr(dot + 1) : error.name;
  return "Traceback (most recent call last):\n  File \"/usr/lib/python3/dist-packages/odoo/"
         "http.py\", line 2150, in _serve_db\n    return service_model.retrying(self._serve_ir_"
         "http, self.env)\n" +
         shown + ": " + error.what() + "\n";
}

void write_error_data(JsonWriter &w, const Error &error) {
  const std::string message = error.what();
  w.StartObject();
  w.Key("name");
  w.String(error.name);
  w.Key("debug");
  w.String(traceback(error));
  w.Key("message");
  w.String(message);
  w.Key("arguments");
  w.StartArray();
  w.String(message);
  w.EndArray();
  w.Key("context");
  w.StartObject();
  w.EndObject();
  w.EndObject();
}

std::vector<int64_t> ids_of(const rapidjson::Value *value) {
  std::vector<int64_t> out;
  if (!value || value->IsNull() || (value->IsBool() && !value->GetBool())) return out;
  if (value->IsInt64()) return {value->GetInt64()};
  if (value->IsArray())
    for (const auto &id : value->GetArray()) {
      if (!id.IsInt64()) throw Error(kValueError, "Invalid id " + py_repr(id));  // (guess)
      out.push_back(id.GetInt64());
    }
  else
    throw Error(kTypeError, "ids must be a list of integers, not " + py_repr(*value));  // (guess)
  return out;
}

std::optional<int64_t> integer_of(const rapidjson::Value *value, const char *name) {
  if (!value || value->IsNull() || (value->IsBool() && !value->GetBool())) return std::nullopt;
  if (value->IsInt64()) return value->GetInt64();
  throw Error(kTypeError, std::string(name) + " must be an integer, not " + py_repr(*value));
}

std::string string_of(const rapidjson::Value *value, const std::string &fallback = "") {
  if (!value || value->IsNull() || (value->IsBool() && !value->GetBool())) return fallback;
  if (value->IsString()) return {value->GetString(), value->GetStringLength()};
  throw Error(kTypeError, "expected a string, not " + py_repr(*value));
}

OdooValues values_of(const ModelDef &model, const rapidjson::Value &object) {
  if (!object.IsObject())
    throw Error(kValueError, "Wrong value for " + model.name + ": " + py_repr(object));  // (guess)
  OdooValues out;
  for (const auto &member : object.GetObject()) {
    const std::string name(member.name.GetString(), member.name.GetStringLength());
    out[name] = from_json(member.value, model.name + "." + name);
  }
  return out;
}

// Binds positional args and kwargs to the method's parameters as Python would.
Params bind_params(const std::string &method, const rapidjson::Value *args,
                   const rapidjson::Value *kwargs) {
  const auto &names = kSignatures.at(method);
  Params out;
  if (args && !args->IsNull()) {
    if (!args->IsArray()) throw Error(kTypeError, "args must be a list");  // (guess)
    if (args->Size() > names.size())
      throw Error(kTypeError, method + "() takes at most " + std::to_string(names.size() + 1) +
                                  " positional arguments (" + std::to_string(args->Size() + 1) +
                                  " given)");
    for (rapidjson::SizeType i = 0; i < args->Size(); ++i) out.named[names[i]] = &(*args)[i];
  }
  if (kwargs && kwargs->IsObject())
    for (const auto &member : kwargs->GetObject()) {
      std::string name(member.name.GetString(), member.name.GetStringLength());
      if (method == "create" && name == "vals") name = "vals_list";  // older spelling
      if (method == "name_search" && name == "args") name = "domain";
      if (name != "context" && std::find(names.begin(), names.end(), name) == names.end())
        throw Error(kTypeError, method + "() got an unexpected keyword argument '" + name + "'");
      if (out.named.count(name))
        throw Error(kTypeError, method + "() got multiple values for argument '" + name + "'");
      out.named[name] = &member.value;
    }
  return out;
}

bool active_test(const Params &params) {
  const auto *context = params.get("context");
  if (!context || !context->IsObject()) return true;
  const auto it = context->FindMember("active_test");
  return it == context->MemberEnd() || !it->value.IsBool() || it->value.GetBool();
}

bool load_names(const Params &params) {
  const auto *load = params.get("load");
  if (!load) return true;
  return load->IsString() && std::string(load->GetString()) == "_classic_read";
}

bool credentials_match(const User &user, const std::string &secret) {
  if (secret.empty()) return false;
  if (secret == user.spec.password) return true;
  return std::find(user.spec.api_keys.begin(), user.spec.api_keys.end(), secret) !=
         user.spec.api_keys.end();
}

std::string text_arg(const rapidjson::Value &args, rapidjson::SizeType i) {
  if (i >= args.Size()) throw Error(kTypeError, "missing a required positional argument");
  if (!args[i].IsString()) return {};
  return {args[i].GetString(), args[i].GetStringLength()};
}

}  // namespace

void OdooSandbox::Impl::execute(Database &db, const User &user, const ModelDef &model,
                                const std::string &method, const Params &params, JsonWriter &w,
                                const std::string &stamp, std::vector<OdooDelivery> &webhooks) {
  const bool writes = method == "create" || method == "write" || method == "unlink";
  if (writes && user.spec.read_only)  // (guess) Odoo 17's first sentence
    throw Error(kAccessError, "You are not allowed to " +
                                  std::string(method == "create"  ? "create"
                                              : method == "write" ? "modify"
                                                                  : "delete") +
                                  " '" + model.label + "' (" + model.name + ") records.");
  const bool active = active_test(params);
  if (method == "search" || method == "search_read" || method == "search_count") {
    const auto domain = parse_domain(model, params.get("domain"));
    const bool counting = method == "search_count";
    const auto ids = search(db, model, domain, active,
                            counting ? 0 : integer_of(params.get("offset"), "offset").value_or(0),
                            integer_of(params.get("limit"), "limit"),
                            counting ? "" : string_of(params.get("order")));
    if (counting) {
      w.Int64(static_cast<int64_t>(ids.size()));
    } else if (method == "search") {
      w.StartArray();
      for (const auto id : ids) w.Int64(id);
      w.EndArray();
    } else {
      const auto fields = read_fields(model, params.get("fields"));
      w.StartArray();
      for (const auto id : ids) write_row(w, db, model, id, fields, load_names(params));
      w.EndArray();
    }
  } else if (method == "read") {
    const auto ids = ids_of(params.get("ids"));
    const auto fields = read_fields(model, params.get("fields"));
    require_rows(db, model, ids, user.uid);
    w.StartArray();
    for (const auto id : ids) write_row(w, db, model, id, fields, load_names(params));
    w.EndArray();
  } else if (method == "create") {
    const auto *vals = params.get("vals_list");
    if (!vals)
      throw Error(kTypeError, "create() missing 1 required positional argument: 'vals_list'");
    std::vector<OdooValues> checked;
    if (vals->IsArray())
      for (const auto &one : vals->GetArray())
        checked.push_back(check_values(db, model, values_of(model, one)));
    else
      checked.push_back(check_values(db, model, values_of(model, *vals)));
    for (const auto &values : checked) check_required(model, values, true);
    std::vector<int64_t> ids;
    for (auto &values : checked) {
      ids.push_back(insert(db, model, std::move(values), stamp));
      collect_webhooks(db, model, ids.back(), "create", webhooks);
    }
    // A dict gives the id, a list the ids (Odoo's _call_kw_model_create).
    if (vals->IsArray()) {
      w.StartArray();
      for (const auto id : ids) w.Int64(id);
      w.EndArray();
    } else {
      w.Int64(ids.front());
    }
  } else if (method == "write") {
    const auto ids = ids_of(params.get("ids"));
    const auto *vals = params.get("vals");
    if (!vals) throw Error(kTypeError, "write() missing 1 required positional argument: 'vals'");
    require_rows(db, model, ids, user.uid);
    const auto values = check_values(db, model, values_of(model, *vals));
    update(db, model, ids, values, stamp);
    for (const auto id : ids) collect_webhooks(db, model, id, "write", webhooks);
    w.Bool(true);
  } else if (method == "unlink") {
    const auto ids = ids_of(params.get("ids"));
    require_rows(db, model, ids, user.uid);  // (guess) Odoo 17 refuses missing ids
    for (const auto id : ids) collect_webhooks(db, model, id, "unlink", webhooks);
    remove(db, model, ids);
    w.Bool(true);
  } else if (method == "fields_get") {
    const auto *allfields = params.get("allfields");
    const auto *attributes = params.get("attributes");
    const auto wanted = [](const rapidjson::Value *list, const std::string &name) {
      if (!list || !list->IsArray() || list->Empty()) return true;
      for (const auto &item : list->GetArray())
        if (item.IsString() && name == item.GetString()) return true;
      return false;
    };
    w.StartObject();
    for (const auto &f : model.fields) {
      if (!wanted(allfields, f.name)) continue;
      w.Key(f.name.c_str(), static_cast<rapidjson::SizeType>(f.name.size()));
      w.StartObject();
      const auto attribute = [&](const char *name) {
        if (!wanted(attributes, name)) return false;
        w.Key(name);
        return true;
      };
      if (attribute("type")) w.String(type_name(f.type));
      if (attribute("string")) w.String(f.label);
      if (attribute("readonly")) w.Bool(f.readonly);
      if (attribute("required")) w.Bool(f.required);
      if (attribute("store")) w.Bool(f.stored);
      if (attribute("searchable")) w.Bool(true);
      if (attribute("sortable")) w.Bool(f.stored);
      if (f.type == FieldType::Many2one && attribute("relation")) w.String(f.relation);
      if (f.type == FieldType::Selection && attribute("selection")) {
        w.StartArray();
        for (const auto &[value, label] : f.selection) {
          w.StartArray();
          w.String(value);
          w.String(label);
          w.EndArray();
        }
        w.EndArray();
      }
      w.EndObject();
    }
    w.EndObject();
  } else if (method == "name_search") {
    const auto name = string_of(params.get("name"));
    const auto op = string_of(params.get("operator"), "ilike");
    auto domain = parse_domain(model, params.get("domain"));
    if (!name.empty()) {
      Domain leaf;
      leaf.kind = Domain::Leaf;
      leaf.field = "display_name";
      leaf.op = op;
      leaf.values = {name};
      Domain both;
      both.kind = Domain::And;
      both.children = {std::move(domain), std::move(leaf)};
      domain = std::move(both);
    }
    const auto ids = search(db, model, domain, active, 0,
                            integer_of(params.get("limit"), "limit").value_or(100), "");
    w.StartArray();
    for (const auto id : ids) {
      const auto shown = display_name(db, model, id);
      w.StartArray();
      w.Int64(id);
      w.String(shown);
      w.EndArray();
    }
    w.EndArray();
  }
}

HttpResponse OdooSandbox::Impl::jsonrpc(const HttpRequest &request) {
  rapidjson::Document doc;
  doc.Parse(request.body.data(), request.body.size());
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  const rapidjson::Value null_id;
  const rapidjson::Value *id = &null_id;
  if (!doc.HasParseError() && doc.IsObject() && doc.HasMember("id")) id = &doc["id"];
  std::vector<OdooDelivery> webhooks;
  try {
    if (doc.HasParseError() || !doc.IsObject())  // (guess) how Odoo answers a non-JSON body
      throw Error("werkzeug.exceptions.BadRequest", "Invalid JSON data");
    const auto params = doc.FindMember("params");
    if (params == doc.MemberEnd() || !params->value.IsObject())
      throw Error(kTypeError, "dispatch_rpc() missing params");  // (guess)
    const auto &p = params->value;
    const auto service = p.HasMember("service") && p["service"].IsString()
                             ? std::string(p["service"].GetString())
                             : std::string();
    const auto method =
        p.HasMember("method") && p["method"].IsString() ? std::string(p["method"].GetString()) : "";
    rapidjson::Value empty_args(rapidjson::kArrayType);
    const rapidjson::Value &args =
        p.HasMember("args") && p["args"].IsArray() ? p["args"] : empty_args;

    rapidjson::StringBuffer result;
    JsonWriter r(result);
    std::unique_lock lock(mutex);
    if (service == "common" && method == "version") {
      const auto &v = options.server_version;
      const auto dot = v.find('.');
      r.StartObject();
      r.Key("server_version");
      r.String(v);
      r.Key("server_version_info");
      r.StartArray();
      r.Int(std::atoi(v.substr(0, dot).c_str()));
      r.Int(dot == std::string::npos ? 0 : std::atoi(v.substr(dot + 1).c_str()));
      r.Int(0);
      r.String("final");
      r.Int(0);
      r.String("");
      r.EndArray();
      r.Key("server_serie");
      r.String(v);
      r.Key("protocol_version");
      r.Int(1);
      r.EndObject();
    } else if (service == "common" && (method == "authenticate" || method == "login")) {
      const auto db_name = text_arg(args, 0), login = text_arg(args, 1), secret = text_arg(args, 2);
      const auto it = databases.find(db_name);
      if (it == databases.end())  // (guess) what PostgreSQL's refusal looks like through Odoo
        throw Error(
            "psycopg2.OperationalError",
            "connection to server failed: FATAL:  database \"" + db_name + "\" does not exist");
      int64_t uid = 0;
      for (const auto &[user_id, user] : it->second.users)
        if (user.spec.login == login && credentials_match(user, secret)) uid = user_id;
      if (uid) {
        r.Int64(uid);
      } else {
        ++stats.access_denied;
        r.Bool(false);
      }
    } else if (service == "db" && method == "list") {
      r.StartArray();
      for (const auto &[name, db] : databases) r.String(name);
      r.EndArray();
    } else if (service == "db" && method == "server_version") {
      r.String(options.server_version);
    } else if (service == "object" && (method == "execute_kw" || method == "execute")) {
      const auto db_name = text_arg(args, 0);
      const auto db = databases.find(db_name);
      const auto *user =
          db != databases.end() && args.Size() > 1 && args[1].IsInt64() ? [&]() -> const User * {
        const auto u = db->second.users.find(args[1].GetInt64());
        return u == db->second.users.end() ? nullptr : &u->second;
      }()
          : nullptr;
      if (!user || !credentials_match(*user, text_arg(args, 2))) {
        ++stats.access_denied;
        throw Error(kAccessDenied, "Access Denied");
      }
      const auto model_name = text_arg(args, 3), model_method = text_arg(args, 4);
      const ModelDef *model = find_model(model_name);
      if (!model) throw Error(kUserError, "Object " + model_name + " doesn't exist");
      if (!model_method.empty() && model_method[0] == '_')
        throw Error(kAccessError, "Private methods (such as " + model_name + "." + model_method +
                                      ") cannot be called remotely.");
      if (!kSignatures.count(model_method))
        throw Error("builtins.AttributeError",
                    "The method '" + model_name + "." + model_method + "' does not exist");
      rapidjson::Value rest(rapidjson::kArrayType);
      const rapidjson::Value *method_args = args.Size() > 5 ? &args[5] : nullptr;
      const rapidjson::Value *kwargs =
          method == "execute_kw" && args.Size() > 6 ? &args[6] : nullptr;
      if (method == "execute") {  // execute(db, uid, pw, model, method, *args)
        for (rapidjson::SizeType i = 5; i < args.Size(); ++i)
          rest.PushBack(rapidjson::Value(args[i], doc.GetAllocator()), doc.GetAllocator());
        method_args = &rest;
      }
      const auto bound = bind_params(model_method, method_args, kwargs);
      execute(db->second, *user, *model, model_method, bound, r, stamp_now(), webhooks);
    } else {
      throw Error("builtins.KeyError", "'" + service + "." + method + "'");  // (guess)
    }
    lock.unlock();
    w.StartObject();
    w.Key("jsonrpc");
    w.String("2.0");
    w.Key("id");
    id->Accept(w);
    w.Key("result");
    w.RawValue(result.GetString(), result.GetSize(), rapidjson::kObjectType);
    w.EndObject();
  } catch (const Error &error) {
    {
      std::lock_guard lock(mutex);
      ++stats.errors;
    }
    webhooks.clear();  // the transaction rolled back
    buffer.Clear();
    w.Reset(buffer);
    w.StartObject();
    w.Key("jsonrpc");
    w.String("2.0");
    w.Key("id");
    id->Accept(w);
    w.Key("error");
    w.StartObject();
    w.Key("code");
    w.Int(200);
    w.Key("message");
    w.String("Odoo Server Error");
    w.Key("data");
    write_error_data(w, error);
    w.EndObject();
    w.EndObject();
  }
  sender.send(std::move(webhooks));
  return json_answer(200, {buffer.GetString(), buffer.GetSize()});
}

HttpResponse OdooSandbox::Impl::json2(const HttpRequest &request) {
  std::vector<OdooDelivery> webhooks;
  try {
    constexpr std::string_view prefix = "/json/2/";
    const auto rest = request.path.substr(prefix.size());
    const auto slash = rest.find('/');
    const auto model_name = url_decode(rest.substr(0, slash), false);
    const auto method = slash == std::string::npos ? "" : url_decode(rest.substr(slash + 1), false);
    if (request.method != "POST") {
      Error error("werkzeug.exceptions.MethodNotAllowed",
                  "The method is not allowed for the requested URL.");
      error.status = 405;
      throw error;
    }
    const auto authorization = request.header("Authorization");
    const auto space = authorization.find(' ');
    const std::string key =
        space != std::string::npos && lowercase(authorization.substr(0, space)) == "bearer"
            ? authorization.substr(space + 1)
            : std::string();
    rapidjson::Document body;
    if (!request.body.empty())
      body.Parse(request.body.data(), request.body.size());
    else
      body.SetObject();

    rapidjson::StringBuffer result;
    JsonWriter r(result);
    std::unique_lock lock(mutex);
    // (guess) without X-Odoo-Database, the database holding the key, as with one database
    const auto wanted_db = request.header("X-Odoo-Database");
    Database *db = nullptr;
    const User *user = nullptr;
    for (auto &[name, candidate] : databases) {
      if (!wanted_db.empty() && name != wanted_db) continue;
      for (const auto &[uid, u] : candidate.users)
        if (!key.empty() && std::find(u.spec.api_keys.begin(), u.spec.api_keys.end(), key) !=
                                u.spec.api_keys.end()) {
          db = &candidate;
          user = &u;
        }
      if (user) break;
    }
    if (!user) {
      ++stats.access_denied;
      Error error(kAccessDenied, "Invalid apikey");  // (guess) the wording
      error.status = 401;
      throw error;
    }
    if (body.HasParseError() || !body.IsObject()) {
      Error error("werkzeug.exceptions.BadRequest", "Invalid JSON body: an object is expected");
      error.status = 400;  // (guess)
      throw error;
    }
    const ModelDef *model = find_model(model_name);
    if (!model || !kSignatures.count(method) || method.empty()) {
      Error error("werkzeug.exceptions.NotFound",  // (guess) the wording
                  !model ? "the model '" + model_name + "' does not exist"
                         : "the method '" + model_name + "." + method + "' does not exist");
      error.status = 404;
      throw error;
    }
    const auto bound = bind_params(method, nullptr, &body);
    execute(*db, *user, *model, method, bound, r, stamp_now(), webhooks);
    lock.unlock();
    sender.send(std::move(webhooks));
    return json_answer(200, {result.GetString(), result.GetSize()});
  } catch (const Error &error) {
    {
      std::lock_guard lock(mutex);
      ++stats.errors;
    }
    rapidjson::StringBuffer buffer;
    JsonWriter w(buffer);
    write_error_data(w, error);
    return json_answer(error.json2_status(), {buffer.GetString(), buffer.GetSize()});
  }
}

}  // namespace crmsandbox
