// The fact sheet's webhook signature vectors (shared/design/providers/hubspot.md), and the
// small parsers the connector's poll and webhook rely on.
#include <catch2/catch.hpp>

#include "common.hpp"
#include "signature.hpp"

using namespace crmhost::hubspot;

namespace {
const std::string kSecret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
const std::string kEventArray =
    R"([{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,)"
    R"("subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,)"
    R"("changeSource":"CRM","changeFlag":"NEW","appId":54321}])";
const std::string kUri = "https://www.example.com/webhook_uri";
}  // namespace

TEST_CASE("v1 vector: the event array signs to 232db261") {
  CHECK(signature_v1(kSecret, kEventArray) ==
        "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de");
}

TEST_CASE("v2 vector: GET with an empty body signs to eee2dddc") {
  CHECK(signature_v2(kSecret, "GET", kUri, "") ==
        "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e");
}

TEST_CASE("v2 vector: POST with a JSON body signs to 9569219f") {
  CHECK(signature_v2(kSecret, "POST", kUri, R"({"example_field":"example_value"})") ==
        "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900");
}

TEST_CASE("v1 vector: a single-quoted body signs to 69fc6631") {
  CHECK(signature_v1(kSecret, "{'example_field':'example_value'}") ==
        "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750");
}

TEST_CASE("v2 vector: POST with a single-quoted body signs to 4fe4e3a7") {
  CHECK(signature_v2(kSecret, "POST", kUri, "{'example_field':'example_value'}") ==
        "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383");
}

TEST_CASE("v3 vector: HMAC with timestamp 1693657560000 signs to K36dawei") {
  CHECK(signature_v3(kSecret, "POST", kUri, "{'example_field':'example_value'}", "1693657560000") ==
        "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y=");
}

TEST_CASE("every fact sheet vector verifies through verify_signature") {
  SignatureSettings settings;
  settings.secret = kSecret;
  const int64_t now = 1693657560000 + 1000;
  CHECK(verify_signature(settings, "POST", kUri,
                         {{"X-HubSpot-Signature",
                           "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"},
                          {"X-HubSpot-Signature-Version", "v1"}},
                         kEventArray, now)
            .outcome == Verification::Outcome::ok);
  CHECK(verify_signature(settings, "GET", kUri,
                         {{"x-hubspot-signature",
                           "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"},
                          {"x-hubspot-signature-version", "v2"}},
                         "", now)
            .outcome == Verification::Outcome::ok);
  CHECK(
      verify_signature(settings, "POST", kUri,
                       {{"X-HubSpot-Signature-v3", "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="},
                        {"X-HubSpot-Request-Timestamp", "1693657560000"}},
                       "{'example_field':'example_value'}", now)
          .outcome == Verification::Outcome::ok);
}

TEST_CASE("v3 decodes the listed percent escapes and keeps the others") {
  CHECK(decode_v3_uri("https://x.test/a%3Ab%2Fc%3Fd%40e%21f%24g%27h%28i%29j%2Ak%2Cl%3Bm") ==
        "https://x.test/a:b/c?d@e!f$g'h(i)j*k,l;m");
  CHECK(decode_v3_uri("/p?q=a%20b%3ac") == "/p?q=a%20b:c");
  CHECK(decode_v3_uri("/trailing%3") == "/trailing%3");
}

TEST_CASE("the signed URI is the public base URL plus the path and query as received") {
  CHECK(signed_uri("http://127.0.0.1:8080/hooks/hubspot?x=1", "https://sync.example.com/") ==
        "https://sync.example.com/hooks/hubspot?x=1");
  CHECK(signed_uri("http://127.0.0.1:8080/hooks", "") == "http://127.0.0.1:8080/hooks");
}

TEST_CASE("times parse from ISO 8601 and epoch milliseconds and format back") {
  CHECK(parse_time_ms("2019-10-30T03:30:17.883Z") == 1572406217883);
  CHECK(parse_time_ms("1572406217883") == 1572406217883);
  CHECK(parse_time_ms("2019-10-30T05:30:17.883+02:00") == 1572406217883);
  CHECK(parse_time_ms("2019-10-30T03:30:17Z") == 1572406217000);
  CHECK_FALSE(parse_time_ms("yesterday"));
  CHECK(format_iso_ms(1572406217883) == "2019-10-30T03:30:17.883Z");
  CHECK(format_iso_ms(0) == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("cursors round-trip and accept a hand-written time") {
  const Cursor c = decode_cursor(encode_cursor({1700000000123, "51"}));
  CHECK(c.modified_ms == 1700000000123);
  CHECK(c.id == "51");
  CHECK(decode_cursor("2023-11-14T22:13:20.000Z").modified_ms == 1700000000000);
  CHECK(decode_cursor("1700000000000").id.empty());
  CHECK_THROWS(decode_cursor("garbage"));
}

TEST_CASE("ids compare as numbers") {
  CHECK(compare_ids("9", "10") < 0);
  CHECK(compare_ids("100", "99") > 0);
  CHECK(compare_ids("42", "42") == 0);
}
