#include "signature.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace crmhost::hubspot {
namespace {

std::string to_hex(const unsigned char *data, size_t size) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    out.push_back(digits[data[i] >> 4]);
    out.push_back(digits[data[i] & 0xF]);
  }
  return out;
}

std::string digest_hex(std::initializer_list<std::string_view> parts) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
  for (auto part : parts) ok = ok && EVP_DigestUpdate(ctx, part.data(), part.size()) == 1;
  ok = ok && EVP_DigestFinal_ex(ctx, digest, &size) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) throw std::runtime_error("SHA-256 failed");
  return to_hex(digest, size);
}

std::string base64(const unsigned char *data, size_t size) {
  std::string out(4 * ((size + 2) / 3), '\0');
  const int written =
      EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()), data, static_cast<int>(size));
  out.resize(written < 0 ? 0 : static_cast<size_t>(written));
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<std::string> header(const HeaderList &headers, std::string_view name) {
  for (const auto &[key, value] : headers)
    if (iequals(key, name)) return value;
  return std::nullopt;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

Verification refuse(std::string version, std::string reason) {
  return {Verification::Outcome::unauthorized, std::move(version), std::move(reason)};
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  return digest_hex({data});
}

std::string signature_v1(std::string_view secret, std::string_view body) {
  return digest_hex({secret, body});
}

std::string signature_v2(std::string_view secret, std::string_view method, std::string_view uri,
                         std::string_view body) {
  return digest_hex({secret, method, uri, body});
}

std::string signature_v3(std::string_view secret, std::string_view method, std::string_view uri,
                         std::string_view body, std::string_view timestamp) {
  const std::string decoded = decode_v3_uri(uri);
  std::string message;
  message.reserve(method.size() + decoded.size() + body.size() + timestamp.size());
  message.append(method).append(decoded).append(body).append(timestamp);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char *>(message.data()), message.size(), mac, &size))
    throw std::runtime_error("HMAC-SHA256 failed");
  return base64(mac, size);
}

std::string decode_v3_uri(std::string_view uri) {
  static const std::pair<const char *, char> kDecodings[] = {
      {"3A", ':'},  {"2F", '/'}, {"3F", '?'}, {"40", '@'}, {"21", '!'}, {"24", '$'},
      {"27", '\''}, {"28", '('}, {"29", ')'}, {"2A", '*'}, {"2C", ','}, {"3B", ';'}};
  std::string out;
  out.reserve(uri.size());
  for (size_t i = 0; i < uri.size(); ++i) {
    if (uri[i] == '%' && i + 2 < uri.size()) {
      const std::string_view code = uri.substr(i + 1, 2);
      bool replaced = false;
      for (const auto &[escape, plain] : kDecodings)
        if (iequals(code, escape)) {
          out.push_back(plain);
          i += 2;
          replaced = true;
          break;
        }
      if (replaced) continue;
    }
    out.push_back(uri[i]);
  }
  return out;
}

std::string signed_uri(std::string_view received_url, std::string_view public_base_url) {
  if (public_base_url.empty()) return std::string(received_url);
  // Path and query as received: everything after scheme://authority.
  std::string_view path_and_query = received_url;
  if (const auto scheme = received_url.find("://"); scheme != std::string_view::npos) {
    const auto path = received_url.find('/', scheme + 3);
    path_and_query =
        path == std::string_view::npos ? std::string_view() : received_url.substr(path);
  }
  std::string base(public_base_url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (path_and_query.empty() || path_and_query.front() != '/') base.push_back('/');
  return base.append(path_and_query);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Verification verify_signature(const SignatureSettings &settings, std::string_view method,
                              std::string_view received_url, const HeaderList &headers,
                              std::string_view body, int64_t now_ms) {
  auto accepted = [&](const std::string &version) {
    return std::find(settings.versions.begin(), settings.versions.end(), version) !=
           settings.versions.end();
  };
  if (settings.secret.empty()) return refuse("", "no app_secret is configured");
  const std::string uri = signed_uri(received_url, settings.public_base_url);

  if (auto v3 = header(headers, "X-HubSpot-Signature-v3")) {
    if (!accepted("v3")) return refuse("v3", "signature version v3 is not accepted");
    const auto timestamp = header(headers, "X-HubSpot-Request-Timestamp");
    if (!timestamp) return refuse("v3", "X-HubSpot-Request-Timestamp is missing");
    const std::string stamp = trim(*timestamp);
    int64_t stamp_ms = 0;
    const auto parsed = std::from_chars(stamp.data(), stamp.data() + stamp.size(), stamp_ms);
    if (stamp.empty() || parsed.ec != std::errc() || parsed.ptr != stamp.data() + stamp.size())
      return {Verification::Outcome::malformed, "v3",
              "X-HubSpot-Request-Timestamp is not a number of milliseconds"};
    // Stale deliveries are refused as replays; far-future ones too (a skewed or forged clock).
    // Compared without subtracting the stamp, which may be any int64 (no overflow).
    if (stamp_ms < now_ms - settings.max_age_ms || stamp_ms > now_ms + settings.max_age_ms)
      return refuse("v3", "X-HubSpot-Request-Timestamp is more than 5 minutes away from now");
    const std::string expected = signature_v3(settings.secret, method, uri, body, stamp);
    if (!constant_time_equal(expected, trim(*v3)))
      return refuse("v3", "the v3 signature does not match");
    return {Verification::Outcome::ok, "v3", ""};
  }

  const auto signature = header(headers, "X-HubSpot-Signature");
  if (!signature) return refuse("", "no X-HubSpot-Signature header");
  // Without a version header HubSpot's classic (v1) scheme is assumed (guess).
  const std::string version = trim(header(headers, "X-HubSpot-Signature-Version").value_or("v1"));
  if (version != "v1" && version != "v2")
    return refuse(version, "unknown X-HubSpot-Signature-Version");
  if (!accepted(version))
    return refuse(version, "signature version " + version + " is not accepted");
  std::string expected = version == "v1" ? signature_v1(settings.secret, body)
                                         : signature_v2(settings.secret, method, uri, body);
  std::string given = trim(*signature);
  // Hex digests compare case-insensitively; lower-case both before the constant-time compare.
  std::transform(given.begin(), given.end(), given.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!constant_time_equal(expected, given))
    return refuse(version, "the " + version + " signature does not match");
  return {Verification::Outcome::ok, version, ""};
}

}  // namespace crmhost::hubspot
