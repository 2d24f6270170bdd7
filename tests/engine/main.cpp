#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>

#include "util/logging.hpp"

int main(int argc, char **argv) {
  // Quiet by default; CRMHOST_TEST_LOG=debug shows the engine's log when a test needs a look.
  const char *level = std::getenv("CRMHOST_TEST_LOG");
  crmhost::logging::setup(level ? level : "off");
  return Catch::Session().run(argc, argv);
}
