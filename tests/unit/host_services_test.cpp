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
  CHECK(api.get_extension(&api, CRM_EXT_HTTP_V1) == nullptr);  // arrives with the HTTP service

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
