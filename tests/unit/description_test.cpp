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
  };
  for (const auto &[json, expected] : cases) {
    std::string error;
    INFO(json);
    CHECK_FALSE(parse_description(json, error));
    CHECK_THAT(error, Catch::Contains(expected));
  }
}
