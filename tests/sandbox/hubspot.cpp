// The HubSpot emulator's request pipeline (auth, rate limits, faults, routing), the OAuth token
// endpoint and the public C++ interface.
#include <algorithm>
#include <thread>

#include "sandbox/hubspot_internal.hpp"

namespace crmsandbox {

namespace {

constexpr std::string_view kObjectsPrefix = "/crm/v3/objects/";

HttpResponse unauthorized(const std::string &category, const std::string &message) {
  ApiError error;
  error.status = 401;
  error.category = category;
  error.message = message;
  return error_response(error);
}

// HubSpot's 429 body names the policy that was exceeded.
HttpResponse rate_limited(const std::string &policy, const std::string &message) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("status");
  w.String("error");
  w.Key("message");
  w.String(message);
  w.Key("errorType");
  w.String("RATE_LIMIT");
  w.Key("correlationId");
  w.String(random_uuid());
  w.Key("policyName");
  w.String(policy);
  w.Key("category");
  w.String("RATE_LIMITS");  // (guess) HubSpot's error category for rate limits
  w.EndObject();
  return json_response(429, {buffer.GetString(), buffer.GetSize()});
}

HttpResponse ten_secondly_limited() {
  return rate_limited("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.");
}

HttpResponse oauth_error(const std::string &status, const std::string &message) {
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("status");
  w.String(status);
  w.Key("message");
  w.String(message);
  w.Key("correlationId");
  w.String(random_uuid());
  w.EndObject();
  return json_response(400, {buffer.GetString(), buffer.GetSize()});
}

std::string bearer_token(const HttpRequest &request) {
  const auto value = request.header("Authorization");
  constexpr std::string_view scheme = "Bearer ";
  if (value.size() <= scheme.size() || lowercase(value.substr(0, scheme.size())) != "bearer ")
    return {};
  return value.substr(scheme.size());
}

}  // namespace

HubSpotSandbox::Impl::Impl(HubSpotOptions o)
    : options(std::move(o)),
      limits(options.rate_limits),
      indexing_delay_ms(options.indexing_delay.count()),
      token_ttl_seconds(options.token_ttl_seconds),
      faults(options.seed) {
  faults.configure(options.faults);
}

HttpResponse HubSpotSandbox::Impl::handle(const HttpRequest &request) {
  if (request.path == "/_sandbox" || request.path.rfind("/_sandbox/", 0) == 0)
    return admin(request);
  const bool oauth = request.path == "/oauth/v1/token";
  const bool objects = request.path.rfind(kObjectsPrefix, 0) == 0;
  Headers limit_headers;
  int64_t portal_id = 0;
  {
    std::lock_guard lock(mutex);
    ++stats.requests;
    if (!oauth && !objects) {
      ApiError error;
      error.status = 404;
      error.category = "OBJECT_NOT_FOUND";  // (guess) HubSpot's answer to an unknown path
      error.message = "No route for " + request.method + " " + request.path;
      return error_response(error);
    }
    if (objects) {
      const int64_t now = now_ms();
      const auto token = tokens.find(bearer_token(request));
      if (token == tokens.end()) {
        ++stats.unauthorized;
        return unauthorized("INVALID_AUTHENTICATION",
                            "Authentication credentials not found. This API supports OAuth 2.0 "
                            "authentication and you can find more details at "
                            "https://developers.hubspot.com/docs/methods/auth/oauth-overview");
      }
      auto &state = token->second;
      if (state.oauth && state.expires_at_ms <= now) {
        ++stats.unauthorized;
        return unauthorized("EXPIRED_AUTHENTICATION",
                            "The OAuth token used to make this call expired " +
                                std::to_string((now - state.expires_at_ms) / 1000) +
                                " second(s) ago.");
      }
      portal_id = state.portal_id;
      auto &p = portal(portal_id);
      const int64_t day = now / 86'400'000;  // (guess) the daily budget resets at UTC midnight
      if (p.daily_day != day) {
        p.daily_day = day;
        p.daily_used = 0;
      }
      const bool is_search =
          request.method == "POST" && request.path.size() > 7 && request.path.ends_with("/search");
      std::optional<HttpResponse> refused;
      if (p.daily_used >= limits.daily) {
        ++stats.limited_daily;
        refused = rate_limited("DAILY", "You have reached your daily limit.");
      } else if (is_search) {
        // (guess) searches count against their own secondly budget, not the ten-secondly one
        if (!state.search_window.try_acquire(now, limits.search_per_second, 1000)) {
          ++stats.limited_secondly;
          refused = rate_limited("SECONDLY", "You have reached your secondly limit.");
        }
      } else if (!state.window.try_acquire(now, limits.per_window, limits.window_ms)) {
        ++stats.limited_ten_secondly;
        refused = ten_secondly_limited();
      }
      if (!refused) ++p.daily_used;
      const int64_t secondly =
          std::max<int64_t>(1, limits.per_window * 1000 / std::max<int64_t>(1, limits.window_ms));
      limit_headers = {
          {"X-HubSpot-RateLimit-Daily", std::to_string(limits.daily)},
          {"X-HubSpot-RateLimit-Daily-Remaining",
           std::to_string(std::max<int64_t>(0, limits.daily - p.daily_used))},
          {"X-HubSpot-RateLimit-Interval-Milliseconds", std::to_string(limits.window_ms)},
          {"X-HubSpot-RateLimit-Max", std::to_string(limits.per_window)},
          {"X-HubSpot-RateLimit-Remaining",
           std::to_string(
               std::max<int64_t>(0, limits.per_window - state.window.used(now, limits.window_ms)))},
          {"X-HubSpot-RateLimit-Secondly", std::to_string(secondly)},
          {"X-HubSpot-RateLimit-Secondly-Remaining",
           std::to_string(std::max<int64_t>(0, secondly - state.window.used(now, 1000)))},
      };
      if (refused) {
        refused->headers = limit_headers;
        return *refused;
      }
    }
  }

  const auto fault = faults.draw();
  if (fault.latency_ms > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(fault.latency_ms));
  HttpResponse response;
  if (fault.drop) {
    std::lock_guard lock(mutex);
    ++stats.dropped;
    response.close_without_response = true;
    return response;
  }
  if (fault.status == 429) {
    std::lock_guard lock(mutex);
    ++stats.injected_429;
    response = ten_secondly_limited();
  } else if (fault.status != 0) {
    {
      std::lock_guard lock(mutex);
      ++stats.injected_5xx;
    }
    // (guess) what a gateway in front of HubSpot answers when it fails
    response =
        fault.status == 502
            ? HttpResponse{502, "text/html", {}, "<html><body>502 Bad Gateway</body></html>"}
            : error_response({503, "SERVICE_UNAVAILABLE", "Service Unavailable", "", "", {}, ""});
  } else {
    response = oauth ? HttpResponse{} : api(request, portal_id);
    if (oauth) {
      std::lock_guard lock(mutex);
      const auto form = parse_query(request.body);
      const auto value = [&](const char *key) {
        const auto it = form.find(key);
        return it == form.end() ? std::string() : it->second;
      };
      if (request.method != "POST") {
        response = oauth_error("BAD_REQUEST", "POST only");  // (guess)
      } else if (value("grant_type") != "refresh_token") {
        // (guess) the authorization_code grant needs a browser; the sandbox has none
        response = oauth_error("BAD_GRANT_TYPE", "grant_type must be refresh_token here");
      } else {
        const auto client = oauth_clients.find(value("client_id"));
        if (client == oauth_clients.end()) {
          response = oauth_error("BAD_CLIENT_ID", "missing or unknown client id");
        } else if (client->second.client_secret != value("client_secret")) {
          response = oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret");
        } else if (client->second.refresh_token != value("refresh_token")) {
          response = oauth_error("BAD_REFRESH_TOKEN", "missing or unknown refresh token");
        } else {
          const auto access = "sandbox-oauth-" + random_hex(16);
          auto &state = tokens[access];
          state.portal_id = client->second.portal_id;
          state.oauth = true;
          state.expires_at_ms = now_ms() + token_ttl_seconds * 1000;
          rapidjson::StringBuffer buffer;
          JsonWriter w(buffer);
          w.StartObject();
          w.Key("token_type");
          w.String("bearer");
          w.Key("refresh_token");
          w.String(client->second.refresh_token);
          w.Key("access_token");
          w.String(access);
          w.Key("expires_in");
          w.Int64(token_ttl_seconds);
          w.Key("hub_id");
          w.Int64(client->second.portal_id);
          w.Key("scopes");
          w.StartArray();
          for (const auto *scope : {"crm.objects.contacts.read", "crm.objects.contacts.write",
                                    "crm.objects.companies.read", "crm.objects.companies.write",
                                    "crm.objects.deals.read", "crm.objects.deals.write"})
            w.String(scope);
          w.EndArray();
          w.EndObject();
          response = json_response(200, {buffer.GetString(), buffer.GetSize()});
        }
      }
    }
  }
  for (auto &header : limit_headers) response.headers.push_back(std::move(header));
  if (fault.malformed && response.status / 100 == 2 && response.body.size() > 1) {
    std::lock_guard lock(mutex);
    ++stats.malformed;
    response.body.resize(response.body.size() / 2);
  }
  return response;
}

HttpResponse HubSpotSandbox::Impl::api(const HttpRequest &request, int64_t portal_id) {
  std::vector<std::string> segments;
  std::string_view rest = std::string_view(request.path).substr(kObjectsPrefix.size());
  while (!rest.empty()) {
    const auto slash = rest.find('/');
    segments.push_back(url_decode(rest.substr(0, slash), false));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  const ObjectType *type = segments.empty() ? nullptr : find_object_type(segments[0]);
  if (!type) {
    ApiError error;
    error.status = 404;
    error.category = "OBJECT_NOT_FOUND";
    error.message = "Unable to infer object type from: " + (segments.empty() ? "" : segments[0]);
    return error_response(error);
  }
  const auto &m = request.method;
  std::lock_guard lock(mutex);
  auto &p = portal(portal_id);
  if (segments.size() == 1 && m == "GET") return list(p, *type, request);
  if (segments.size() == 1 && m == "POST") return create(p, *type, request);
  if (segments.size() == 2 && segments[1] == "search" && m == "POST")
    return search(p, *type, request);
  if (segments.size() == 2 && segments[1] == "merge" && m == "POST")
    return merge(p, *type, request);
  if (segments.size() == 2 && m == "GET") return get(p, *type, segments[1], request);
  if (segments.size() == 2 && m == "PATCH") return patch(p, *type, segments[1], request);
  if (segments.size() == 2 && m == "DELETE") return archive(p, *type, segments[1], request);
  if (segments.size() == 3 && segments[1] == "batch" && m == "POST")
    return batch(p, *type, segments[2], request);
  ApiError error;
  error.status = segments.size() <= 2 ? 405 : 404;
  error.category = error.status == 405 ? "METHOD_NOT_ALLOWED" : "OBJECT_NOT_FOUND";  // (guess)
  error.message = "No route for " + m + " " + request.path;
  return error_response(error);
}

HubSpotSandbox::HubSpotSandbox(HubSpotOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->owner = this;
}

HubSpotSandbox::~HubSpotSandbox() {
  stop();
}

void HubSpotSandbox::start() {
  if (impl_->server) return;
  auto server = std::make_unique<LoopbackServer>(
      impl_->options.listen, [impl = impl_.get()](const HttpRequest &r) { return impl->handle(r); },
      impl_->options.handler_threads);
  server->start();
  {
    std::lock_guard lock(impl_->mutex);
    impl_->base_link = "http://127.0.0.1:" + std::to_string(server->port());
  }
  impl_->server = std::move(server);
  impl_->webhooks.start();
}

void HubSpotSandbox::stop() {
  if (impl_->server) impl_->server->stop();
  impl_->server.reset();
  impl_->webhooks.stop();
}

uint16_t HubSpotSandbox::port() const {
  return impl_->server ? impl_->server->port() : 0;
}

std::string HubSpotSandbox::base_url() const {
  return "http://127.0.0.1:" + std::to_string(port());
}

HttpResponse HubSpotSandbox::handle(const HttpRequest &request) {
  return impl_->handle(request);
}

void HubSpotSandbox::add_token(const std::string &token, int64_t portal_id) {
  std::lock_guard lock(impl_->mutex);
  impl_->portal(portal_id);
  auto &state = impl_->tokens[token];
  state.portal_id = portal_id;
  state.oauth = false;
}

void HubSpotSandbox::add_oauth_client(const std::string &client_id,
                                      const std::string &client_secret,
                                      const std::string &refresh_token, int64_t portal_id) {
  std::lock_guard lock(impl_->mutex);
  impl_->portal(portal_id);
  impl_->oauth_clients[client_id] = {client_secret, refresh_token, portal_id};
}

void HubSpotSandbox::set_token_ttl(std::chrono::seconds ttl) {
  std::lock_guard lock(impl_->mutex);
  impl_->token_ttl_seconds = ttl.count();
}

void HubSpotSandbox::expire_oauth_tokens() {
  std::lock_guard lock(impl_->mutex);
  const int64_t now = now_ms();
  for (auto &[token, state] : impl_->tokens)
    if (state.oauth) state.expires_at_ms = std::min(state.expires_at_ms, now);
}

void HubSpotSandbox::revoke_token(const std::string &token) {
  std::lock_guard lock(impl_->mutex);
  impl_->tokens.erase(token);
}

std::vector<std::string> HubSpotSandbox::issued_access_tokens() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::string> out;
  for (const auto &[token, state] : impl_->tokens)
    if (state.oauth) out.push_back(token);
  return out;
}

}  // namespace crmsandbox
