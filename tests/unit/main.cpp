#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "util/logging.hpp"

int main(int argc, char **argv) {
  // Refusals are asserted on directly; their log lines would only be noise here.
  crmhost::logging::setup("off");
  return Catch::Session().run(argc, argv);
}
