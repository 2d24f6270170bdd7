// The Zoho emulator's request pipelines (the accounts host's token endpoint; the API host's
// auth, credits, concurrency cap, faults and routing), the delivery sender and the public C++
// interface for the servers, orgs, auth and the clock.
#include <algorithm>
#include <thread>

#include "sandbox/zoho_internal.hpp"

namespace crmsandbox {

using namespace zoho;

namespace zoho {

Sender::Sender(std::chrono::milliseconds timeout, const std::atomic<int64_t> &clock_offset)
    : timeout_(timeout), clock_offset_(clock_offset), thread_([this] { run(); }) {}

Sender::~Sender() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void Sender::send(std::vector<ZohoDelivery> deliveries) {
  if (deliveries.empty()) return;
  {
    std::lock_guard lock(mutex_);
    for (auto &d : deliveries) queue_.push_back(std::move(d));
  }
  changed_.notify_all();
}

void Sender::run() {
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) return;
    auto delivery = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    delivery.sent_at_ms = now_ms() + clock_offset_.load();
    const auto result =
        http_request("POST", delivery.url, delivery.headers, delivery.body, timeout_);
    delivery.status = result.status;
    delivery.error = result.error;
    lock.lock();
    log_.push_back(std::move(delivery));
    changed_.notify_all();
  }
}

std::vector<ZohoDelivery> Sender::log() const {
  std::lock_guard lock(mutex_);
  return log_;
}

void Sender::clear() {
  std::lock_guard lock(mutex_);
  log_.clear();
}

bool Sender::wait_for(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return log_.size() >= n; });
}

}  // namespace zoho

namespace {

// Zoho's 429 (2nd): the same body for the credit limit and the concurrency cap.
HttpResponse too_many_requests() {
  ApiError e;
  e.status = 429;
  e.code = "TOO_MANY_REQUESTS";
  e.message = "too many requests. please try again after some time";
  return error_response(e);
}

HttpResponse unauthorized(const std::string &code, const std::string &message) {
  ApiError e;
  e.status = 401;
  e.code = code;
  e.message = message;
  return error_response(e);
}

// The accounts server's errors: {"error": "..."} with HTTP 200 (guess: Zoho's accounts server
// reports refresh failures in the body of a 200).
HttpResponse accounts_error(const std::string &code, int status = 200) {
  return json_response(status, R"({"error":)" + json_string(code) + "}");
}

std::string oauth_token(const HttpRequest &request) {
  const auto value = request.header("Authorization");
  constexpr std::string_view scheme = "zoho-oauthtoken ";
  // (guess) only Zoho's own scheme; "Bearer" is refused like a missing header
  if (value.size() <= scheme.size() || lowercase(value.substr(0, scheme.size())) != scheme)
    return {};
  return value.substr(scheme.size());
}

// "/crm/v8/Leads/123" -> {"Leads", "123"}; nullopt unless /crm/v<digits>/.
std::optional<std::vector<std::string>> crm_segments(std::string_view path) {
  constexpr std::string_view prefix = "/crm/v";
  if (path.rfind(prefix, 0) != 0) return std::nullopt;
  path.remove_prefix(prefix.size());
  size_t digits = 0;
  while (digits < path.size() && std::isdigit(static_cast<unsigned char>(path[digits]))) ++digits;
  if (digits == 0 || digits >= path.size() || path[digits] != '/') return std::nullopt;
  path.remove_prefix(digits + 1);
  std::vector<std::string> out;
  while (!path.empty()) {
    const auto slash = path.find('/');
    if (slash != 0) out.push_back(url_decode(path.substr(0, slash), false));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

HttpResponse invalid_url() {
  ApiError e;
  e.status = 404;
  e.code = "INVALID_URL_PATTERN";
  e.message = "Please check if the URL trying to access is a correct one";
  return error_response(e);
}

}  // namespace

ZohoSandbox::Impl::Impl(ZohoOptions o)
    : options(std::move(o)),
      token_ttl_seconds(options.token_ttl_seconds),
      page_token_ttl_ms(options.page_token_ttl.count()),
      search_index_delay_ms(options.search_index_delay.count()),
      faults(options.seed),
      sender(options.callback_timeout, clock_offset_ms) {
  faults.configure(options.faults);
  if (options.data_centres.empty()) options.data_centres = {"com"};
  for (const auto &label : options.data_centres) dcs.push_back({label, nullptr, nullptr});
}

std::string ZohoSandbox::Impl::dc_label(const std::string &dc) const {
  if (dc.empty()) return dcs.front().label;
  for (const auto &d : dcs)
    if (d.label == dc) return dc;
  throw std::invalid_argument("unknown Zoho data centre " + dc);
}

std::string ZohoSandbox::Impl::api_url(const std::string &dc) const {
  const auto label = dc_label(dc);
  for (const auto &d : dcs)
    if (d.label == label && d.api) return "http://127.0.0.1:" + std::to_string(d.api->port());
  return {};
}

HttpResponse ZohoSandbox::Impl::handle_accounts(const HttpRequest &request, const std::string &dc) {
  if (request.path == "/_sandbox/zoho" || request.path.rfind("/_sandbox/zoho/", 0) == 0)
    return admin(request);
  {
    std::lock_guard lock(mutex);
    ++stats.token_requests;
    ++stats.by_path[request.method + " " + request.path];
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
    return too_many_requests();
  }
  if (fault.status != 0) {
    std::lock_guard lock(mutex);
    ++stats.injected_5xx;
    // (guess) the accounts server's gateway page
    return {
        fault.status, "text/html", {}, "<html><body><h1>Service Unavailable</h1></body></html>"};
  }
  response = token(request, dc);
  if (fault.malformed && response.status / 100 == 2 && response.body.size() > 1) {
    std::lock_guard lock(mutex);
    ++stats.malformed;
    response.body.resize(response.body.size() / 2);
  }
  return response;
}

HttpResponse ZohoSandbox::Impl::token(const HttpRequest &request, const std::string &dc) {
  if (request.path != "/oauth/v2/token")
    return {404, "text/html", {}, "<html><body>404 Not Found</body></html>"};   // (guess)
  if (request.method != "POST") return accounts_error("invalid_request", 405);  // (guess)
  // The official sample sends a form body; the docs' pages show query params: take both, the
  // body winning.
  auto params = parse_query(request.query);
  for (auto &[k, v] : parse_query(request.body)) params[k] = v;
  const auto value = [&](const char *k) {
    const auto it = params.find(k);
    return it == params.end() ? std::string() : it->second;
  };
  if (value("grant_type") != "refresh_token")
    // (guess) the authorization_code grant needs a browser; the sandbox has none
    return accounts_error("unsupported_grant_type");
  std::lock_guard lock(mutex);
  const auto label = dc_label(dc);
  const auto client = clients.find(value("client_id"));
  if (client == clients.end()) return accounts_error("invalid_client");
  if (client->second.secret != value("client_secret"))
    return accounts_error("invalid_client_secret");
  // A refresh token is valid at its org's data centre only (guess: invalid_code elsewhere).
  if (client->second.refresh_token != value("refresh_token") ||
      org(client->second.org_id).spec.data_centre != label)
    return accounts_error("invalid_code");
  const auto access = "1000." + random_hex(16) + "." + random_hex(16);
  tokens[access] = {client->second.org_id, label, clock() + token_ttl_seconds * 1000};
  rapidjson::StringBuffer buffer;
  JsonWriter w(buffer);
  w.StartObject();
  w.Key("access_token");
  w.String(access);
  w.Key("scope");
  w.String("ZohoCRM.modules.ALL ZohoCRM.notifications.ALL ZohoSearch.securesearch.READ");
  w.Key("api_domain");
  w.String(api_url(label));
  w.Key("token_type");
  w.String("Bearer");
  w.Key("expires_in");
  w.Int64(token_ttl_seconds);
  w.EndObject();
  return json_response(200, {buffer.GetString(), buffer.GetSize()});
}

HttpResponse ZohoSandbox::Impl::handle_api(const HttpRequest &request, const std::string &dc) {
  if (request.path == "/_sandbox/zoho" || request.path.rfind("/_sandbox/zoho/", 0) == 0)
    return admin(request);
  int64_t org_id = 0;
  std::string label;
  Headers credit_headers;
  {
    std::lock_guard lock(mutex);
    ++stats.requests;
    ++stats.by_path[request.method + " " + request.path];
    label = dc_label(dc);
    if (!crm_segments(request.path)) return invalid_url();
    const auto access = oauth_token(request);
    if (access.empty()) {
      ++stats.unauthorized;
      return unauthorized("AUTHENTICATION_FAILURE", "Authentication failed");
    }
    const auto found = tokens.find(access);
    // (guess) a token of another data centre's accounts server is as unknown as any other
    if (found == tokens.end() || found->second.expires_ms <= clock() || found->second.dc != label) {
      ++stats.unauthorized;
      return unauthorized("INVALID_TOKEN", "invalid oauth token");
    }
    org_id = found->second.org_id;
    auto &o = org(org_id);
    if (o.in_flight >= o.spec.concurrency) {
      ++stats.limited_concurrency;
      return too_many_requests();
    }
    if (!o.credits.try_acquire(clock(), o.spec.credits_per_day, kDayMs)) {
      ++stats.limited_credits;
      return too_many_requests();
    }
    ++o.in_flight;
    // (2nd) the header appears once half the credits are used
    const auto used = o.credits.used(clock(), kDayMs);
    if (used * 2 >= o.spec.credits_per_day)
      credit_headers.emplace_back(
          "X-API-CREDITS-REMAINING",
          std::to_string(std::max<int64_t>(0, o.spec.credits_per_day - used)));
  }
  struct InFlight {
    Impl *impl;
    int64_t org_id;
    ~InFlight() {
      std::lock_guard lock(impl->mutex);
      --impl->org(org_id).in_flight;
    }
  } in_flight{this, org_id};

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
    {
      std::lock_guard lock(mutex);
      ++stats.injected_429;
    }
    return too_many_requests();
  }
  if (fault.status != 0) {
    {
      std::lock_guard lock(mutex);
      ++stats.injected_5xx;
    }
    if (fault.status == 502)  // (guess) the gateway in front of Zoho's API servers
      return {502, "text/html", {}, "<html><body><h1>502 Bad Gateway</h1></body></html>"};
    ApiError e;  // (guess) Zoho's own answer when a server fails
    e.status = 503;
    e.code = "INTERNAL_ERROR";
    e.message = "Internal Server Error";
    return error_response(e);
  }
  response = route(request, org_id, label);
  for (auto &h : credit_headers) response.headers.push_back(std::move(h));
  if (fault.malformed && response.status / 100 == 2 && response.body.size() > 1) {
    std::lock_guard lock(mutex);
    ++stats.malformed;
    response.body.resize(response.body.size() / 2);
  }
  return response;
}

HttpResponse ZohoSandbox::Impl::route(const HttpRequest &request, int64_t org_id,
                                      const std::string &dc) {
  const auto segments = *crm_segments(request.path);
  const auto &m = request.method;
  std::vector<ZohoDelivery> out;
  HttpResponse response;
  {
    std::lock_guard lock(mutex);
    auto &o = org(org_id);
    const size_t n = segments.size();
    const auto method_not_allowed = [] {
      ApiError e;
      e.status = 405;
      e.code = "INVALID_REQUEST_METHOD";
      e.message = "The http request method type is not a valid one";
      return error_response(e);
    };
    if (n == 2 && segments[0] == "actions" && segments[1] == "watch") {
      response = watch(o, request, dc);
    } else if (n == 0 || n > 2) {
      response = invalid_url();
    } else if (const auto *module = find_module(segments[0]); !module) {
      ApiError e;
      e.code = "INVALID_MODULE";
      e.message = "the module name given seems to be invalid";
      e.detail_raw("resource_path_index", "0");
      response = error_response(e);
    } else if (n == 1) {
      if (m == "GET")
        response = list(o, *module, request);
      else if (m == "POST")
        response = write(o, *module, "insert", "", request, out);
      else if (m == "PUT")
        response = write(o, *module, "update", "", request, out);
      else if (m == "DELETE")
        response = remove(o, *module, "", request, out);
      else
        response = method_not_allowed();
    } else if (segments[1] == "search") {
      response = m == "GET" ? search(o, *module, request) : method_not_allowed();
    } else if (segments[1] == "deleted") {
      response = m == "GET" ? deleted(o, *module, request) : method_not_allowed();
    } else if (segments[1] == "upsert") {
      response = m == "POST" ? write(o, *module, "upsert", "", request, out) : method_not_allowed();
    } else if (m == "GET") {
      response = get(o, *module, segments[1], request);
    } else if (m == "PUT") {
      response = write(o, *module, "update", segments[1], request, out);
    } else if (m == "DELETE") {
      response = remove(o, *module, segments[1], request, out);
    } else {
      response = method_not_allowed();
    }
  }
  sender.send(std::move(out));
  return response;
}

ZohoSandbox::ZohoSandbox(ZohoOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->owner = this;
}

ZohoSandbox::~ZohoSandbox() {
  stop();
}

void ZohoSandbox::start() {
  if (impl_->dcs.front().api) return;
  const auto &first = impl_->options.api_listen;
  const auto host = first.substr(0, first.rfind(':'));
  try {
    for (size_t i = 0; i < impl_->dcs.size(); ++i) {
      auto &d = impl_->dcs[i];
      const auto label = d.label;
      d.api = std::make_unique<LoopbackServer>(
          i == 0 ? impl_->options.api_listen : host + ":0",
          [impl = impl_.get(), label](const HttpRequest &r) { return impl->handle_api(r, label); },
          impl_->options.handler_threads);
      d.accounts = std::make_unique<LoopbackServer>(
          i == 0 ? impl_->options.accounts_listen : host + ":0",
          [impl = impl_.get(), label](const HttpRequest &r) {
            return impl->handle_accounts(r, label);
          },
          2);
      d.api->start();
      d.accounts->start();
    }
  } catch (...) {
    stop();
    throw;
  }
}

void ZohoSandbox::stop() {
  for (auto &d : impl_->dcs) {
    if (d.api) d.api->stop();
    if (d.accounts) d.accounts->stop();
    d.api.reset();
    d.accounts.reset();
  }
}

uint16_t ZohoSandbox::api_port(const std::string &dc) const {
  const auto label = impl_->dc_label(dc);
  for (const auto &d : impl_->dcs)
    if (d.label == label && d.api) return d.api->port();
  return 0;
}

uint16_t ZohoSandbox::accounts_port(const std::string &dc) const {
  const auto label = impl_->dc_label(dc);
  for (const auto &d : impl_->dcs)
    if (d.label == label && d.accounts) return d.accounts->port();
  return 0;
}

std::string ZohoSandbox::api_base_url(const std::string &dc) const {
  const auto port = api_port(dc);
  return port ? "http://127.0.0.1:" + std::to_string(port) : std::string();
}

std::string ZohoSandbox::accounts_base_url(const std::string &dc) const {
  const auto port = accounts_port(dc);
  return port ? "http://127.0.0.1:" + std::to_string(port) : std::string();
}

std::vector<std::string> ZohoSandbox::data_centres() const {
  return impl_->options.data_centres;
}

HttpResponse ZohoSandbox::handle_api(const HttpRequest &request, const std::string &dc) {
  return impl_->handle_api(request, dc);
}

HttpResponse ZohoSandbox::handle_accounts(const HttpRequest &request, const std::string &dc) {
  return impl_->handle_accounts(request, dc);
}

void ZohoSandbox::add_org(const ZohoOrg &spec) {
  const auto dcs = impl_->options.data_centres;
  if (std::find(dcs.begin(), dcs.end(), spec.data_centre) == dcs.end())
    throw std::invalid_argument("org " + std::to_string(spec.id) + ": unknown data centre " +
                                spec.data_centre);
  std::lock_guard lock(impl_->mutex);
  impl_->org(spec.id).spec = spec;
}

ZohoOrg ZohoSandbox::org(int64_t org_id) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->org(org_id).spec;
}

std::vector<int64_t> ZohoSandbox::orgs() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<int64_t> out;
  for (const auto &[id, o] : impl_->orgs) out.push_back(id);
  return out;
}

void ZohoSandbox::set_org_utc_offset(int64_t org_id, int minutes) {
  std::lock_guard lock(impl_->mutex);
  impl_->org(org_id).spec.utc_offset_minutes = minutes;
}

void ZohoSandbox::set_credits(int64_t org_id, int64_t per_day) {
  std::lock_guard lock(impl_->mutex);
  impl_->org(org_id).spec.credits_per_day = per_day;
}

void ZohoSandbox::set_concurrency(int64_t org_id, int64_t in_flight) {
  std::lock_guard lock(impl_->mutex);
  impl_->org(org_id).spec.concurrency = in_flight;
}

void ZohoSandbox::reset_credits(int64_t org_id) {
  std::lock_guard lock(impl_->mutex);
  impl_->org(org_id).credits.clear();
}

int64_t ZohoSandbox::credits_used(int64_t org_id) const {
  std::lock_guard lock(impl_->mutex);
  return impl_->org(org_id).credits.used(impl_->clock(), kDayMs);
}

void ZohoSandbox::add_client(const std::string &client_id, const std::string &client_secret,
                             const std::string &refresh_token, int64_t org_id) {
  std::lock_guard lock(impl_->mutex);
  impl_->org(org_id);
  impl_->clients[client_id] = {client_secret, refresh_token, org_id};
}

std::string ZohoSandbox::issue_token(int64_t org_id) {
  std::lock_guard lock(impl_->mutex);
  const auto access = "1000." + random_hex(16) + "." + random_hex(16);
  impl_->tokens[access] = {org_id, impl_->org(org_id).spec.data_centre,
                           impl_->clock() + impl_->token_ttl_seconds * 1000};
  return access;
}

void ZohoSandbox::set_token_ttl(std::chrono::seconds ttl) {
  std::lock_guard lock(impl_->mutex);
  impl_->token_ttl_seconds = ttl.count();
}

void ZohoSandbox::expire_tokens() {
  std::lock_guard lock(impl_->mutex);
  const auto now = impl_->clock();
  for (auto &[token, state] : impl_->tokens) state.expires_ms = std::min(state.expires_ms, now);
}

void ZohoSandbox::revoke_token(const std::string &access_token) {
  std::lock_guard lock(impl_->mutex);
  impl_->tokens.erase(access_token);
}

std::vector<std::string> ZohoSandbox::issued_access_tokens() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::string> out;
  for (const auto &[token, state] : impl_->tokens) out.push_back(token);
  return out;
}

void ZohoSandbox::set_page_token_ttl(std::chrono::milliseconds ttl) {
  std::lock_guard lock(impl_->mutex);
  impl_->page_token_ttl_ms = ttl.count();
}

void ZohoSandbox::advance_clock(std::chrono::milliseconds by) {
  impl_->clock_offset_ms += by.count();
}

int64_t ZohoSandbox::now_ms() const {
  return impl_->clock();
}

}  // namespace crmsandbox
