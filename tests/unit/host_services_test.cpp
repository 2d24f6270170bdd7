#include <cstring>

#include <catch2/catch.hpp>

#include "plugins/host_services.hpp"
#include "util/logging.hpp"
#include "util/time.hpp"

using namespace crmhost::plugins;

namespace {

struct Captured {
  std::string value;
  crm_sink sink{sizeof(crm_sink), 0, this, [](crm_sink *s, crm_str d) -> crm_status {
                  static_cast<Captured *>(s->user_data)->value.assign(d.ptr, d.len);
                  return CRM_OK;
                }};
};

crm_str str(const std::string &s) {
  return {s.data(), s.size()};
}

}  // namespace

TEST_CASE("crm.state.v1 stores values per connection and reports absent keys", "[host-services]") {
  auto services = std::make_shared<HostServices>();
  services->clock = [] { return int64_t{1234}; };
  PluginHostContext context{"memory", services};
  const crm_host_api api = make_host_api(&context, CRM_ABI_VERSION);
  CHECK(api.now_ms(&api) == 1234);
  CHECK(api.get_extension(&api, "crm.unknown.v9") == nullptr);
  CHECK(api.get_extension(&api, CRM_EXT_HTTP_V1) == nullptr);  // no HTTP service is set

  const auto *state = static_cast<const crm_state_v1 *>(api.get_extension(&api, CRM_EXT_STATE_V1));
  REQUIRE(state != nullptr);
  crm_host_instance a{"memory", "conn-a", services}, b{"memory", "conn-b", services};
  crm_error err{};
  err.struct_size = sizeof err;

  const std::string key = "oauth.refresh_token", value("tok\0en", 6);
  REQUIRE(state->put(&a, str(key), str(value), &err) == CRM_OK);
  Captured got;
  REQUIRE(state->get(&a, str(key), &got.sink, &err) == CRM_OK);
  CHECK(got.value == value);  // binary-safe
  CHECK(state->get(&b, str(key), &got.sink, &err) == CRM_ERR_NOT_FOUND);

  REQUIRE(state->remove(&a, str(key), &err) == CRM_OK);
  CHECK(state->get(&a, str(key), &got.sink, &err) == CRM_ERR_NOT_FOUND);

  const std::string huge(kMaxStateValueBytes + 1, 'x');
  CHECK(state->put(&a, str(key), str(huge), &err) == CRM_ERR_INVALID_INPUT);
  CHECK_THAT(err.message, Catch::Contains("64 KiB"));
  CHECK(state->put(&a, str(""), str(value), &err) == CRM_ERR_INVALID_INPUT);
}

TEST_CASE("log redaction masks credentials plugins might print", "[logging]") {
  using crmhost::logging::redact;
  CHECK(redact("Authorization: Bearer abc.def-123") == "Authorization: Bearer [redacted]");
  CHECK(redact("postgresql://sync:hunter2@db/crm") == "postgresql://sync:[redacted]@db/crm");
  CHECK(redact(R"({"api_key":"k-123","name":"x"})") == R"({"api_key":"[redacted]","name":"x"})");
  CHECK(redact("refresh_token=r1&client_secret=s2") ==
        "refresh_token=[redacted]&client_secret=[redacted]");
  CHECK(redact("nothing secret here") == "nothing secret here");
  CHECK(redact("pushed ann.lee+crm@example.co.uk to odoo") == "pushed [email] to odoo");
}

TEST_CASE("ISO 8601 timestamps parse with zones and print back in UTC", "[time]") {
  using crmhost::timeutil::format_iso8601_ms;
  using crmhost::timeutil::parse_iso8601_ms;
  CHECK(parse_iso8601_ms("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_iso8601_ms("2017-03-10T03:34:10.787Z") == 1489116850787);
  CHECK(parse_iso8601_ms("2017-03-09T19:34:10.787-08:00") == 1489116850787);
  CHECK(parse_iso8601_ms("2017-03-10 09:04:10.787+0530") == 1489116850787);
  CHECK(parse_iso8601_ms("2017-03-10") == 1489104000000);
  CHECK_FALSE(parse_iso8601_ms("2017-13-10"));
  CHECK_FALSE(parse_iso8601_ms("yesterday"));
  CHECK_FALSE(parse_iso8601_ms("2017-03-10T03:34:10Zjunk"));
  CHECK(format_iso8601_ms(1489116850787) == "2017-03-10T03:34:10.787Z");
  CHECK(format_iso8601_ms(-1) == "1969-12-31T23:59:59.999Z");
}

namespace {

struct FakeHttp final : OutboundHttp {
  std::string connection;
  HttpCall seen;
  HttpResult next = HttpReply{};
  HttpResult request(const std::string &conn, const HttpCall &call) override {
    connection = conn;
    seen = call;
    if (call.url == "throw://") throw std::runtime_error("boom");
    return next;
  }
};

struct ResponseCapture {
  int calls = 0;
  int32_t status = 0;
  uint32_t attempts = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  crm_http_response_sink sink{
      sizeof(crm_http_response_sink), 0, this,
      [](crm_http_response_sink *s, const crm_http_response *r) {
        auto *self = static_cast<ResponseCapture *>(s->user_data);
        ++self->calls;
        self->status = r->status;
        self->attempts = r->attempts;
        self->body.assign(r->body.ptr, r->body.len);
        for (uint32_t i = 0; i < r->header_count; ++i)
          self->headers.emplace_back(std::string(r->headers[i].name.ptr, r->headers[i].name.len),
                                     std::string(r->headers[i].value.ptr, r->headers[i].value.len));
      }};
};

}  // namespace

TEST_CASE("crm.http.v1 bridges to the host's HTTP service and reports its failures",
          "[host-services]") {
  auto services = std::make_shared<HostServices>();
  auto http = std::make_shared<FakeHttp>();
  services->http = http;
  PluginHostContext context{"memory", services};
  const crm_host_api api = make_host_api(&context, CRM_ABI_VERSION);
  const auto *ext = static_cast<const crm_http_v1 *>(api.get_extension(&api, CRM_EXT_HTTP_V1));
  REQUIRE(ext != nullptr);
  crm_host_instance instance{"memory", "conn-a", services};

  const std::string method = "POST", url = "https://api.example.com/x", body = "{}";
  const std::string hname = "Authorization", hvalue = "Bearer t", bucket = "search";
  crm_http_header header{str(hname), str(hvalue)};
  crm_http_request request{};
  request.struct_size = sizeof request;
  request.flags = CRM_HTTP_IDEMPOTENT;
  request.method = str(method);
  request.url = str(url);
  request.headers = &header;
  request.header_count = 1;
  request.timeout_ms = 1500;
  request.body = str(body);
  request.rate_limit_bucket = str(bucket);

  HttpReply reply;
  reply.status = 201;
  reply.headers = {{"Content-Type", "application/json"}};
  reply.body = "{\"id\":\"7\"}";
  reply.attempts = 2;
  http->next = reply;
  ResponseCapture capture;
  crm_error err{};
  err.struct_size = sizeof err;
  REQUIRE(ext->request(&instance, &request, &capture.sink, &err) == CRM_OK);
  CHECK(http->connection == "conn-a");
  CHECK(http->seen.method == "POST");
  CHECK(http->seen.url == url);
  CHECK(http->seen.body == "{}");
  CHECK(http->seen.timeout_ms == 1500);
  CHECK(http->seen.flags == CRM_HTTP_IDEMPOTENT);
  CHECK(http->seen.bucket == "search");
  REQUIRE(http->seen.headers.size() == 1);
  CHECK(http->seen.headers[0].second == "Bearer t");
  CHECK(capture.calls == 1);
  CHECK(capture.status == 201);
  CHECK(capture.attempts == 2);
  CHECK(capture.body == "{\"id\":\"7\"}");
  CHECK(capture.headers.size() == 1);

  // A request struct from an older plugin that ends before rate_limit_bucket.
  request.struct_size = offsetof(crm_http_request, rate_limit_bucket);
  REQUIRE(ext->request(&instance, &request, &capture.sink, &err) == CRM_OK);
  CHECK(http->seen.bucket.empty());

  CallError failure;
  failure.code = CRM_ERR_RATE_LIMITED;
  failure.retry_after_ms = 5000;
  failure.retryable = true;
  failure.message = "daily quota spent";
  http->next = failure;
  err = crm_error{};
  err.struct_size = sizeof err;
  CHECK(ext->request(&instance, &request, &capture.sink, &err) == CRM_ERR_RATE_LIMITED);
  CHECK(err.code == CRM_ERR_RATE_LIMITED);
  CHECK(err.retry_after_ms == 5000);
  CHECK(err.retryable == 1);
  CHECK(std::string(err.message) == "daily quota spent");
  CHECK(capture.calls == 2);

  const std::string thrower = "throw://";
  request.url = str(thrower);
  CHECK(ext->request(&instance, &request, &capture.sink, &err) == CRM_ERR_INTERNAL);
  request.struct_size = 8;  // too small to hold the body
  CHECK(ext->request(&instance, &request, &capture.sink, &err) == CRM_ERR_INVALID_INPUT);
  CHECK(capture.calls == 2);
}
