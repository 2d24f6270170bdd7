// The actions/watch channel of settings.notifications: one channel per connection, holding the
// events of every module the connection serves. Zoho keeps a channel at most a week; it is
// re-subscribed (POST, as Zoho documents) once less than renew_before_hours is left, replaced
// (PUT) when the configured events or URL changed, and created again when Zoho no longer has it.
// What was subscribed is kept in crm.state.v1 so a configuration change is noticed.
#include "channel.hpp"

#include <algorithm>

#include "connector.hpp"

namespace crmhost::zoho {

using rapidjson::Value;
using sdk::Error;
using sdk::get_string;

namespace {

const char kChannelStateKey[] = "channel.watch";

// Every channel_expiry a GET answer names for the channel, wherever it puts them (the fact sheet
// shows no answer shape: at the item's top level or in its events[] objects).
int64_t earliest_expiry(const Value &item) {
  int64_t earliest = 0;
  auto consider = [&](const Value &v) {
    if (auto ms = parse_time_ms(get_string(v, "channel_expiry")))
      earliest = earliest == 0 ? *ms : std::min(earliest, *ms);
  };
  consider(item);
  if (auto events = item.FindMember("events");
      events != item.MemberEnd() && events->value.IsArray())
    for (const auto &e : events->value.GetArray())
      if (e.IsObject()) consider(e);
  return earliest;
}

// The first item of a watch[] answer: its code, and the expiry Zoho confirmed (0 when none).
struct WatchAnswer {
  std::string code, message;
  int64_t expires_at_ms = 0;
  bool ok() const { return code == "SUCCESS"; }
};

WatchAnswer watch_answer(const rapidjson::Document &doc) {
  WatchAnswer out;
  auto watch = doc.FindMember("watch");
  if (watch == doc.MemberEnd() || !watch->value.IsArray() || watch->value.Empty()) {
    out.code = get_string(doc, "code");
    out.message = get_string(doc, "message");
    return out;
  }
  const Value &item = watch->value[0];
  out.code = get_string(item, "code");
  out.message = get_string(item, "message").substr(0, 300);
  if (auto details = item.FindMember("details");
      details != item.MemberEnd() && details->value.IsObject())
    out.expires_at_ms = earliest_expiry(details->value);
  return out;
}

}  // namespace

ChannelReport ZohoConnector::ensure_channel() {
  const NotificationSettings &n = settings_.notifications;
  ChannelReport report;
  report.channel_id = n.channel_id;
  if (!n.enabled()) {
    report.action = "disabled";
    report.message = "settings.notifications is not set";
    return report;
  }
  std::vector<std::string> events;
  for (const auto &module : all_modules())
    if (settings_.objects.count(module.object))
      for (const auto &op : n.operations) events.push_back(std::string(module.module) + "." + op);
  const std::string wanted =
      sha256_hex(n.channel_id + "\n" + n.notify_url + "\n" + n.token + "\n" + [&] {
        std::string joined;
        for (const auto &e : events) joined += e + ",";
        return joined;
      }());

  // What Zoho holds now: 204 (or no item) when the channel is gone.
  int64_t held_expiry = 0;
  bool held = false;
  {
    const rapidjson::Document doc =
        api_json("GET", "/actions/watch?channel_id=" + n.channel_id, {}, 0);
    if (auto watch = doc.FindMember("watch"); watch != doc.MemberEnd() && watch->value.IsArray())
      for (const auto &item : watch->value.GetArray())
        if (item.IsObject() && sdk::scalar_text(item["channel_id"]) == n.channel_id) {
          held = true;
          held_expiry = earliest_expiry(item);
        }
  }
  std::string subscribed, known_before;
  try {
    if (auto saved = state_get(kChannelStateKey)) {
      rapidjson::Document doc;
      if (sdk::try_parse_json(*saved, doc) == sdk::JsonParse::ok && doc.IsObject()) {
        subscribed = get_string(doc, "config");
        known_before = get_string(doc, "channel_id");
      }
    }
  } catch (const Error &e) {
    log(CRM_LOG_WARN, std::string("could not read the saved channel: ") + e.what());
  }

  const int64_t now = sdk::Host::now_ms();
  const char *method = nullptr;
  if (!held) {
    method = "POST";
    report.action = known_before == n.channel_id ? "recreated" : "created";
  } else if (subscribed != wanted) {
    method = "PUT";
    report.action = "updated";
  } else if (held_expiry == 0 || held_expiry - now < n.renew_before_ms) {
    method = "POST";
    report.action = "renewed";
  }
  int64_t expires_at = held_expiry;
  if (method) {
    const int64_t asked = now + n.expiry_ms;
    rapidjson::Document body(rapidjson::kObjectType);
    auto &a = body.GetAllocator();
    Value item(rapidjson::kObjectType), list(rapidjson::kArrayType), names(rapidjson::kArrayType);
    item.AddMember("channel_id", Value(static_cast<uint64_t>(std::stoull(n.channel_id))), a);
    for (const auto &e : events) names.PushBack(Value(e.c_str(), a), a);
    item.AddMember("events", names, a);
    item.AddMember("channel_expiry", Value(format_zoho_time(asked).c_str(), a), a);
    item.AddMember("token", Value(n.token.c_str(), a), a);
    item.AddMember("notify_url", Value(n.notify_url.c_str(), a), a);
    // Ids are enough: the host fetches the records, so the values need not travel.
    item.AddMember("return_affected_field_values", false, a);
    item.AddMember("notify_on_related_action", false, a);
    list.PushBack(item, a);
    body.AddMember("watch", list, a);
    const std::string text = sdk::to_json(body);
    WatchAnswer answer =
        watch_answer(api_json(method, "/actions/watch", text, CRM_HTTP_IDEMPOTENT));
    if (!answer.ok() && std::string_view(method) == "PUT") {
      // Replaced between our GET and PUT (expired, or removed in Zoho): subscribe afresh.
      answer = watch_answer(api_json("POST", "/actions/watch", text, CRM_HTTP_IDEMPOTENT));
      report.action = "recreated";
    }
    if (!answer.ok())
      throw Error(CRM_ERR_REMOTE,
                  std::string("actions/watch ") + method + ": Zoho refused channel " +
                      n.channel_id + " (" + answer.code + (answer.message.empty() ? "" : ": ") +
                      answer.message + ")",
                  0, 0, answer.code == "INTERNAL_ERROR" ? 1 : 0);
    expires_at = answer.expires_at_ms ? answer.expires_at_ms : asked;
    rapidjson::Document saved(rapidjson::kObjectType);
    auto &s = saved.GetAllocator();
    saved.AddMember("channel_id", Value(n.channel_id.c_str(), s), s);
    saved.AddMember("config", Value(wanted.c_str(), s), s);
    saved.AddMember("expires_at_ms", expires_at, s);
    state_put(kChannelStateKey, sdk::to_json(saved));
    log(CRM_LOG_INFO, "Zoho channel " + n.channel_id + " " + report.action + "; expires " +
                          format_iso_ms(expires_at));
  } else {
    report.action = "unchanged";
  }
  report.expires_at_ms = expires_at;
  report.next_run_ms = std::max(now, expires_at - n.renew_before_ms);
  report.message =
      "channel " + n.channel_id + " " + report.action + ", expires " + format_iso_ms(expires_at);
  return report;
}

ChannelReport ZohoConnector::stop_channel() {
  const NotificationSettings &n = settings_.notifications;
  ChannelReport report;
  report.channel_id = n.channel_id;
  if (!n.enabled()) {
    report.action = "disabled";
    report.message = "settings.notifications is not set";
    return report;
  }
  const sdk::HttpResponse response =
      api("DELETE", "/actions/watch?channel_ids=" + n.channel_id, {}, 0);
  // 204 or an item error both leave no channel; only a failure of the call itself matters.
  if ((response.status < 200 || response.status > 299) && response.status != 202)
    fail(response, "DELETE /actions/watch");
  state_remove(kChannelStateKey);
  report.action = "stopped";
  report.message = "channel " + n.channel_id + " unsubscribed";
  return report;
}

crm_status ZohoConnector::maintain(const Value &request, rapidjson::Document &result) {
  const std::string reason = get_string(request, "reason");
  ChannelReport report;
  if (reason == "start" || reason == "periodic")
    report = ensure_channel();
  else if (reason == "shutdown" && settings().notifications.stop_on_shutdown)
    report = stop_channel();
  else if (reason == "shutdown")
    report = {"kept", settings().notifications.channel_id, 0, 0,
              "channel left subscribed at shutdown (notifications.stop_on_shutdown is off)"};
  else
    throw Error(CRM_ERR_INVALID_INPUT,
                "maintain request: reason \"" + reason + "\" is not start, periodic or shutdown");
  auto &a = result.GetAllocator();
  const int64_t now = sdk::Host::now_ms();
  // Called again when the channel needs its renewal; a minute at least, so a clock skew between
  // the host and Zoho never makes a busy loop.
  const int64_t next_in =
      report.next_run_ms > 0 ? std::max<int64_t>(60'000, report.next_run_ms - now) : 0;
  result.AddMember("next_in_ms", next_in, a);
  Value status(rapidjson::kObjectType);
  status.AddMember("action", Value(report.action.c_str(), a), a);
  if (!report.channel_id.empty())
    status.AddMember("channel_id", Value(report.channel_id.c_str(), a), a);
  if (report.expires_at_ms)
    status.AddMember("expires_at", Value(format_iso_ms(report.expires_at_ms).c_str(), a), a);
  status.AddMember("message", Value(report.message.c_str(), a), a);
  result.AddMember("status", status, a);
  return CRM_OK;
}

}  // namespace crmhost::zoho
