#pragma once
// HubSpot webhook signatures (v1, v2, v3) and their verification. Pure functions over the raw
// bytes received, so the fact sheet's test vectors can call them directly.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace crmhost::hubspot {

// hex(SHA-256(data))
std::string sha256_hex(std::string_view data);
// hex(SHA-256(secret + body))
std::string signature_v1(std::string_view secret, std::string_view body);
// hex(SHA-256(secret + method + uri + body)); the URI exactly as HubSpot called it.
std::string signature_v2(std::string_view secret, std::string_view method, std::string_view uri,
                         std::string_view body);
// base64(HMAC-SHA256(secret, method + decoded uri + body + timestamp))
std::string signature_v3(std::string_view secret, std::string_view method, std::string_view uri,
                         std::string_view body, std::string_view timestamp);

// Undoes the percent-encodings HubSpot lists for v3 (%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A
// %2C %3B, either case); every other escape stays as it is.
std::string decode_v3_uri(std::string_view uri);

// The URI HubSpot signed: `public_base_url` (when set) followed by the path and query of the URL
// the host received; the received URL itself otherwise.
std::string signed_uri(std::string_view received_url, std::string_view public_base_url);

bool constant_time_equal(std::string_view a, std::string_view b);

struct SignatureSettings {
  std::string secret;
  std::vector<std::string> versions{"v1", "v2", "v3"};
  std::string public_base_url;
  int64_t max_age_ms = 5 * 60 * 1000;  // v3 timestamps older than this are refused
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct Verification {
  enum class Outcome { ok, unauthorized, malformed } outcome = Outcome::unauthorized;
  std::string version;  // the scheme that was checked
  std::string reason;   // short, never a secret or a signature
};

// Checks the delivery's signature. The v3 header wins when present; otherwise
// X-HubSpot-Signature with X-HubSpot-Signature-Version (v1 when that header is absent).
Verification verify_signature(const SignatureSettings &settings, std::string_view method,
                              std::string_view received_url, const HeaderList &headers,
                              std::string_view body, int64_t now_ms);

}  // namespace crmhost::hubspot
