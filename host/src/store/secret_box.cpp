#include "store/secret_box.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <memory>

#include "store/store.hpp"

namespace crmhost::store {
namespace {

constexpr std::size_t kNonceSize = 12;
constexpr std::size_t kTagSize = 16;

[[noreturn]] void crypto_error(const std::string &message) {
  throw StoreError(StoreError::Kind::crypto, message);
}

std::string trim(std::string_view s) {
  auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return std::string(s);
}

bool decode_hex(std::string_view hex, std::array<unsigned char, 32> &out) {
  if (hex.size() != 64) return false;
  for (std::size_t i = 0; i < 32; ++i) {
    unsigned value = 0;
    for (char c : hex.substr(i * 2, 2)) {
      value <<= 4;
      if (c >= '0' && c <= '9')
        value |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f')
        value |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        value |= static_cast<unsigned>(c - 'A' + 10);
      else
        return false;
    }
    out[i] = static_cast<unsigned char>(value);
  }
  return true;
}

std::string to_hex(const unsigned char *data, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xf]);
  }
  return out;
}

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

CipherCtx new_ctx() {
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  if (!ctx) crypto_error("out of memory creating a cipher context");
  return ctx;
}

const unsigned char *bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char *>(s.data());
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(bytes(data), data.size(), digest);
  return to_hex(digest, sizeof digest);
}

std::string random_hex(std::size_t n) {
  std::string buf(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char *>(buf.data()), static_cast<int>(n)) != 1) {
    crypto_error("the system random generator failed");
  }
  return to_hex(bytes(buf), n);
}

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()), bytes(data),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) crypto_error("malformed base64 value");
  std::string out(text.size() / 4 * 3 + 1, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(out.data()), bytes(text),
                                static_cast<int>(text.size()));
  if (n < 0) crypto_error("malformed base64 value");
  // EVP_DecodeBlock keeps the bytes encoded by '=' padding as zeros: drop them.
  std::size_t size = static_cast<std::size_t>(n);
  for (auto it = text.rbegin(); it != text.rend() && *it == '='; ++it) --size;
  out.resize(size);
  return out;
}

SecretKey parse_secret_key(std::string_view spec_in) {
  const std::string spec = trim(spec_in);
  SecretKey key;
  std::string material = spec;
  // A key id is a short token before ':'; base64 never contains ':', so this is unambiguous.
  if (const auto colon = spec.find(':'); colon != std::string::npos) {
    key.id = trim(std::string_view(spec).substr(0, colon));
    material = trim(std::string_view(spec).substr(colon + 1));
    if (key.id.empty()) crypto_error("secret key has an empty key id before ':'");
  }
  if (!decode_hex(material, key.bytes)) {
    std::string raw;
    try {
      raw = base64_decode(material);
    } catch (const StoreError &) {
    }
    if (raw.size() != 32) {
      crypto_error("secret key is neither 64 hex characters nor base64 of 32 bytes" +
                   (key.id.empty() ? std::string() : " (key id '" + key.id + "')"));
    }
    std::copy(raw.begin(), raw.end(), key.bytes.begin());
  }
  if (key.id.empty())
    key.id = sha256_hex({reinterpret_cast<char *>(key.bytes.data()), 32}).substr(0, 8);
  return key;
}

KeyRing::KeyRing(SecretKey current, std::vector<SecretKey> old) {
  keys_.push_back(std::move(current));
  for (auto &k : old) keys_.push_back(std::move(k));
}

KeyRing KeyRing::from_options(const StoreOptions &options) {
  std::vector<std::string> specs;  // specs[0] is current
  if (!options.secret_key.empty()) {
    specs.push_back(options.secret_key);
    specs.insert(specs.end(), options.old_secret_keys.begin(), options.old_secret_keys.end());
  } else if (!options.secret_key_file.empty()) {
    std::ifstream in(options.secret_key_file);
    if (!in) crypto_error("cannot read secret key file " + options.secret_key_file.string());
    for (std::string line; std::getline(in, line);) {
      if (const auto t = trim(line); !t.empty() && t[0] != '#') specs.push_back(t);
    }
    if (specs.empty())
      crypto_error("secret key file " + options.secret_key_file.string() + " is empty");
  } else if (const char *env = std::getenv("CRMHOST_SECRET_KEY"); env && *env) {
    specs.emplace_back(env);
    if (const char *old = std::getenv("CRMHOST_SECRET_KEYS_OLD"); old && *old) {
      std::string_view rest(old);
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        if (auto t = trim(rest.substr(0, comma)); !t.empty()) specs.push_back(t);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
    }
  }
  if (specs.empty()) return {};
  std::vector<SecretKey> old;
  for (std::size_t i = 1; i < specs.size(); ++i) old.push_back(parse_secret_key(specs[i]));
  return KeyRing(parse_secret_key(specs[0]), std::move(old));
}

const SecretKey &KeyRing::current() const {
  if (keys_.empty()) {
    crypto_error(
        "no secret key configured for connection state: set CRMHOST_SECRET_KEY "
        "(64 hex chars or base64 of 32 bytes, optionally prefixed by 'KEYID:') or a key file");
  }
  return keys_.front();
}

const SecretKey *KeyRing::find(std::string_view id) const {
  auto it =
      std::find_if(keys_.begin(), keys_.end(), [&](const SecretKey &k) { return k.id == id; });
  return it == keys_.end() ? nullptr : &*it;
}

SealedValue seal(const KeyRing &keys, std::string_view aad, std::string_view plaintext) {
  const SecretKey &key = keys.current();
  unsigned char nonce[kNonceSize];
  if (RAND_bytes(nonce, sizeof nonce) != 1) crypto_error("the system random generator failed");

  auto ctx = new_ctx();
  std::string out(plaintext.size() + kTagSize, '\0');
  auto *outp = reinterpret_cast<unsigned char *>(out.data());
  int len = 0;
  int total = 0;
  bool ok =
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.bytes.data(), nonce) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(aad), static_cast<int>(aad.size())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), outp, &len, bytes(plaintext),
                        static_cast<int>(plaintext.size())) == 1;
  total = len;
  ok = ok && EVP_EncryptFinal_ex(ctx.get(), outp + total, &len) == 1;
  total += len;
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, outp + total) == 1;
  if (!ok) crypto_error("AES-256-GCM encryption failed");
  out.resize(static_cast<std::size_t>(total) + kTagSize);

  return SealedValue{key.id, base64_encode({reinterpret_cast<char *>(nonce), sizeof nonce}),
                     base64_encode(out)};
}

std::string unseal(const KeyRing &keys, std::string_view aad, const SealedValue &sealed) {
  if (keys.empty()) keys.current();  // throws the "no key configured" error
  const SecretKey *key = keys.find(sealed.key_id);
  if (!key) {
    crypto_error("connection state was encrypted with key id '" + sealed.key_id +
                 "', which is not configured (add it to the old keys to rotate)");
  }
  const std::string nonce = base64_decode(sealed.nonce);
  const std::string data = base64_decode(sealed.ciphertext);
  if (nonce.size() != kNonceSize || data.size() < kTagSize)
    crypto_error("malformed encrypted value");
  const std::size_t ct_size = data.size() - kTagSize;

  auto ctx = new_ctx();
  std::string out(ct_size, '\0');
  int len = 0;
  bool ok =
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key->bytes.data(), bytes(nonce)) ==
          1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(aad), static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char *>(out.data()), &len, bytes(data),
                        static_cast<int>(ct_size)) == 1;
  // The tag is an input here; OpenSSL's API takes a non-const pointer but does not modify it.
  std::string tag = data.substr(ct_size);
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) == 1;
  int final_len = 0;
  ok = ok && EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char *>(out.data()) + len,
                                 &final_len) == 1;
  if (!ok) crypto_error("encrypted connection state failed authentication (tampered or moved)");
  return out;
}

}  // namespace crmhost::store
