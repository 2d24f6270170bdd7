// The Zoho emulator's notifications: the actions/watch API (subscribe, details, replace, patch,
// unsubscribe) with its expiry rules, the callbacks a write sends to live channels, and the
// webhooks of workflow rules.
#include <algorithm>

#include "sandbox/zoho_internal.hpp"
#include "util/time.hpp"

namespace crmsandbox {

using namespace zoho;

namespace {

constexpr int64_t kHourMs = 3'600'000;
constexpr int64_t kMaxExpiryMs = 7 * zoho::kDayMs;  // (doc) at most a week ahead
constexpr size_t kMaxTokenChars = 49;  // (doc v7) "50 characters" and "<50" on one page

ApiError item_error(const std::string &code, const std::string &message, const std::string &name,
                    const std::string &path) {
  ApiError e;
  e.code = code;
  e.message = message;
  e.detail("api_name", name).detail("json_path", path + "." + name);
  return e;
}

// "Leads.edit" -> a module and an action; false when either is unknown.
bool valid_event(const std::string &event) {
  const auto dot = event.find('.');
  if (dot == std::string::npos || !find_module(event.substr(0, dot))) return false;
  const auto action = event.substr(dot + 1);
  return action == "create" || action == "edit" || action == "delete" || action == "all";
}

std::string event_module(const std::string &event) {
  return find_module(event.substr(0, event.find('.')))->name;
}

std::string watch_action(const std::string &operation) {
  return operation == "insert" ? "create" : operation == "update" ? "edit" : "delete";
}

std::string query_of(const std::string &url) {
  const auto q = url.find('?');
  return q == std::string::npos ? std::string() : url.substr(q + 1);
}

}  // namespace

HttpResponse ZohoSandbox::Impl::watch(Org &o, const HttpRequest &request, const std::string &dc) {
  const auto &m = request.method;
  const int64_t now = clock();
  std::erase_if(o.channels, [&](const auto &kv) { return kv.second.expiry_ms <= now; });
  const auto base = api_url(dc);
  const auto write_events = [&](JsonWriter &w, const ZohoChannel &c) {
    w.StartArray();
    std::set<std::string> modules;
    for (const auto &e : c.events) modules.insert(event_module(e));
    for (const auto &name : modules) {
      w.StartObject();
      w.Key("channel_expiry");
      w.String(zoho_time(c.expiry_ms, o.spec.utc_offset_minutes));
      w.Key("resource_uri");
      w.String(base + "/crm/v2/" + name);
      w.Key("resource_id");
      w.String(find_module(name)->resource_id);
      w.Key("resource_name");
      w.String(name);
      w.Key("channel_id");
      w.String(c.channel_id);
      w.EndObject();
    }
    w.EndArray();
  };
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);

  if (m == "GET") {
    const auto q = parse_query(request.query);
    const auto wanted_id = q.count("channel_id") ? q.at("channel_id") : std::string();
    const auto *wanted_module = q.count("module") ? find_module(q.at("module")) : nullptr;
    int64_t page = 1, per_page = 200;
    if (q.count("page"))
      page = std::max<int64_t>(1, static_cast<int64_t>(parse_number(q.at("page")).value_or(1)));
    if (q.count("per_page"))
      per_page = std::clamp<int64_t>(
          static_cast<int64_t>(parse_number(q.at("per_page")).value_or(200)), 1, 200);
    std::vector<const ZohoChannel *> shown;
    for (const auto &[id, c] : o.channels) {
      if (!wanted_id.empty() && id != wanted_id) continue;
      if (wanted_module &&
          std::none_of(c.events.begin(), c.events.end(), [&](const std::string &e) {
            return event_module(e) == wanted_module->name;
          }))
        continue;
      shown.push_back(&c);
    }
    const auto start = static_cast<size_t>((page - 1) * per_page);
    const auto end = std::min(shown.size(), start + static_cast<size_t>(per_page));
    if (start >= end) return {204, "", {}, ""};
    w.StartObject();
    w.Key("watch");
    w.StartArray();
    for (size_t i = start; i < end; ++i) {
      const auto &c = *shown[i];
      // (guess) the details' shape: the subscription's keys as POST takes them
      w.StartObject();
      w.Key("channel_id");
      w.String(c.channel_id);
      w.Key("events");
      w.StartArray();
      for (const auto &e : c.events) w.String(e);
      w.EndArray();
      w.Key("channel_expiry");
      w.String(zoho_time(c.expiry_ms, o.spec.utc_offset_minutes));
      w.Key("notify_url");
      w.String(c.notify_url);
      w.Key("token");
      w.String(c.token);
      w.Key("return_affected_field_values");
      w.Bool(c.return_affected_field_values);
      w.Key("notify_on_related_action");
      w.Bool(c.notify_on_related_action);
      w.Key("resources");
      write_events(w, c);
      w.EndObject();
    }
    w.EndArray();
    w.Key("info");
    w.StartObject();
    w.Key("per_page");
    w.Int64(per_page);
    w.Key("count");
    w.Uint64(end - start);
    w.Key("page");
    w.Int64(page);
    w.Key("more_records");
    w.Bool(end < shown.size());
    w.EndObject();
    w.EndObject();
    return json_response(200, {buffer.GetString(), buffer.GetSize()});
  }

  if (m == "DELETE") {
    const auto q = parse_query(request.query);
    std::vector<std::string> ids;
    if (const auto it = q.find("channel_ids"); it != q.end()) {
      size_t start = 0;
      for (size_t i = 0; i <= it->second.size(); ++i)
        if (i == it->second.size() || it->second[i] == ',') {
          if (i > start) ids.push_back(it->second.substr(start, i - start));
          start = i + 1;
        }
    }
    if (ids.empty()) {
      ApiError e;
      e.code = "REQUIRED_PARAM_MISSING";
      e.message = "One of the expected parameter is missing";
      e.detail("param_name", "channel_ids");
      return error_response(e);
    }
    bool failed = false;
    w.StartObject();
    w.Key("watch");
    w.StartArray();
    for (const auto &id : ids) {
      const auto it = o.channels.find(id);
      if (it == o.channels.end()) {
        failed = true;
        ApiError e;
        e.code = "INVALID_DATA";
        e.message = "invalid data";
        e.detail("api_name", "channel_ids").detail("channel_id", id);
        write_error(w, e);
        continue;
      }
      w.StartObject();
      w.Key("code");
      w.String("SUCCESS");
      w.Key("details");
      w.StartObject();
      w.Key("events");
      write_events(w, it->second);
      w.EndObject();
      w.Key("message");
      w.String("Successfully unsubscribed from actions-watch of the given module");  // (guess)
      w.Key("status");
      w.String("success");
      w.EndObject();
      o.channels.erase(it);
    }
    w.EndArray();
    w.EndObject();
    return json_response(failed ? 202 : 200, {buffer.GetString(), buffer.GetSize()});  // (OAS)
  }

  if (m != "POST" && m != "PUT" && m != "PATCH") {
    ApiError e;
    e.status = 405;
    e.code = "INVALID_REQUEST_METHOD";
    e.message = "The http request method type is not a valid one";
    return error_response(e);
  }
  rapidjson::Document body;
  body.Parse(request.body.data(), request.body.size());
  if (body.HasParseError() || !body.IsObject() || !body.HasMember("watch") ||
      !body["watch"].IsArray() || body["watch"].Empty()) {
    ApiError e;
    e.code = "MANDATORY_NOT_FOUND";
    e.message = "required field not found";
    e.detail("api_name", "watch").detail("json_path", "$.watch");
    return error_response(e);
  }
  const bool patch = m == "PATCH";
  size_t failed = 0;
  const auto &items = body["watch"];
  w.StartObject();
  w.Key("watch");
  w.StartArray();
  for (rapidjson::SizeType i = 0; i < items.Size(); ++i) {
    const auto path = "$.watch[" + std::to_string(i) + "]";
    const auto &item = items[i];
    std::optional<ApiError> error;
    ZohoChannel c;
    c.org_id = o.spec.id;
    const auto member = [&](const char *name) -> const rapidjson::Value * {
      if (!item.IsObject()) return nullptr;
      const auto it = item.FindMember(name);
      return it == item.MemberEnd() ? nullptr : &it->value;
    };
    const auto *id = member("channel_id");
    if (!id) {
      error = item_error("MANDATORY_NOT_FOUND", "required field not found", "channel_id", path);
    } else {
      c.channel_id = id->IsInt64()    ? std::to_string(id->GetInt64())
                     : id->IsString() ? std::string(id->GetString())
                                      : std::string();
      if (c.channel_id.empty() || c.channel_id.size() > 18 ||
          c.channel_id.find_first_not_of("0123456789") != std::string::npos)
        error = item_error("INVALID_DATA", "invalid data", "channel_id", path);
    }
    const auto existing = o.channels.find(c.channel_id);
    if (!error && patch && existing == o.channels.end())  // (guess) nothing to patch
      error = item_error("INVALID_DATA", "invalid data", "channel_id", path);
    if (!error && existing != o.channels.end() && m != "PUT") c = existing->second;
    const auto *events = member("events");
    std::vector<std::string> listed;
    if (!error && events) {
      if (!events->IsArray() || events->Empty()) {
        error = item_error("INVALID_DATA", "invalid data", "events", path);
      } else {
        for (const auto &e : events->GetArray()) {
          if (!e.IsString() || !valid_event(e.GetString())) {
            error = item_error("INVALID_DATA", "invalid data", "events", path);
            break;
          }
          listed.emplace_back(e.GetString());
        }
      }
    } else if (!error && !patch) {
      error = item_error("MANDATORY_NOT_FOUND", "required field not found", "events", path);
    }
    const auto *url = member("notify_url");
    if (!error && url) {
      // (guess) http:// only: the sandbox delivers to local receivers without TLS
      if (!url->IsString() || std::string(url->GetString()).rfind("http://", 0) != 0)
        error = item_error("INVALID_DATA", "invalid data", "notify_url", path);
      else
        c.notify_url = url->GetString();
    } else if (!error && !patch && c.notify_url.empty()) {
      error = item_error("MANDATORY_NOT_FOUND", "required field not found", "notify_url", path);
    }
    if (const auto *token = member("token"); !error && token) {
      if (!token->IsString() || token->GetStringLength() > kMaxTokenChars)
        error = item_error("INVALID_DATA", "invalid data", "token", path);
      else
        c.token = token->GetString();
    }
    if (const auto *expiry = member("channel_expiry"); !error && (expiry || !patch)) {
      std::optional<int64_t> at;
      if (expiry) {
        at = expiry->IsString() ? crmhost::timeutil::parse_iso8601_ms(expiry->GetString())
                                : std::nullopt;
        if (!at || *at <= now)  // (guess) a past expiry is refused
          error = item_error("INVALID_DATA", "invalid data", "channel_expiry", path);
      }
      // Absent or beyond a week: one hour from now (doc).
      if (!error) c.expiry_ms = at && *at - now <= kMaxExpiryMs ? *at : now + kHourMs;
    }
    for (const char *flag : {"return_affected_field_values", "notify_on_related_action"})
      if (const auto *v = member(flag); !error && v) {
        if (!v->IsBool())
          error = item_error("INVALID_DATA", "invalid data", flag, path);
        else if (std::string(flag) == "return_affected_field_values")
          c.return_affected_field_values = v->GetBool();
        else
          c.notify_on_related_action = v->GetBool();
      }
    if (!error) {
      const auto *remove = member("_delete_events");
      if (patch && remove && remove->IsBool() && remove->GetBool()) {
        std::erase_if(c.events, [&](const std::string &e) {
          return std::find(listed.begin(), listed.end(), e) != listed.end();
        });
      } else if (m == "POST" && existing != o.channels.end()) {
        // (guess) a re-subscription adds its events to the channel's and renews it
        for (const auto &e : listed)
          if (std::find(c.events.begin(), c.events.end(), e) == c.events.end())
            c.events.push_back(e);
      } else if (events) {
        c.events = listed;
      }
      o.channels[c.channel_id] = c;
    }
    if (error) {
      ++failed;
      write_error(w, *error);
      continue;
    }
    w.StartObject();
    w.Key("code");
    w.String("SUCCESS");
    w.Key("details");
    w.StartObject();
    w.Key("events");
    write_events(w, c);
    w.EndObject();
    w.Key("message");
    w.String(m == "POST" ? "Successfully subscribed for actions-watch of the given module"
                         : "Successfully updated the subscribe details");  // (guess) the second
    w.Key("status");
    w.String("success");
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  // (guess) 207 mixed, 400 all failed, as the record writes
  const int status = failed == items.Size() ? 400 : failed ? 207 : m == "POST" ? 201 : 200;
  return json_response(status, {buffer.GetString(), buffer.GetSize()});
}

void ZohoSandbox::Impl::deliveries_for(Org &o, const std::vector<Change> &changes,
                                       bool run_workflows, const std::string &dc,
                                       std::vector<ZohoDelivery> &out) {
  if (changes.empty()) return;
  const int64_t now = clock();
  const auto base = api_url(dc);
  // One callback per channel, module and operation of the call.
  std::vector<std::pair<std::string, std::string>> groups;  // module, operation, in order
  for (const auto &c : changes)
    if (std::find(groups.begin(), groups.end(), std::make_pair(c.module, c.operation)) ==
        groups.end())
      groups.emplace_back(c.module, c.operation);
  for (const auto &[module, operation] : groups) {
    const auto action = watch_action(operation);
    for (const auto &[channel_id, channel] : o.channels) {
      if (channel.expiry_ms <= now) continue;  // callbacks stop when the channel expires
      const bool wanted = std::any_of(
          channel.events.begin(), channel.events.end(),
          [&](const std::string &e) { return e == module + "." + action || e == module + ".all"; });
      if (!wanted) continue;
      ZohoDelivery d;
      d.kind = "notification";
      d.org_id = o.spec.id;
      d.channel_id = channel_id;
      d.module = module;
      d.operation = operation;
      d.url = channel.notify_url;
      d.headers = {{"Content-Type", "application/json"}};
      rapidjson::StringBuffer buffer;
      JsonWriter w(buffer);
      w.StartObject();
      w.Key("server_time");
      w.Int64(now);
      w.Key("query_params");
      w.StartObject();
      for (const auto &[k, v] : parse_query(query_of(channel.notify_url))) {
        key(w, k);
        w.String(v);
      }
      w.EndObject();
      w.Key("module");
      w.String(module);
      w.Key("resource_uri");
      w.String(base + "/crm/v2/" + module);  // (doc v7) the callbacks show /crm/v2/
      w.Key("ids");
      w.StartArray();
      for (const auto &c : changes)
        if (c.module == module && c.operation == operation) {
          w.String(std::to_string(c.id));
          d.ids.push_back(std::to_string(c.id));
        }
      w.EndArray();
      w.Key("affected_fields");
      w.StartArray();  // (guess) empty for inserts and deletes
      for (const auto &c : changes)
        if (c.module == module && c.operation == operation && operation == "update") {
          w.StartObject();
          key(w, std::to_string(c.id));
          w.StartArray();
          for (const auto &f : c.affected_fields) w.String(f);
          w.EndArray();
          w.EndObject();
        }
      w.EndArray();
      if (channel.return_affected_field_values) {
        w.Key("affected_values");
        w.StartArray();
        for (const auto &c : changes)
          if (c.module == module && c.operation == operation && operation == "update") {
            w.StartObject();
            w.Key("record_id");
            w.String(std::to_string(c.id));
            w.Key("values");
            w.StartObject();
            for (const auto &[name, value] : c.values) {
              key(w, name);
              write_value(w, value);
            }
            w.EndObject();
            w.EndObject();
          }
        w.EndArray();
      }
      w.Key("operation");
      w.String(operation);
      w.Key("channel_id");
      w.String(channel_id);
      w.Key("token");
      w.String(channel.token);
      w.EndObject();
      d.body = {buffer.GetString(), buffer.GetSize()};
      out.push_back(std::move(d));
    }
  }
  if (!run_workflows) return;
  // Workflow rules: one webhook per record and rule.
  for (const auto &c : changes) {
    const auto action = watch_action(c.operation);
    const auto operation = c.module + "." + action;
    for (const auto &rule : rules) {
      if (rule.org_id != o.spec.id || rule.module != c.module || !rule.events.count(action))
        continue;
      ZohoDelivery d;
      d.kind = "workflow";
      d.org_id = o.spec.id;
      d.rule_id = rule.id;
      d.module = c.module;
      d.operation = operation;
      d.ids = {std::to_string(c.id)};
      d.url = rule.url;
      d.headers = {{"Content-Type", rule.content_type}};
      if (!rule.header_name.empty()) d.headers.emplace_back(rule.header_name, rule.header_value);
      const auto &module = *find_module(c.module);
      Stored record{c.id, c.record, c.created_ms, c.modified_ms};
      if (rule.payload_template.empty()) {
        rapidjson::StringBuffer buffer;
        JsonWriter w(buffer);
        w.StartObject();
        w.Key("operation");
        w.String(operation);
        w.Key("module");
        w.String(c.module);
        w.Key("data");
        w.StartArray();
        write_record(w, o, module, record, nullptr);
        w.EndArray();
        w.EndObject();
        d.body = {buffer.GetString(), buffer.GetSize()};
      } else {
        const auto &t = rule.payload_template;
        std::string body;
        for (size_t i = 0; i < t.size();) {
          const auto open = t.find("${", i);
          const auto close = open == std::string::npos ? open : t.find('}', open);
          if (close == std::string::npos) {
            body += t.substr(i);
            break;
          }
          body += t.substr(i, open - i);
          const auto name = t.substr(open + 2, close - open - 2);
          std::string value;
          if (name == "id") {
            value = std::to_string(c.id);
          } else if (name == "module") {
            value = c.module;
          } else if (name == "operation") {
            value = operation;
          } else if (name == "org_id") {
            value = std::to_string(o.spec.id);
          } else if (name == "Modified_Time" || name == "Created_Time") {
            value = zoho_time(name == "Modified_Time" ? c.modified_ms : c.created_ms,
                              o.spec.utc_offset_minutes);
          } else if (name == "Full_Name") {
            value = display_name(module, c.record);
          } else if (const auto it = c.record.find(name); it != c.record.end()) {
            const auto texts = value_texts(it->second);
            for (size_t k = 0; k < texts.size(); ++k) value += (k ? ";" : "") + texts[k];
          }
          const auto quoted = json_string(value);
          body += quoted.substr(1, quoted.size() - 2);
          i = close + 1;
        }
        d.body = std::move(body);
      }
      out.push_back(std::move(d));
    }
  }
}

}  // namespace crmsandbox
