#pragma once
// Helpers the engine tests share: waiting for a condition, and a fresh folder per test.
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <unistd.h>

namespace crmhost::testing {

// Waits up to `limit` for `done` to hold, looking every `step`; a last look at the deadline.
template <class Pred>
bool eventually(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(15),
                std::chrono::milliseconds step = std::chrono::milliseconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(step);
  }
  return done();
}

// An empty folder of the system's temporary one, named for `name`, this process and a counter:
// ctest runs test cases of one binary in parallel processes, and a test may make several.
inline std::filesystem::path fresh_test_dir(const std::string &name) {
  static int counter = 0;
  auto dir =
      std::filesystem::temp_directory_path() /
      ("crmhost-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace crmhost::testing
