#include <iostream>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "util/logging.hpp"

int main(int argc, char **argv) {
  crmhost::logging::setup("error");
  return crmhost::cli::run(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
