#include "util/crash.hpp"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

namespace crmhost::crash {

namespace {

thread_local const char *t_plugin = nullptr;
thread_local const char *t_connection = nullptr;
thread_local const char *t_call = nullptr;

// Read by the handler on any thread; install() may replace it (lock-free, so signal-safe).
std::atomic<int> g_marker_fd{-1};
// install_keeping_marker's path, opened by the handler itself; set before the handler is
// installed and while g_marker_deferred is false, so the handler never reads it half-written.
char g_marker_path[4096];
std::atomic<bool> g_marker_deferred{false};

// An alternate stack per thread that calls plugins, so that a stack overflow inside a plugin
// still reaches the handler. Freed when the thread ends.
struct AltStack {
  void *memory = nullptr;
  ~AltStack() {
    if (!memory) return;
    stack_t none{};
    none.ss_flags = SS_DISABLE;
    sigaltstack(&none, nullptr);
    std::free(memory);
  }
  void ensure() {
    if (memory) return;
    const size_t size = 64 * 1024;
    memory = std::malloc(size);
    if (!memory) return;
    stack_t stack{};
    stack.ss_sp = memory;
    stack.ss_size = size;
    if (sigaltstack(&stack, nullptr) != 0) {
      std::free(memory);
      memory = nullptr;
    }
  }
};
thread_local AltStack t_alt_stack;

// A line builder on a fixed buffer: no allocation, no locale, no stdio.
struct Line {
  char text[768];
  size_t len = 0;
  void add(const char *s) {
    for (; s && *s && len < sizeof text - 2; ++s) {
      const char c = *s;
      text[len++] = (c == '\n' || c == '\r') ? ' ' : c;
    }
  }
  void add_number(long long n) {
    char digits[24];
    size_t count = 0;
    const bool negative = n < 0;
    unsigned long long u = negative ? 0ULL - static_cast<unsigned long long>(n) : n;
    do {
      digits[count++] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u && count < sizeof digits);
    if (negative) add("-");
    while (count) {
      const char one[2] = {digits[--count], 0};
      add(one);
    }
  }
};

const char *signal_name(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGILL:
      return "SIGILL";
    case SIGFPE:
      return "SIGFPE";
    case SIGABRT:
      return "SIGABRT";
    default:
      return "a fatal signal";
  }
}

void write_all(int fd, const char *data, size_t len) {
  while (len > 0) {
    const ssize_t n = ::write(fd, data, len);
    if (n <= 0) return;
    data += n;
    len -= static_cast<size_t>(n);
  }
}

void on_fatal_signal(int sig) {
  const int saved_errno = errno;
  Line line;
  line.add("crmhost: fatal signal ");
  line.add(signal_name(sig));
  if (t_call) {
    line.add(" in plugin \"");
    line.add(t_plugin);
    line.add("\" during its ");
    line.add(t_call);
    line.add(" call");
    if (t_connection && *t_connection) {
      line.add(" for connection \"");
      line.add(t_connection);
      line.add("\"");
    }
  } else {
    line.add(" outside any plugin call");
  }
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  line.add(" at unix time ");
  line.add_number(static_cast<long long>(now.tv_sec));
  line.add("; the host stops");
  line.text[line.len++] = '\n';
  write_all(STDERR_FILENO, line.text, line.len);
  int marker = g_marker_fd.load();
  const bool deferred = marker < 0 && g_marker_deferred.load();
  if (deferred)  // open(2) is async-signal-safe
    marker = ::open(g_marker_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (marker >= 0) {
    ::lseek(marker, 0, SEEK_SET);
    write_all(marker, line.text, line.len);
    ::fsync(marker);
    if (deferred) ::close(marker);
  }
  errno = saved_errno;
  // SA_RESETHAND restored the default action; raising the signal again ends the process with
  // it (a core dump where enabled) once this handler returns, whether it came from a fault or
  // from raise/abort.
  ::raise(sig);
}

}  // namespace

PluginCallScope::PluginCallScope(const char *plugin, const char *connection,
                                 const char *call) noexcept
    : previous_plugin_(t_plugin), previous_connection_(t_connection), previous_call_(t_call) {
  t_alt_stack.ensure();
  t_plugin = plugin;
  t_connection = connection;
  t_call = call;
}

PluginCallScope::~PluginCallScope() {
  t_plugin = previous_plugin_;
  t_connection = previous_connection_;
  t_call = previous_call_;
}

namespace {

void install_handler() {
  t_alt_stack.ensure();
  struct sigaction action {};
  action.sa_handler = on_fatal_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND | SA_ONSTACK;
  for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT}) sigaction(sig, &action, nullptr);
}

}  // namespace

bool install(const std::string &marker_path) {
  g_marker_deferred = false;
  const int marker = marker_path.empty() ? -1
                                         : ::open(marker_path.c_str(),
                                                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (const int previous = g_marker_fd.exchange(marker); previous >= 0) ::close(previous);
  install_handler();
  return marker_path.empty() || marker >= 0;
}

void install_keeping_marker(const std::string &marker_path) {
  g_marker_deferred = false;
  if (const int previous = g_marker_fd.exchange(-1); previous >= 0) ::close(previous);
  if (!marker_path.empty() && marker_path.size() < sizeof g_marker_path) {
    std::memcpy(g_marker_path, marker_path.c_str(), marker_path.size() + 1);
    g_marker_deferred = true;
  }
  install_handler();
}

std::optional<std::string> take_previous(const std::string &marker_path) {
  if (marker_path.empty()) return std::nullopt;
  std::ifstream in(marker_path);
  if (!in) return std::nullopt;
  std::string line;
  std::getline(in, line);
  in.close();
  std::error_code ignored;
  std::filesystem::remove(marker_path, ignored);
  if (line.empty()) return std::nullopt;
  return line;
}

std::string marker_path_for(const std::filesystem::path &sqlite_database) {
  if (const char *state = std::getenv("STATE_DIRECTORY"); state && *state) {
    // systemd may list several directories separated by ':'; the first is ours.
    std::string dir(state);
    dir = dir.substr(0, dir.find(':'));
    return (std::filesystem::path(dir) / "last-crash").string();
  }
  if (!sqlite_database.empty() && sqlite_database != ":memory:")
    return sqlite_database.string() + ".last-crash";
  return {};
}

}  // namespace crmhost::crash
