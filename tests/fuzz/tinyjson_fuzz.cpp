// libFuzzer target for tinyjson.h, the JSON reader and writer of the plain-C example connector
// (plugin-api/examples), compiled as C++ here. The memory connector echoes the raw text of
// parsed values into its results, which the host parses with RapidJSON: so whatever tinyjson
// accepts, the host's parser must accept too (else a sender's bad JSON becomes a 500 instead of
// a 400). And every byte string tinyjson's writer quotes reads back as the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tinyjson.h"
#include "util/json.hpp"

namespace {

void walk(const tj_value &v, size_t len) {
  if (v.raw_begin > v.raw_end || v.raw_end > len) __builtin_trap();
  for (size_t i = 0; i < v.count; ++i) walk(v.children[i], len);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view input(reinterpret_cast<const char *>(data), size);
  tj_value root;
  char error[160];
  if (tj_parse(input.data(), input.size(), &root, error, sizeof error)) {
    walk(root, input.size());
    rapidjson::Document d;
    if (auto problem = crmhost::json::try_parse(input, d, "tinyjson's input")) __builtin_trap();
    tj_free(&root);
  } else if (error[0] == '\0') {
    __builtin_trap();  // a refusal always says why
  }
  tj_buf b = {nullptr, 0, 0, 0};
  tj_buf_quoted(&b, input.data(), input.size());
  if (!b.failed) {
    rapidjson::Document d;
    if (crmhost::json::try_parse(std::string_view(b.data, b.len), d, "quoted") || !d.IsString() ||
        std::string_view(d.GetString(), d.GetStringLength()) != input)
      __builtin_trap();
  }
  tj_buf_free(&b);
  return 0;
}
