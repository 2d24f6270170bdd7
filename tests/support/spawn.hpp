#pragma once
// Starts `crmhost run --config CONFIG` as a child process with stdout and stderr in LOG, for the
// tests that drive the real binary (tests/engine/run_process_test.cpp, tests/hostile).
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

namespace crmhost::testing {

inline pid_t spawn_crmhost_run(const char *binary, const std::filesystem::path &config,
                               const std::filesystem::path &log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(binary, binary, "run", "--config", config.c_str(), nullptr);
    ::_exit(127);
  }
  return pid;
}

}  // namespace crmhost::testing
