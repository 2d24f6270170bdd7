// libFuzzer target for redaction (util/redact.cpp): any input is masked without crashing, in
// linear time (libFuzzer's -timeout catches a slow input), and a secret written after any
// input as " password=<token> " never survives, whatever came before it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/redact.hpp"

namespace {

constexpr std::string_view kToken = "Zq8Tok3nQx";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view input(reinterpret_cast<const char *>(data), size);
  const std::string out = crmhost::redaction::redact(input);
  // Each mask replaces at least one byte with at most "[redacted]".
  if (out.size() > input.size() * 10 + 16) __builtin_trap();
  if (input.find(kToken) == std::string_view::npos) {
    const std::string with_secret =
        std::string(input) + " password=" + std::string(kToken) + " tail";
    if (crmhost::redaction::redact(with_secret).find(kToken) != std::string::npos) __builtin_trap();
  }
  return 0;
}
