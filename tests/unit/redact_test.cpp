// logging::redact, the one masking policy of the admin API, the logs and the console: what it
// hides, what it keeps, and that it stays linear and stack-safe on hostile input.
#include <chrono>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "util/logging.hpp"

using crmhost::logging::redact;

namespace {

struct Case {
  const char *input;
  const char *expected;
};

// Each row: the input and the exact output. Rows marked "new" were leaked by the regex version.
const std::vector<Case> kHidden = {
    // Authorization schemes.
    {"Authorization: Bearer abc.def-123", "Authorization: Bearer [redacted]"},
    {"authorization: Basic dXNlcjpwYXNz", "authorization: Basic [redacted]"},
    {"header Basic dXNlcjpwYXNz", "header Basic [redacted]"},
    {"Zoho-oauthtoken 1000.abc.def", "Zoho-oauthtoken [redacted]"},
    {"bearer\tXYZ123", "bearer\t[redacted]"},
    // URI passwords.
    {"postgresql://sync:hunter2@db/crm", "postgresql://sync:[redacted]@db/crm"},
    {"fetch https://bot:p%40ss:w@api.example.com/x failed",
     "fetch https://bot:[redacted]@api.example.com/x failed"},
    // Secret-like keys, in every notation.
    {R"({"api_key":"k-123","name":"x"})", R"({"api_key":"[redacted]","name":"x"})"},
    {"refresh_token=r1&client_secret=s2", "refresh_token=[redacted]&client_secret=[redacted]"},
    {R"({"pwd":"p1"})", R"({"pwd":"[redacted]"})"},                                   // new
    {R"({"passphrase":"correct horse battery"})", R"({"passphrase":"[redacted]"})"},  // new
    {R"({"secret_key":"sk_live_1"})", R"({"secret_key":"[redacted]"})"},              // new
    {R"({"private_key":"-----BEGIN"})", R"({"private_key":"[redacted]"})"},           // new
    {"x_api_key=abc db_password: hunter2", "x_api_key=[redacted] db_password: [redacted]"},
    {"hubspot_client_secret='zz' X-Api-Key: k9",
     "hubspot_client_secret='[redacted]' X-Api-Key: [redacted]"},
    {"accessToken=a1 apiKey=a2 PASSWD=a3",
     "accessToken=[redacted] apiKey=[redacted] PASSWD=[redacted]"},
    {R"("password" : "a\"b c" end)", R"("password" : "[redacted]" end)"},
    {R"({\"password\":\"x\\\"y\",\"ok\":1})", R"({\"password\":\"[redacted]\",\"ok\":1})"},
    {"spring.datasource.password=s3;user=u", "spring.datasource.password=[redacted];user=u"},
    {"Authorization: Basic plan", "Authorization: Basic [redacted]"},
    {"key: -----BEGIN RSA PRIVATE KEY-----\nMIIabc\n-----END RSA PRIVATE KEY----- after",
     "key: -----BEGIN RSA PRIVATE KEY-----[redacted]-----END RSA PRIVATE KEY----- after"},
    {"private_key: -----BEGIN PRIVATE KEY-----\nMII",
     "private_key: -----BEGIN PRIVATE KEY-----[redacted]"},
    // Emails, ASCII and UTF-8.
    {"pushed ann.lee+crm@example.co.uk to odoo", "pushed [email] to odoo"},
    {"mail josé.garcía@exemple.fr.", "mail [email]."},  // new
    {"to 用户@例子.广告 ok", "to [email] ok"},          // new
    {"Δοκιμή@παράδειγμα.δοκιμή", "[email]"},            // new
    {"user@bücher.de", "[email]"},                      // new
    {R"({"email":"ann@example.com"})", R"({"email":"[email]"})"},
    // Card numbers (Luhn-valid) and SSNs.
    {"card 4111 1111 1111 1111 ok", "card [card] ok"},       // new
    {"card 4111-1111-1111-1111", "card [card]"},             // new
    {R"({"cc":"5555555555554444"})", R"({"cc":"[card]"})"},  // new
    {"amex 3782 822463 10005.", "amex [card]."},             // new
    {"4111 1111 1111 1111 2024", "[card] 2024"},             // new
    {"ssn 123-45-6789, ok", "ssn [ssn], ok"},                // new
    {R"({"ssn":"078-05-1120"})", R"({"ssn":"[ssn]"})"},      // new
};

// Ordinary text that must come out unchanged.
const std::vector<const char *> kKept = {
    "nothing secret here",
    "2024-05-01T10:00:00.123Z and 2024-05-01",
    "version 1.2.3, build 4.10.0-rc1",
    "epoch 1700000000000 ms, 1700000000 s",
    "id 4111111111111112 fails Luhn",
    "phone +4111111111111111 and 0049 1511 2345 6789",
    "ratio 0.4111111111111111",
    "record_4111111111111111",
    "order 41111111111111111111111 (23 digits)",
    "call 555-123-4567 or 555 123 4567",
    "not an ssn 000-12-3456, 666-12-3456, 900-12-3456, 123-00-4567",
    "Basic plan and basic auth",
    "token: null, password=, secret=true",
    "the token expired",
    "see https://example.com:8443/path?q=1 and https://example.com/a:b@",
    "user@localhost, @mention, a@b.c",
    "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----",
    "{\"name\":\"Zoë\",\"count\":3}",
};

}  // namespace

TEST_CASE("redact hides credentials, emails, card numbers and SSNs in every notation",
          "[logging][redact]") {
  for (const auto &c : kHidden) {
    INFO(c.input);
    CHECK(redact(c.input) == c.expected);
  }
}

TEST_CASE("redact keeps ordinary text byte for byte", "[logging][redact]") {
  for (const char *text : kKept) {
    INFO(text);
    CHECK(redact(text) == text);
  }
  const std::string invalid_utf8("a\xff\xc3(b\0c", 7);
  CHECK(redact(invalid_utf8) == invalid_utf8);
}

TEST_CASE("redact is linear and stack-safe on megabyte fields and deep nesting",
          "[logging][redact]") {
  const auto within = [](const std::string &input, size_t max_output) {
    const auto start = std::chrono::steady_clock::now();
    const std::string out = redact(input);
    const auto took = std::chrono::steady_clock::now() - start;
    // Generous: a sanitizer build on a loaded 2-core machine is 10x slower than release, and a
    // quadratic scan of a megabyte would still take hours.
    CHECK(took < std::chrono::seconds(20));
    CHECK(out.size() <= max_output);
    return out;
  };
  const std::string field(1'000'000, 'a');
  // The regex version overflowed the stack at 60,000 characters and took 7 s for 10,000.
  CHECK(within(R"({"note":")" + field + "\"}", 1'000'020) == R"({"note":")" + field + "\"}");
  CHECK(within(R"({"password":")" + field + "\"}", 40) == R"({"password":"[redacted]"})");
  std::string nested;
  for (int i = 0; i < 100'000; ++i) nested += R"({"a":)";
  nested += R"("x@y.com")";
  nested += std::string(100'000, '}');
  const std::string out = within(nested, nested.size());
  CHECK(out.find("[email]") != std::string::npos);
  std::string brackets = std::string(100'000, '[') + std::string(100'000, ']');
  CHECK(within(brackets, brackets.size()) == brackets);
  // Patterns that make backtracking or rescanning scanners quadratic.
  for (const std::string unit :
       {"a@", "a.", "4111 ", "x://", "password=", "-----BEGIN ", "\\\"", "Bearer ", "1-", "é"}) {
    std::string repeated;
    while (repeated.size() < 1'000'000) repeated += unit;
    INFO(unit);
    within(repeated, repeated.size() + 16 * (repeated.size() / unit.size() + 1));
  }
}
