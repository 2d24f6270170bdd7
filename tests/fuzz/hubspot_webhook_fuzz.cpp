// libFuzzer target for the HubSpot plugin's webhook code (plugins/hubspot/src): the event array
// parser and signature verification, as the plugin runs them on a delivery the host passed on.
// Input: "<header lines>\n\n<body>" (each line "Name: value"); without the blank line all of it
// is the body. Checks: parsing either yields well-formed events or throws the SDK's
// invalid-input error; verification never crashes on any header values; a body signed with
// the right v1, v2 or v3 scheme verifies, and the same with one byte changed does not.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "crmhost/plugin.hpp"
#include "signature.hpp"
#include "util/json.hpp"
#include "webhook_events.hpp"

namespace {

using namespace crmhost::hubspot;

constexpr int64_t kNow = 1'700'000'000'000;
constexpr std::string_view kUrl = "http://127.0.0.1:8080/hooks/hubspot?portal=1";

const std::set<std::string> &objects() {
  static const std::set<std::string> all{"contact", "company", "deal"};
  return all;
}

SignatureSettings settings() {
  SignatureSettings s;
  s.secret = "fuzz-app-secret-0123";
  s.public_base_url = "https://sync.example.test/";
  return s;
}

void check_parse(std::string_view body) {
  // The host refuses deeper bodies before a plugin sees them (engine.cpp): mirror it, since
  // RapidJSON's recursive parse in the plugin relies on that bound.
  if (crmhost::json::nesting_exceeds(body, crmhost::json::kMaxWebhookJsonDepth)) return;
  try {
    for (const auto &e : parse_webhook_events(body, objects())) {
      if (!objects().count(e.object) || e.id.empty()) __builtin_trap();
      if (e.event != "upsert" && e.event != "delete") __builtin_trap();
      if (e.event_id.rfind("hubspot:", 0) != 0) __builtin_trap();
    }
  } catch (const crmhost::sdk::Error &e) {
    if (e.status() != CRM_ERR_INVALID_INPUT) __builtin_trap();
  }
}

void check_signed(std::string_view body) {
  const auto s = settings();
  const std::string uri = signed_uri(kUrl, s.public_base_url);
  const std::string stamp = std::to_string(kNow - 1000);
  const HeaderList v3{{"X-HubSpot-Signature-v3", signature_v3(s.secret, "POST", uri, body, stamp)},
                      {"X-HubSpot-Request-Timestamp", stamp}};
  const HeaderList v2{{"X-HubSpot-Signature", signature_v2(s.secret, "POST", uri, body)},
                      {"X-HubSpot-Signature-Version", "v2"}};
  const HeaderList v1{{"X-HubSpot-Signature", signature_v1(s.secret, body)}};
  std::string changed(body);
  if (changed.empty())
    changed = "x";
  else
    changed[changed.size() / 2] ^= 1;
  for (const auto *headers : {&v3, &v2, &v1}) {
    if (verify_signature(s, "POST", kUrl, *headers, body, kNow).outcome !=
        Verification::Outcome::ok)
      __builtin_trap();
    if (verify_signature(s, "POST", kUrl, *headers, changed, kNow).outcome ==
        Verification::Outcome::ok)
      __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view input(reinterpret_cast<const char *>(data), size);
  std::string_view body = input;
  HeaderList headers;
  if (const auto split = input.find("\n\n"); split != std::string_view::npos) {
    body = input.substr(split + 2);
    std::string_view lines = input.substr(0, split);
    while (!lines.empty()) {
      const auto end = std::min(lines.find('\n'), lines.size());
      const std::string_view line = lines.substr(0, end);
      const auto colon = line.find(':');
      if (colon != std::string_view::npos)
        headers.emplace_back(std::string(line.substr(0, colon)),
                             std::string(line.substr(colon + 1)));
      lines.remove_prefix(std::min(end + 1, lines.size()));
    }
  }
  check_parse(body);
  // Whatever the headers claim, verification answers; an unsigned delivery is never ok
  // unless it carries a signature that really matches (which the fuzzer cannot forge).
  auto s = settings();
  const auto verdict = verify_signature(s, "POST", kUrl, headers, body, kNow);
  (void)verdict;
  (void)decode_v3_uri(input);
  (void)signed_uri(input, s.public_base_url);
  if (size < 4096) check_signed(body);
  return 0;
}
