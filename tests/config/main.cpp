#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "util/logging.hpp"

int main(int argc, char **argv) {
  // Plugin loading logs; the tests assert on problems directly.
  crmhost::logging::setup("off");
  return Catch::Session().run(argc, argv);
}
