// The map stage's rules are checked at load time: problems at the rule's line and column,
// presets found beside the plugins and overlaid by the pipeline's own fields.
#include <catch2/catch.hpp>

#include <sstream>

#include "cli/cli.hpp"
#include "config/config.hpp"
#include "config_test_support.hpp"
#include "plugins/plugin_registry.hpp"

using crmhost::test::problems_of;

namespace {

const std::string kHead =
    "connections:\n"
    "  mem: { plugin: memory, settings: { webhook_secret: s3cret-s3cret } }\n"
    "pipelines:\n"
    "  p:\n"
    "    source:\n"
    "      poll: { connection: mem, object: contact }\n"
    "    sink:\n"
    "      push: { connection: mem, object: contact }\n";

}  // namespace

TEST_CASE("unknown transforms and bad rules are reported at their line and column") {
  const auto problems =
      problems_of(kHead +
                  "    map:\n"
                  "      fields:\n"
                  "        email: { from: \"Email|mail\", transform: [trim, lowr] }\n"
                  "        amount:\n"
                  "          from: Amount\n"
                  "          transform: [ { divide: 0 } ]\n"
                  "          requird: true\n"
                  "        phone: { transform: e164 }\n");
  CHECK(
      problems ==
      std::vector<std::string>{
          R"(c.yaml:11:56: map.fields.email.transform.1: unknown transform "lowr" (did you mean "lower"?))",
          R"(c.yaml:14:24: map.fields.amount.transform.0: divide needs a non-zero number)",
          R"(c.yaml:15:11: map.fields.amount.requird: unknown rule setting "requird"; expected from, const, transform, picklist, default or required)"});
}

TEST_CASE("a valid mapping loads into the pipeline's fields") {
  crmhost::test::TempDir dir;
  const auto file = dir.write("c.yaml", kHead +
                                            "    map:\n"
                                            "      default_country: GB\n"
                                            "      fields:\n"
                                            "        email: { from: Email, transform: lower }\n");
  auto result = crmhost::config::load({file});
  REQUIRE(result.problems.empty());
  const auto &map = result.config->pipelines.at("p").map;
  CHECK(map.default_country == "GB");
  CHECK(map.fields_json == R"({"email":{"from":"Email","transform":"lower"}})");
}

TEST_CASE("presets are read from plugin_dir and overlaid by the pipeline's fields") {
  crmhost::plugins::PluginRegistry registry;
  registry.load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "memory.so");
  REQUIRE(registry.refusals().empty());
  crmhost::test::TempDir dir;
  dir.write("plugins/presets/memory/contact.yaml",
            "fields:\n"
            "  email: { from: mail, transform: lower }\n"
            "  name: { from: fullname, transform: [titel] }\n"
            "  phone: tel\n");
  const auto file = dir.write("c.yaml", "plugin_dir: plugins\n" + kHead +
                                            "    map:\n"
                                            "      preset: contact\n"
                                            "      fields:\n"
                                            "        phone: null\n"
                                            "        name: fullname\n");
  auto result = crmhost::config::load({file}, &registry);
  for (const auto &p : result.problems) UNSCOPED_INFO(p.to_string());
  REQUIRE(result.problems.empty());
  CHECK(result.config->pipelines.at("p").map.fields_json ==
        R"({"email":{"from":"mail","transform":"lower"},"name":"fullname"})");

  const auto broken = dir.write("d.yaml", "plugin_dir: plugins\n" + kHead +
                                              "    map:\n"
                                              "      preset: memory/contact\n");
  auto problems = crmhost::test::listing(crmhost::config::load({broken}, &registry), dir.path());
  CHECK(
      problems ==
      std::vector<std::string>{
          R"(plugins/presets/memory/contact.yaml:3:39: preset "memory/contact" fields.name.transform.0: unknown transform "titel" (did you mean "title"?))"});

  const auto missing = dir.write("e.yaml", "plugin_dir: plugins\n" + kHead +
                                               "    map:\n"
                                               "      preset: memory/company\n");
  problems = crmhost::test::listing(crmhost::config::load({missing}, &registry), dir.path());
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0], Catch::StartsWith("e.yaml:11:15: no preset \"memory/company\""));

  // Without the plugins, a preset cannot be found and is left for validate and run.
  CHECK(crmhost::config::load({missing}).problems.empty());
}

TEST_CASE("the presets shipped beside the memory plugin load and compile") {
  crmhost::plugins::PluginRegistry registry;
  registry.load_directory(CRMHOST_BUILT_PLUGIN_DIR);
  REQUIRE(registry.find("memory"));
  for (const char *object : {"contact", "company", "deal"}) {
    crmhost::test::TempDir dir;
    const auto file =
        dir.write("c.yaml",
                  "connections:\n"
                  "  mem: { plugin: memory, settings: { webhook_secret: s3cret-s3cret } }\n"
                  "pipelines:\n"
                  "  p:\n"
                  "    source:\n"
                  "      poll: { connection: mem, object: " +
                      std::string(object) +
                      " }\n"
                      "    sink:\n"
                      "      push: { connection: mem, object: " +
                      object +
                      " }\n"
                      "    map: { preset: " +
                      object + " }\n");
    auto result = crmhost::config::load({file}, &registry);
    INFO(object);
    for (const auto &p : result.problems) UNSCOPED_INFO(p.to_string());
    REQUIRE(result.problems.empty());
    CHECK_THAT(result.config->pipelines.at("p").map.fields_json, Catch::Contains("created_at"));
  }
}

TEST_CASE("deals default to the fill_empty conflict policy") {
  crmhost::test::TempDir dir;
  const auto file =
      dir.write("c.yaml",
                "connections:\n"
                "  mem: { plugin: memory }\n"
                "pipelines:\n"
                "  deals:\n"
                "    source: { poll: { connection: mem, object: deal } }\n"
                "    sink: { push: { connection: mem, object: deal } }\n"
                "  deals-overwrite:\n"
                "    source: { poll: { connection: mem, object: deal } }\n"
                "    sink: { push: { connection: mem, object: deal, conflict: source_wins } }\n"
                "  contacts:\n"
                "    source: { poll: { connection: mem, object: contact } }\n"
                "    sink: { push: { connection: mem, object: contact } }\n");
  auto result = crmhost::config::load({file});
  REQUIRE(result.problems.empty());
  CHECK(result.config->pipelines.at("deals").sink.conflict ==
        crmhost::config::ConflictPolicy::fill_empty);
  CHECK(result.config->pipelines.at("deals-overwrite").sink.conflict ==
        crmhost::config::ConflictPolicy::source_wins);
  CHECK(result.config->pipelines.at("contacts").sink.conflict ==
        crmhost::config::ConflictPolicy::source_wins);
}

TEST_CASE("match_normalize, conflict_fields and on_delete are read, with defaults and errors") {
  crmhost::test::TempDir dir;
  const std::string head =
      "connections:\n"
      "  mem: { plugin: memory }\n"
      "pipelines:\n"
      "  p:\n"
      "    source: { poll: { connection: mem, object: contact } }\n";
  {
    const auto file = dir.write(
        "ok.yaml",
        head +
            "    sink:\n"
            "      push:\n"
            "        connection: mem\n"
            "        object: contact\n"
            "        match_on: email\n"
            "        match_normalize: [lower]\n"
            "        conflict_fields: { city: target_wins }\n"
            "        on_delete: propagate\n"
            "  q:\n"
            "    source: { poll: { connection: mem, object: deal } }\n"
            "    sink: { push: { connection: mem, object: deal, match_normalize: none } }\n");
    auto result = crmhost::config::load({file});
    REQUIRE(result.problems.empty());
    const auto &p = result.config->pipelines.at("p").sink;
    CHECK(p.match_normalize == std::vector<std::string>{"lower"});
    CHECK(p.conflict_fields.at("city") == crmhost::config::ConflictPolicy::target_wins);
    CHECK(p.on_delete == crmhost::config::DeletePolicy::propagate);
    const auto &q = result.config->pipelines.at("q").sink;
    CHECK(q.match_normalize.empty());
    CHECK(q.on_delete == crmhost::config::DeletePolicy::keep_edited);  // the default
  }
  {
    const auto file = dir.write("bad.yaml", head +
                                                "    sink:\n"
                                                "      push:\n"
                                                "        connection: mem\n"
                                                "        object: contact\n"
                                                "        match_normalize: [trim, upper]\n"
                                                "        conflict_fields: { city: fill_empty }\n"
                                                "        on_delete: remove\n");
    auto result = crmhost::config::load({file});
    REQUIRE(result.problems.size() == 3);
    CHECK(result.problems[0].message.find("must be one of trim, lower") != std::string::npos);
    CHECK(result.problems[1].message.find("fill_empty applies to whole records") !=
          std::string::npos);
    CHECK(result.problems[2].message.find("must be one of keep_edited, propagate, archive") !=
          std::string::npos);
  }
}

TEST_CASE("on_delete archive needs a sink plugin with the archive push mode") {
  crmhost::plugins::PluginRegistry registry;
  registry.load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "memory.so");
  registry.load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "memory-sdk.so");
  REQUIRE(registry.refusals().empty());
  const std::string head =
      "connections:\n"
      "  mem: { plugin: memory, settings: { webhook_secret: s3cret-s3cret } }\n"
      "  sdk: { plugin: memory-sdk, settings: { webhook_secret: s3cret-s3cret } }\n"
      "allow_inline_secrets: true\n"
      "pipelines:\n"
      "  p:\n"
      "    source: { poll: { connection: mem, object: contact } }\n"
      "    sink:\n"
      "      push:\n";
  // memory-sdk pushes upsert, create, update and delete only.
  CHECK(
      crmhost::test::problems_of(head + "        connection: sdk\n"
                                        "        object: contact\n"
                                        "        on_delete: archive\n",
                                 &registry) ==
      std::vector<std::string>{
          R"(c.yaml:12:20: plugin "memory-sdk" of connection "sdk" cannot archive (its push modes are upsert, create, update, delete); choose on_delete keep_edited or propagate)"});
  // The memory example has it (its archive is a delete); without plugins it cannot be checked.
  const std::string to_memory = head +
                                "        connection: mem\n"
                                "        object: deal\n"
                                "        on_delete: archive\n";
  CHECK(crmhost::test::problems_of(to_memory, &registry).empty());
  const std::string to_sdk = head +
                             "        connection: sdk\n"
                             "        object: contact\n"
                             "        on_delete: archive\n";
  CHECK(crmhost::test::problems_of(to_sdk).empty());
  for (const char *policy : {"keep_edited", "propagate"})
    CHECK(crmhost::test::problems_of(head +
                                         "        connection: sdk\n"
                                         "        object: contact\n"
                                         "        on_delete: " +
                                         policy + "\n",
                                     &registry)
              .empty());
}

TEST_CASE("validate warns when a match_normalize step is one the sink plugin does not declare") {
  crmhost::plugins::PluginRegistry registry;
  registry.load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "memory.so");
  registry.load_file(std::filesystem::path(CRMHOST_FIXTURE_DIR) / "memory-sdk.so");
  REQUIRE(registry.refusals().empty());
  crmhost::test::TempDir dir;
  const auto load = [&](const std::string &connection, const std::string &push_extra) {
    const auto file =
        dir.write("c.yaml",
                  "connections:\n"
                  "  mem: { plugin: memory, settings: { webhook_secret: s3cret-s3cret } }\n"
                  "  sdk: { plugin: memory-sdk, settings: { webhook_secret: s3cret-s3cret } }\n"
                  "allow_inline_secrets: true\n"
                  "pipelines:\n"
                  "  p:\n"
                  "    source: { poll: { connection: mem, object: contact } }\n"
                  "    sink:\n"
                  "      push: { connection: " +
                      connection + ", object: contact" + push_extra + " }\n");
    auto result = crmhost::config::load({file}, &registry);
    for (const auto &p : result.problems) UNSCOPED_INFO(p.to_string());
    REQUIRE(result.problems.empty());  // a warning only: the configuration is valid
    std::vector<std::string> out;
    const std::string prefix = dir.path().string() + "/";
    for (const auto &w : result.warnings) {
      auto line = w.to_string();
      if (line.rfind(prefix, 0) == 0) line.erase(0, prefix.size());
      out.push_back(line);
    }
    return out;
  };
  // memory-sdk declares no match_normalize: the default [trim, lower] warns (once, for the
  // first step it lacks).
  CHECK(
      load("sdk", ", match_on: email") ==
      std::vector<std::string>{
          R"(c.yaml:9:7: pipeline "p": plugin "memory-sdk" does not declare match_normalize "trim", so its lookups may miss keys that differ only in surrounding spaces and create duplicates)"});
  CHECK(
      load("sdk", ", match_on: email, match_normalize: [lower]") ==
      std::vector<std::string>{
          R"(c.yaml:9:7: pipeline "p": plugin "memory-sdk" does not declare match_normalize "lower", so its lookups may miss keys that differ only in case and create duplicates)"});
  // No step asked for, no key to look up, or a plugin that declares both: nothing to say.
  CHECK(load("sdk", ", match_on: email, match_normalize: none").empty());
  CHECK(load("sdk", "").empty());
  CHECK(load("mem", ", match_on: email").empty());

  // `crmhost validate` prints it as a warning and still exits 0.
  load("sdk", ", match_on: email");
  std::ostringstream out, err;
  const int code = crmhost::cli::run(
      {"validate", "--plugin-dir", CRMHOST_FIXTURE_DIR, (dir.path() / "c.yaml").string()}, out,
      err);
  CHECK(code == 0);
  CHECK(out.str() == (dir.path() / "c.yaml").string() +
                         R"(:9:7: warning: pipeline "p": plugin "memory-sdk" does not declare )"
                         R"(match_normalize "trim", so its lookups may miss keys that differ )"
                         "only in surrounding spaces and create duplicates\n");
  CHECK(err.str().empty());
}
