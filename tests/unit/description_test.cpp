#include <catch2/catch.hpp>

#include "plugins/description.hpp"

using crmhost::plugins::parse_description;

TEST_CASE("a valid description is parsed with defaults", "[description]") {
  std::string error;
  auto d = parse_description(
      R"({"name":"x","objects":[{"name":"contact"}],"capabilities":["check"]})", error);
  REQUIRE(d);
  CHECK(d->display_name == "x");
  CHECK(d->objects[0].id_field == "id");
  CHECK(d->max_batch == 1);
  CHECK(d->settings_schema_json == "{}");
}

TEST_CASE("an invalid description names the offending member", "[description]") {
  const std::pair<const char *, const char *> cases[] = {
      {"[]", "must be a JSON object"},
      {"{", "not valid JSON"},
      {R"({"objects":[],"capabilities":[]})", "\"name\""},
      {R"({"name":"x","capabilities":[]})", "\"objects\""},
      {R"({"name":"x","objects":[{}],"capabilities":[]})", "needs a \"name\""},
      {R"({"name":"x","objects":[],"capabilities":["teleport"]})",
       "unknown capability \"teleport\""},
      {R"({"name":"x","objects":[],"capabilities":[],"max_batch":0})", "max_batch"},
      {R"({"name":"x","objects":[],"capabilities":[],"settings_schema":"no"})", "settings_schema"},
      {R"({"name":"x","objects":[],"capabilities":[],"rate_limits":[]})", "\"rate_limits\""},
      {R"({"name":"x","objects":[],"capabilities":[],"rate_limits":{"search":{"requests":4}}})",
       "\"rate_limits\".\"search\""},
      {R"({"name":"x","objects":[],"capabilities":[],
           "rate_limits":{"default":{"requests":0,"per_ms":10}}})",
       "\"rate_limits\".\"default\""},
  };
  for (const auto &[json, expected] : cases) {
    std::string error;
    INFO(json);
    CHECK_FALSE(parse_description(json, error));
    CHECK_THAT(error, Catch::Contains(expected));
  }
}

TEST_CASE("a plugin's rate limits are read by bucket", "[description]") {
  std::string error;
  auto d = parse_description(
      R"({"name":"x","objects":[],"capabilities":[],"rate_limits":{
          "default":{"requests":100,"per_ms":10000},"search":{"requests":4,"per_ms":1000,"burst":2}}})",
      error);
  REQUIRE(d);
  REQUIRE(d->rate_limits.size() == 2);
  CHECK(d->rate_limits[0].first == "default");
  CHECK(d->rate_limits[0].second.requests == 100);
  CHECK(d->rate_limits[0].second.per_ms == 10000);
  CHECK(d->rate_limits[0].second.burst == 0);
  CHECK(d->rate_limits[1].first == "search");
  CHECK(d->rate_limits[1].second.burst == 2);
}
