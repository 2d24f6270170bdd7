// The mapping language: rules, transforms, datetime formats, picklists, paths and failures.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "mapping/mapping.hpp"
#include "util/json.hpp"

using namespace crmhost;

namespace {

mapping::Mapping compile(const std::string &fields, mapping::Options options = {}) {
  std::vector<mapping::CompileProblem> problems;
  auto m = mapping::Mapping::compile(fields, options, problems);
  INFO(fields);
  for (const auto &p : problems) INFO(p.message);
  REQUIRE(problems.empty());
  return m;
}

std::vector<mapping::CompileProblem> problems_of(const std::string &fields) {
  std::vector<mapping::CompileProblem> problems;
  (void)mapping::Mapping::compile(fields, {}, problems);
  return problems;
}

// Maps `record` through one rule {"out": rule} and returns the JSON of "out" (or "absent").
std::string one(const std::string &rule, const std::string &record) {
  auto m = compile(R"({"out":)" + rule + "}");
  auto r = m.apply(record);
  INFO(rule << " on " << record << ": " << r.error);
  REQUIRE(r.ok);
  if (r.json == "{}") return "absent";
  REQUIRE(r.json.rfind(R"({"out":)", 0) == 0);
  return r.json.substr(7, r.json.size() - 8);
}

std::string failure(const std::string &rule, const std::string &record) {
  auto m = compile(R"({"out":)" + rule + "}");
  auto r = m.apply(record);
  INFO(rule << " on " << record << " gave " << r.json);
  REQUIRE_FALSE(r.ok);
  return r.error;
}

struct Case {
  const char *transform;
  const char *input;
  const char *expected;
};

}  // namespace

TEST_CASE("every transform maps its inputs as the table says", "[mapping]") {
  const std::vector<Case> cases = {
      {R"("trim")", R"("  Ada  ")", R"("Ada")"},
      {R"("trim")", R"(42)", R"(42)"},
      {R"("lower")", R"("ADA@Example.COM")", R"("ada@example.com")"},
      {R"("upper")", R"("gb")", R"("GB")"},
      {R"("title")", R"("ada LOVELACE-byron")", R"("Ada Lovelace-Byron")"},
      {R"("title")", R"("o'neil mc")", R"("O'neil Mc")"},
      {R"({"multiply":100})", R"(12.5)", R"(1250)"},
      {R"({"multiply":100})", R"("12.34")", R"(1234)"},
      {R"("*100")", R"(0.5)", R"(50)"},
      {R"({"divide":100})", R"(1250)", R"(12.5)"},
      {R"("/4")", R"(2)", R"(0.5)"},
      {R"({"round":2})", R"(3.14159)", R"(3.14)"},
      {R"({"round":0})", R"(2.5)", R"(3)"},
      {R"("round")", R"("7.4")", R"(7)"},
      {R"("e164")", R"("(415) 555-2671")", R"("+14155552671")"},
      {R"("e164")", R"("1-415-555-2671")", R"("+14155552671")"},
      {R"({"e164":"GB"})", R"("020 7946 0958")", R"("+442079460958")"},
      {R"({"e164":"DE"})", R"("0049 30 123456")", R"("+4930123456")"},
      {R"("e164")", R"("+44 20 7946 0958 x12")", R"("+442079460958")"},
      {R"("e164")", R"(4155552671)", R"("+14155552671")"},
      {R"("split")", R"("a; b;;c")", R"(["a","b","c"])"},
      {R"({"split":","})", R"("x,y")", R"(["x","y"])"},
      {R"("split")", R"(["already"])", R"(["already"])"},
      {R"("join")", R"(["a","b"])", R"("a;b")"},
      {R"({"join":", "})", R"(["a",2])", R"("a, 2")"},
      {R"("join")", R"("plain")", R"("plain")"},
      {R"("bool")", R"("Yes")", R"(true)"},
      {R"("bool")", R"("off")", R"(false)"},
      {R"("bool")", R"(1)", R"(true)"},
      {R"("bool")", R"(false)", R"(false)"},
      {R"("number")", R"(" 42 ")", R"(42)"},
      {R"("number")", R"("-1.5e2")", R"(-150)"},
      {R"("number")", R"(true)", R"(1)"},
      {R"("string")", R"(42)", R"("42")"},
      {R"("string")", R"(0.1)", R"("0.1")"},
      {R"("string")", R"(true)", R"("true")"},
      {R"("lower")", R"(["A","B"])", R"(["a","b"])"},
      {R"("trim")", R"(null)", R"(absent)"},
  };
  for (const auto &c : cases) {
    INFO(c.transform << " on " << c.input);
    CHECK(one(std::string(R"({"from":"v","transform":[)") + c.transform + "]}",
              std::string(R"({"v":)") + c.input + "}") == c.expected);
  }
}

TEST_CASE("datetime reads every supported format into ISO 8601 UTC", "[mapping]") {
  const std::vector<Case> cases = {
      // ISO 8601 with offsets
      {"datetime", R"("2026-11-22T10:00:00Z")", R"("2026-11-22T10:00:00.000Z")"},
      {"datetime", R"("2026-11-22T10:00:00.250+02:00")", R"("2026-11-22T08:00:00.250Z")"},
      {"datetime", R"("2026-11-22T10:00:00-0800")", R"("2026-11-22T18:00:00.000Z")"},
      // Zoho: +05:30
      {"datetime", R"("2017-03-10T09:30:00+05:30")", R"("2017-03-10T04:00:00.000Z")"},
      // epoch milliseconds, as a number and as text
      {"datetime", R"(1489116850787)", R"("2017-03-10T03:34:10.787Z")"},
      {"datetime", R"("1489116850787")", R"("2017-03-10T03:34:10.787Z")"},
      // Odoo: UTC without a zone
      {"datetime", R"("2017-03-10 03:34:10")", R"("2017-03-10T03:34:10.000Z")"},
      // Insightly / .NET: the number is UTC ms; the offset does not shift it
      {"datetime", R"("/Date(1489116850787-0800)/")", R"("2017-03-10T03:34:10.787Z")"},
      {"datetime", R"("/Date(1489116850787+0530)/")", R"("2017-03-10T03:34:10.787Z")"},
      {"datetime", R"("/Date(1489116850787)/")", R"("2017-03-10T03:34:10.787Z")"},
      {"datetime", R"("/Date(-86400000)/")", R"("1969-12-31T00:00:00.000Z")"},
      {"datetime", R"("2026-11-22")", R"("2026-11-22T00:00:00.000Z")"},
      {"date", R"("2017-03-10T23:30:00-05:00")", R"("2017-03-11")"},
      {"date", R"("2017-03-10 03:34:10")", R"("2017-03-10")"},
      {"date", R"("/Date(1489116850787-0800)/")", R"("2017-03-10")"},
      {"date", R"(1489116850787)", R"("2017-03-10")"},
  };
  for (const auto &c : cases) {
    INFO(c.transform << " on " << c.input);
    CHECK(one(std::string(R"({"from":"v","transform":")") + c.transform + "\"}",
              std::string(R"({"v":)") + c.input + "}") == c.expected);
  }
  for (const char *bad : {R"("yesterday")", R"("/Date(abc)/")", R"("2026-13-01")", R"(true)",
                          R"("/Date(1489116850787-08)/")", "1.48e87", R"("999999999999999")",
                          R"("/Date(99999999999999999)/")"}) {
    INFO(bad);
    CHECK_THAT(
        failure(R"({"from":"v","transform":"datetime"})", std::string(R"({"v":)") + bad + "}"),
        Catch::Contains("field \"out\"") && Catch::Contains("is not a date or time"));
  }
}

TEST_CASE("picklists map values under each unknown-value policy", "[mapping]") {
  const std::string values =
      R"("values":{"New":"appointmentscheduled","Won":"closedwon","1":"one"})";
  // error (the default)
  CHECK(one(R"({"from":"v","picklist":{)" + values + "}}", R"({"v":"Won"})") == R"("closedwon")");
  CHECK(one(R"({"from":"v","picklist":{)" + values + "}}", R"({"v":1})") == R"("one")");
  CHECK(failure(R"({"from":"v","picklist":{)" + values + R"(,"unknown":"error"}})",
                R"({"v":"Lost"})") == R"(field "out": unknown picklist value "Lost")");
  // the short form: the mapping itself, unknown values are errors
  CHECK(one(R"({"from":"v","picklist":{"a":"b"}})", R"({"v":"a"})") == R"("b")");
  CHECK_THAT(failure(R"({"from":"v","picklist":{"a":"b"}})", R"({"v":"z"})"),
             Catch::Contains("\"z\""));
  // pass
  CHECK(one(R"({"from":"v","picklist":{)" + values + R"(,"unknown":"pass"}})", R"({"v":"Lost"})") ==
        R"("Lost")");
  // default
  CHECK(one(R"({"from":"v","picklist":{)" + values + R"(,"unknown":{"default":"other"}}})",
            R"({"v":"Lost"})") == R"("other")");
  // multi-select: split, map each, join
  CHECK(one(R"({"from":"v","transform":["split",{"picklist":{"a":"A","b":"B"}},{"join":","}]})",
            R"({"v":"a;b"})") == R"("A,B")");
  CHECK(one(R"({"from":"v","transform":"split","picklist":{"values":{"a":"A"},"unknown":"pass"}})",
            R"({"v":"a;c"})") == R"(["A","c"])");
}

TEST_CASE("alternates take the first present and non-empty source field", "[mapping]") {
  CHECK(one(R"("firstname|First_Name|fname")", R"({"First_Name":"Ada","fname":"X"})") ==
        R"("Ada")");
  CHECK(one(R"("firstname|First_Name|fname")",
            R"({"firstname":"","First_Name":null,"fname":"X"})") == R"("X")");
  CHECK(one(R"({"from":["a","b"]})", R"({"b":2})") == "2");
  CHECK(one(R"({"from":["a","b|c"]})", R"({"c":3})") == "3");
  CHECK(one(R"("a|b")", R"({"z":1})") == "absent");
  // without from, the target's own name is the source
  auto m = compile(R"({"email":{"transform":"lower"}})");
  CHECK(m.apply(R"({"email":"A@B.C"})").json == R"({"email":"a@b.c"})");
}

TEST_CASE("nested paths reach into objects arrays and custom-field lists", "[mapping]") {
  CHECK(one(R"("address.city")", R"({"address":{"city":"Paris"}})") == R"("Paris")");
  CHECK(one(R"("emails[1]")", R"({"emails":["a","b"]})") == R"("b")");
  CHECK(one(R"("emails[5]")", R"({"emails":["a"]})") == "absent");
  const std::string insightly = R"({"CUSTOMFIELDS":[{"FIELD_NAME":"Tier__c","FIELD_VALUE":"Gold"},)"
                                R"({"FIELD_NAME":"Score__c","FIELD_VALUE":7}]})";
  CHECK(one(R"("CUSTOMFIELDS[FIELD_NAME=Tier__c].FIELD_VALUE")", insightly) == R"("Gold")");
  CHECK(one(R"("CUSTOMFIELDS[FIELD_NAME=Score__c].FIELD_VALUE")", insightly) == "7");
  CHECK(one(R"("CUSTOMFIELDS[FIELD_NAME=None].FIELD_VALUE")", insightly) == "absent");
  CHECK(one(R"("a.b.c|x")", R"({"a":{"b":"not an object"},"x":1})") == "1");
  // nested targets build objects
  auto m = compile(R"({"address.city":"city","address.zip":"zip","name":"n"})");
  CHECK(m.apply(R"({"city":"Oslo","zip":"0150","n":"A"})").json ==
        R"({"address":{"city":"Oslo","zip":"0150"},"name":"A"})");
}

TEST_CASE("constants defaults required fields and copying of unmapped fields", "[mapping]") {
  CHECK(one(R"({"const":"crmhost"})", R"({})") == R"("crmhost")");
  CHECK(one(R"({"const":{"a":[1,2]}})", R"({})") == R"({"a":[1,2]})");
  CHECK(one(R"({"from":"v","default":"none"})", R"({})") == R"("none")");
  CHECK(one(R"({"from":"v","default":"none"})", R"({"v":"x"})") == R"("x")");
  CHECK(one(R"({"from":"v","transform":"trim","default":"blank"})", R"({"v":"  "})") ==
        R"("blank")");
  CHECK(failure(R"({"from":"a|b","required":true})", R"({"a":""})") ==
        R"(field "out": required, but "a|b" has no value)");
  CHECK(one(R"({"from":"a","required":true,"default":0})", R"({})") == "0");

  auto plain = compile(R"({"email":"mail"})");
  CHECK(plain.apply(R"({"mail":"a@b","extra":1})").json == R"({"email":"a@b"})");
  mapping::Options copy;
  copy.copy_unmapped = true;
  auto copying = compile(R"({"email":"mail"})", copy);
  CHECK(copying.apply(R"({"mail":"a@b","extra":1,"email":"ignored"})").json ==
        R"({"email":"a@b","extra":1})");
}

TEST_CASE("a record that cannot be mapped fails with the field and the value", "[mapping]") {
  CHECK(failure(R"({"from":"v","transform":{"multiply":100}})", R"({"v":"12abc"})") ==
        R"(field "out": "12abc" is not a number (multiply))");
  CHECK(failure(R"({"from":"v","transform":"number"})", R"({"v":{"a":1}})") ==
        R"(field "out": {"a":1} is not a number (number))");
  CHECK(failure(R"({"from":"v","transform":"e164"})", R"({"v":"call me"})") ==
        R"(field "out": "call me" is not a phone number (e164))");
  CHECK(failure(R"({"from":"v","transform":"e164"})", R"({"v":"12"})") ==
        R"(field "out": "12" is not a phone number (e164))");
  CHECK(failure(R"({"from":"v","transform":"bool"})", R"({"v":"maybe"})") ==
        R"(field "out": "maybe" is not a yes/no value (bool))");
  CHECK(failure(R"({"from":"v","transform":"string"})", R"({"v":[1]})") ==
        R"(field "out": [1] is not a single value (string))");
  auto m = compile(R"({"a":"a"})");
  CHECK_FALSE(m.apply("not json").ok);
  CHECK_FALSE(m.apply("[1]").ok);
}

TEST_CASE("rule problems name the place of the rule", "[mapping]") {
  struct Bad {
    const char *fields;
    std::vector<std::string> path;
    const char *message;
  };
  const std::vector<Bad> cases = {
      {R"({"e":{"transform":["trim","lowr"]}})",
       {"e", "transform", "1"},
       R"(unknown transform "lowr" (did you mean "lower"?))"},
      {R"({"e":{"transform":"frobnicate"}})",
       {"e", "transform"},
       "unknown transform \"frobnicate\"; known: "},
      {R"({"e":{"transform":{"divide":0}}})", {"e", "transform"}, "divide needs a non-zero number"},
      {R"({"e":{"transform":"*x"}})", {"e", "transform"}, "needs a non-zero number"},
      {R"({"e":{"transform":{"round":"two"}}})", {"e", "transform"}, "round needs"},
      {R"({"e":{"transform":{"e164":"ZZ"}}})", {"e", "transform"}, "e164 needs a known ISO"},
      {R"({"e":{"transform":{"trim":1}}})", {"e", "transform"}, "trim takes no argument"},
      {R"({"e":{"transform":"multiply"}})", {"e", "transform"}, "multiply needs a number"},
      {R"({"e":{"frm":"x"}})", {"e", "frm"}, "unknown rule setting \"frm\""},
      {R"({"e":{"from":"a[","required":true}})", {"e", "from"}, "bad path \"a[\""},
      {R"({"e":{"from":[1]}})", {"e", "from", "0"}, "must be a string"},
      {R"({"e":{"from":"a","const":1}})", {"e", "const"}, "either from or const"},
      {R"({"e":{"required":"yes"}})", {"e", "required"}, "true or false"},
      {R"({"e":{"picklist":{"values":{},"unknown":"drop"}}})",
       {"e", "picklist", "unknown"},
       "unknown must be error, pass or {default: VALUE}"},
      {R"({"e":7})", {"e"}, "a field rule is"},
      {R"({"a[0]":"x"})", {"a[0]"}, "a target field is"},
  };
  for (const auto &c : cases) {
    INFO(c.fields);
    auto problems = problems_of(c.fields);
    REQUIRE(problems.size() == 1);
    CHECK(problems[0].path == c.path);
    CHECK_THAT(problems[0].message, Catch::Contains(c.message));
  }
  CHECK(problems_of("[1]").size() == 1);
  CHECK(problems_of("{").size() == 1);
}

TEST_CASE("a preset's rules are overlaid by the pipeline's fields", "[mapping]") {
  CHECK(mapping::merge_fields(R"({"a":"x","b":"y","c":"z"})", R"({"b":"q","c":null,"d":"w"})") ==
        R"({"a":"x","b":"q","d":"w"})");
  CHECK_FALSE(mapping::find_preset("no-slash", {"/"}));
  CHECK_FALSE(mapping::find_preset("../etc/passwd", {"/"}));
}

TEST_CASE("the compact serialiser writes what RapidJSON's Writer writes", "[mapping]") {
  const char *docs[] = {
      R"({"a":"plain","b":"q\"uote\\back/slash","c":"\u0001\b\f\n\r\t\u001f","d":"é✓😀"})",
      R"([0,-1,9223372036854775807,-9223372036854775808,18446744073709551615,0.1,-2.5e-8,1e300])",
      R"({"n":null,"t":true,"f":false,"e":{},"z":[],"deep":{"x":[{"y":[1,{"w":""}]}]}})",
      R"("a long string that is longer than sixteen bytes, with a \"quote\" in the middle")",
  };
  for (const char *text : docs) {
    const auto doc = crmhost::json::parse(text, "doc");
    std::string out = "prefix:";
    crmhost::json::append_compact(doc, out);
    CHECK(out == "prefix:" + crmhost::json::to_string(doc));
  }
  // A field value with every escape goes through a mapping unchanged in meaning.
  std::vector<crmhost::mapping::CompileProblem> problems;
  auto m = crmhost::mapping::Mapping::compile(R"({"note": "n"})", {}, problems);
  REQUIRE(problems.empty());
  CHECK(m.apply(R"({"n":"tab\there \"q\" \u0002"})").json ==
        R"({"note":"tab\there \"q\" \u0002"})");
}

TEST_CASE("numbers keep their exact value through parse, map and write", "[mapping]") {
  // RapidJSON's default number parse can be off by an ulp on long mantissas; a value written
  // and read again must be the same double (found by mapping_fuzz).
  const std::string long_digits = "33333333333333333333333333333333333333333333333333337";
  const auto first = crmhost::json::parse("[" + long_digits + ",0.30000000000000004]", "doc");
  const auto written = crmhost::json::to_string(first);
  CHECK(crmhost::json::to_string(crmhost::json::parse(written, "again")) == written);
  CHECK(first[0].GetDouble() == 3.3333333333333333e52);
  CHECK(first[1].GetDouble() == 0.30000000000000004);
  // Edges: a zero mantissa with a large exponent (undefined behaviour in RapidJSON's own
  // full-precision mode), underflow to zero, 64-bit integer bounds, and overflow refused.
  const auto edges = crmhost::json::parse(
      "[0E168,-1e-400,18446744073709551615,18446744073709551616,-9223372036854775808,1.5]",
      "edges");
  CHECK(crmhost::json::to_string(edges) ==
        "[0.0,-0.0,18446744073709551615,18446744073709553000.0,-9223372036854775808,1.5]");
  rapidjson::Document too_big;
  const auto error = crmhost::json::try_parse("{\"a\": 1e400}", too_big, "body");
  REQUIRE(error);
  CHECK(error->find("body is not valid JSON at offset 6") != std::string::npos);
  CHECK(error->find("too big") != std::string::npos);
}

TEST_CASE("lookups stay right when records order their keys differently", "[mapping]") {
  // Lookups start where the key was in the last record; that is a guess, never the answer.
  std::vector<crmhost::mapping::CompileProblem> problems;
  auto m =
      crmhost::mapping::Mapping::compile(R"({"a": "x", "b": "y|z", "c": "w.v"})", {}, problems);
  REQUIRE(problems.empty());
  for (int round = 0; round < 3; ++round) {
    CHECK(m.apply(R"({"x":1,"y":2,"w":{"v":3}})").json == R"({"a":1,"b":2,"c":3})");
    CHECK(m.apply(R"({"w":{"q":0,"v":6},"z":5,"x":4})").json == R"({"a":4,"b":5,"c":6})");
    CHECK(m.apply(R"({"y":8})").json == R"({"b":8})");
    CHECK(m.apply(R"({"xx":1,"x":9,"yy":2})").json == R"({"a":9})");
  }
}
