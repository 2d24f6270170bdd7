#pragma once
// What the host says when a fatal signal ends it: one line naming the plugin call that was in
// flight on the crashing thread, written with async-signal-safe calls only, to stderr and to a
// marker file that the next start reads, so a crash loop is never silent.
#include <filesystem>
#include <optional>
#include <string>

namespace crmhost::crash {

// Marks a plugin call in flight on this thread for the crash handler. The strings must outlive
// the scope (plugin ids and connection names live as long as their connector; `call` is a
// literal). Scopes nest: the innermost names the call.
class PluginCallScope {
 public:
  PluginCallScope(const char *plugin, const char *connection, const char *call) noexcept;
  ~PluginCallScope();
  PluginCallScope(const PluginCallScope &) = delete;
  PluginCallScope &operator=(const PluginCallScope &) = delete;

 private:
  const char *previous_plugin_, *previous_connection_, *previous_call_;
};

// Installs the handler for SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGABRT. `marker_path` (may be
// empty) receives the line as well; it is created now, empty. The handler then lets the signal
// take its default course (core dump, non-zero exit), so `Restart=on-failure` still applies.
// Called again, it replaces the marker (the previous one is closed; empty: stderr only). False
// when `marker_path` could not be opened (its directory does not exist, say).
bool install(const std::string &marker_path);

// Like install, but an existing marker is left as it is: the handler itself creates (or replaces)
// `marker_path` when a fatal signal arrives. For `crmhost validate`, which loads the plugins too
// and runs before `run` (the unit's ExecStartPre): the line a crashed `run` left must survive it
// for the next start to say, and a crash during validate is recorded for that start all the same.
void install_keeping_marker(const std::string &marker_path);

// The line a previous process left in `marker_path`, if it crashed; the file is emptied.
std::optional<std::string> take_previous(const std::string &marker_path);

// The marker file for a host: $STATE_DIRECTORY/last-crash under systemd, else beside an SQLite
// database (`state.db.last-crash`; pass an empty path for PostgreSQL), else empty (the line goes to
// stderr only).
std::string marker_path_for(const std::filesystem::path &sqlite_database);

}  // namespace crmhost::crash
