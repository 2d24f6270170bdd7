// AES-256-GCM sealing of connection_state values, with key ids so keys can rotate.
#pragma once

#include <array>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace crmhost::store {

struct StoreOptions;

struct SecretKey {
  std::string id;  // given as "ID:key", else derived from the key (first 8 hex of its sha256)
  std::array<unsigned char, 32> bytes{};
};

// "[KEYID:]<64 hex chars | base64 of 32 bytes>". Throws StoreError(crypto) without echoing it.
SecretKey parse_secret_key(std::string_view spec);

// The current key (used to seal) and older ones (still accepted to open).
class KeyRing {
 public:
  // From options.secret_key / secret_key_file, else env CRMHOST_SECRET_KEY and
  // CRMHOST_SECRET_KEYS_OLD (comma separated). An empty ring is valid until state is used.
  static KeyRing from_options(const StoreOptions &options);

  KeyRing() = default;
  KeyRing(SecretKey current, std::vector<SecretKey> old);

  bool empty() const { return keys_.empty(); }
  const SecretKey &current() const;                  // throws StoreError(crypto) when empty
  const SecretKey *find(std::string_view id) const;  // nullptr when unknown

 private:
  std::vector<SecretKey> keys_;  // keys_[0] is current
};

struct SealedValue {
  std::string key_id;
  std::string nonce;       // base64, 12 random bytes
  std::string ciphertext;  // base64 of ciphertext || 16-byte tag
};

// `aad` binds the value to its row (connection, key) so it cannot be moved to another one.
SealedValue seal(const KeyRing &keys, std::string_view aad, std::string_view plaintext);
std::string unseal(const KeyRing &keys, std::string_view aad, const SealedValue &sealed);

std::string random_hex(std::size_t bytes);
std::string base64_encode(std::string_view data);
std::string base64_decode(std::string_view text);  // throws StoreError(crypto) when malformed

}  // namespace crmhost::store
