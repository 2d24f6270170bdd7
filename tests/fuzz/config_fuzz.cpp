// libFuzzer target for the configuration loader (config::load): YAML parsing, alias and size
// bounds, ${ENV} / ${file:} interpolation, typing and validation, without plugins. The input is
// written to a file as the configuration, beside a secret file; the environment holds a secret.
// Checks: a Config comes back exactly when there are no problems, and neither secret's value
// is ever echoed in a problem or warning (they are named by their source) unless the input
// itself spells it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include <unistd.h>

#include "config/config.hpp"

namespace {

constexpr std::string_view kEnvSecret = "Env5ecretValueQ";
constexpr std::string_view kFileSecret = "F1leSecretValueZ";
// An input holding one of these may spell a secret itself ("Env5ecret${EMPTY}ValueQ").
constexpr std::string_view kEnvPrefix = "Env5ecret", kFilePrefix = "F1leSecret";

// Never destroyed, so the exit handler that removes it can still read it.
const std::filesystem::path &dir() {
  static const std::filesystem::path *d = [] {
    auto *path = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                           ("crmhost-config-fuzz-" + std::to_string(::getpid())));
    std::filesystem::create_directories(*path);
    std::ofstream(*path / "secret.txt") << kFileSecret << "\n";
    ::setenv("FUZZ_SECRET", std::string(kEnvSecret).c_str(), 1);
    ::setenv("FUZZ_PORT", "8080", 1);
    ::setenv("FUZZ_EMPTY", "", 1);
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(dir(), ignored);
    });
    return path;
  }();
  return *d;
}

void check_quiet(const std::vector<crmhost::config::Problem> &list, std::string_view input) {
  for (const auto &p : list) {
    const std::string text = p.to_string();
    if (text.empty()) __builtin_trap();
    if (input.find(kEnvPrefix) == std::string_view::npos &&
        text.find(kEnvSecret) != std::string::npos)
      __builtin_trap();
    if (input.find(kFilePrefix) == std::string_view::npos &&
        text.find(kFileSecret) != std::string::npos)
      __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view input(reinterpret_cast<const char *>(data), size);
  const auto file = dir() / "crmhost.yaml";
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(input.data(), static_cast<std::streamsize>(input.size()));
  }
  const auto result = crmhost::config::load({file});
  if (result.config.has_value() != result.problems.empty()) __builtin_trap();
  check_quiet(result.problems, input);
  check_quiet(result.warnings, input);
  return 0;
}
