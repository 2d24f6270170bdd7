// Configuration files built to hurt: each is refused with a clear problem, quickly, in bounded
// memory and stack, instead of crashing or stalling the loader (and a SIGHUP reload with it).
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "config_test_support.hpp"

using crmhost::test::problems_of;
using crmhost::test::TempDir;

namespace {

// Loads `yaml` and returns its problems and how long that took.
std::pair<std::vector<std::string>, double> timed_problems(const std::string &yaml) {
  const auto start = std::chrono::steady_clock::now();
  auto problems = problems_of(yaml);
  return {problems,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
}

bool any_contains(const std::vector<std::string> &problems, const std::string &text) {
  for (const auto &p : problems)
    if (p.find(text) != std::string::npos) return true;
  return false;
}

std::string connection_with(const std::string &settings_yaml) {
  return "connections:\n  mem:\n    plugin: memory\n    settings:\n" + settings_yaml;
}

}  // namespace

TEST_CASE("an alias that refers to itself is refused, not followed for ever", "[hostile]") {
  const auto [problems, seconds] = timed_problems(connection_with("      loop: &a [x, *a]\n"));
  REQUIRE(!problems.empty());
  CHECK(any_contains(problems, "nest more than 64 levels deep (an alias that refers to itself?)"));
  CHECK(seconds < 2.0);
}

TEST_CASE("aliases that expand exponentially are refused at the node budget", "[hostile]") {
  std::string bomb = "      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i <= 9; ++i)
    bomb += "      l" + std::to_string(i) + ": &l" + std::to_string(i) + " [" + [&] {
      std::string refs;
      for (int j = 0; j < 10; ++j) refs += (j ? ", *l" : "*l") + std::to_string(i - 1);
      return refs;
    }() + "]\n";
  const auto [problems, seconds] = timed_problems(connection_with(bomb));
  REQUIRE(!problems.empty());
  CHECK(any_contains(problems, "expands to more than 200000 values"));
  CHECK(seconds < 2.0);
}

TEST_CASE("a mapping of 200,000 keys is refused quickly", "[hostile]") {
  std::string many;
  many.reserve(200'000 * 20);
  for (int i = 0; i < 200'000; ++i) many += "      k" + std::to_string(i) + ": v\n";
  const auto [problems, seconds] = timed_problems(connection_with(many));
  REQUIRE(!problems.empty());
  CHECK(any_contains(problems, "expands to more than 200000 values"));
  CHECK(seconds < 10.0);  // yaml-cpp's own parse of 4 MB dominates
}

TEST_CASE("a 100,000-digit number neither crashes nor hangs the loader", "[hostile]") {
  const std::string digits(100'000, '7');
  const auto [problems, seconds] =
      timed_problems(connection_with("      webhook_secret: s3cret-s3cret\n      n: " + digits +
                                     "\n      f: 1." + digits + "e5\n") +
                     "retention: " + digits + "\n");
  CHECK(problems.size() == 1);  // retention's, named without echoing 100,000 digits
  CHECK(any_contains(problems, "retention"));
  for (const auto &p : problems) CHECK(p.size() < 1000);
  CHECK(seconds < 2.0);
}

TEST_CASE("deep nesting is refused by the YAML parser's guard or the depth bound", "[hostile]") {
  const std::string deep = "x: " + std::string(100'000, '[') + std::string(100'000, ']') + "\n";
  const auto [problems, seconds] = timed_problems(deep);
  REQUIRE(!problems.empty());
  CHECK(seconds < 5.0);
}

TEST_CASE("${file:} reads only regular files, and at most 1 MiB", "[hostile]") {
  TempDir dir;
  dir.write("big.secret", std::string((1 << 20) + 1, 'x'));
  dir.write("ok.secret", std::string(1 << 20, 'x'));
  const auto load = [&](const std::string &yaml) {
    return crmhost::test::listing(crmhost::config::load({dir.write("c.yaml", yaml)}), dir.path());
  };
  const auto start = std::chrono::steady_clock::now();
  const auto zero = load("admin_token: \"${file:/dev/zero}\"\n");
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(2));
  REQUIRE(zero.size() == 1);
  CHECK_THAT(zero[0], Catch::Contains("cannot read /dev/zero") &&
                          Catch::Contains("it is not a regular file"));
  const auto big = load("admin_token: \"${file:big.secret}\"\n");
  REQUIRE(big.size() == 1);
  CHECK_THAT(big[0], Catch::Contains("it is larger than 1048576 bytes"));
  CHECK(load("admin_token: \"${file:ok.secret}\"\n").empty());
}

TEST_CASE("a configuration file over 4 MiB is refused before it is parsed", "[hostile]") {
  TempDir dir;
  const auto file = dir.write("c.yaml", "# " + std::string(5 << 20, 'x') + "\n");
  const auto problems = crmhost::test::listing(crmhost::config::load({file}), dir.path());
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0], Catch::Contains("a configuration file may hold at most 4194304"));
}

TEST_CASE("a stray ',' is a syntax error, not an endless loop", "[hostile]") {
  // yaml-cpp 0.7's LoadAll loops for ever, allocating, on these (jbeder/yaml-cpp#1040).
  for (const std::string yaml : {",", ",\x80r\xe7", "{store: x}\n, y\n", "# note\n,\n"}) {
    INFO(yaml);
    const auto [problems, seconds] = timed_problems(yaml);
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::Contains("YAML syntax error: unexpected token where a value "
                                            "should start (a stray ',"));
    CHECK(seconds < 2.0);
  }
  // Several real documents are still told apart from a stuck parser.
  const auto [several, seconds] = timed_problems("store: x\n---\nstore: y\n");
  REQUIRE(several.size() == 1);
  CHECK_THAT(several[0], Catch::Contains("3:1: a configuration file holds one YAML document"));
}
