#pragma once
// A test CA and a server certificate for localhost / 127.0.0.1, made at test time with OpenSSL's
// C API (nothing secret is checked in).
#include <string>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <catch2/catch.hpp>

namespace crmhost::test {

struct Pki {
  std::string ca_pem, cert_pem, key_pem;
};

inline void add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  REQUIRE(ext != nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

inline X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *signer, bool ca,
                       long serial) {
  X509 *cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_set_pubkey(cert, key);
  X509_NAME *name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char *>(cn),
                             -1, -1, 0);
  X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name);
  X509 *issuer_cert = issuer ? issuer : cert;
  if (ca) {
    add_ext(cert, issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(cert, issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    add_ext(cert, issuer_cert, NID_subject_key_identifier, "hash");
  } else {
    add_ext(cert, issuer_cert, NID_basic_constraints, "CA:FALSE");
    add_ext(cert, issuer_cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
    add_ext(cert, issuer_cert, NID_ext_key_usage, "serverAuth");
  }
  REQUIRE(X509_sign(cert, signer, EVP_sha256()) > 0);
  return cert;
}

inline std::string pem(X509 *cert) {
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char *data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

inline Pki make_pki() {
  EVP_PKEY *ca_key = EVP_EC_gen("P-256");
  EVP_PKEY *server_key = EVP_EC_gen("P-256");
  REQUIRE(ca_key != nullptr);
  REQUIRE(server_key != nullptr);
  X509 *ca = make_cert(ca_key, "crmhost test CA", nullptr, ca_key, true, 1);
  X509 *server = make_cert(server_key, "localhost", ca, ca_key, false, 2);
  Pki pki{pem(ca), pem(server), {}};
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, server_key, nullptr, nullptr, 0, nullptr, nullptr);
  char *data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  pki.key_pem.assign(data, static_cast<size_t>(n));
  BIO_free(bio);
  X509_free(server);
  X509_free(ca);
  EVP_PKEY_free(server_key);
  EVP_PKEY_free(ca_key);
  return pki;
}

}  // namespace crmhost::test
