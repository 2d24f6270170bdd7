#pragma once
// One loaded plugin shared library: version negotiated, initialised, described.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <boost/dll/shared_library.hpp>

#include "crmhost/plugin.h"
#include "plugins/call_error.hpp"
#include "plugins/description.hpp"
#include "plugins/host_services.hpp"

namespace crmhost::plugins {

class Connector;

struct PluginInfo {
  std::string id;
  std::string version;
  std::string vendor;
  std::filesystem::path path;
  uint32_t built_abi = 0;       // the CRM_ABI_VERSION the plugin was compiled with
  uint32_t negotiated_abi = 0;  // the version host and plugin agreed to speak
  std::vector<std::string> interfaces;
  PluginDescription description;
};

// "1.0.0"
std::string format_version(uint32_t abi_version);

// Every plugin call it makes is [control] (plugin.h): the entry function, negotiate, init and
// describe while loading, create, and deinit when the last reference drops. Debug (asan preset)
// builds assert that they run on the control thread (control::on_control_thread(): in a process
// with no control thread, such as `crmhost validate` or a test driving a plugin without an
// engine, every thread is one). So once an engine runs, load plugins on its control thread
// (Engine::post_control), and let the registry outlive the engine.
class PluginLibrary : public std::enable_shared_from_this<PluginLibrary> {
 public:
  ~PluginLibrary();  // [control] deinit
  PluginLibrary(const PluginLibrary &) = delete;
  PluginLibrary &operator=(const PluginLibrary &) = delete;

  const PluginInfo &info() const { return info_; }
  const std::string &id() const { return info_.id; }
  const PluginDescription &description() const { return info_.description; }
  // Whether the plugin offers crm.maintenance.v1 (periodic upkeep of its connections).
  bool maintains() const { return maintenance_.maintain != nullptr; }

  // [control] Creates a connector for `connection` from its settings (a JSON object). The
  // connector keeps this library loaded for as long as it lives.
  Outcome<std::unique_ptr<Connector>> create_connector(const std::string &connection,
                                                       const std::string &settings_json) const;

 private:
  friend class Connector;
  friend struct Loader;
  PluginLibrary() = default;

  // Declared first so it is destroyed last: the code must stay mapped until deinit returns.
  boost::dll::shared_library library_;
  crm_plugin_entry entry_{};
  crm_connector_v1 connector_{};
  uint32_t connector_size_ = 0;       // struct_size of the plugin's table, for optional fields
  crm_maintenance_v1 maintenance_{};  // zeroed when the plugin does not offer it
  PluginHostContext context_;
  crm_host_api host_api_{};
  bool initialised_ = false;
  PluginInfo info_;
  mutable std::mutex control_mutex_;  // [control] calls never run concurrently
};

// Why a file was not loaded: one line naming the file, the reason and what to do.
struct LoadRefusal {
  std::filesystem::path path;
  std::string reason;
  bool missing_directory = false;  // the plugin directory itself could not be read
  std::string to_string() const;
};

using LoadResult = std::variant<std::shared_ptr<PluginLibrary>, LoadRefusal>;

// Answers the path of an already loaded plugin with this id, if any.
using IdLookup = std::function<std::optional<std::filesystem::path>(const std::string &id)>;

// [control] Loads, negotiates, initialises and describes one plugin file. Never throws; a plugin
// that fails any step is unloaded again and reported as a LoadRefusal.
LoadResult load_plugin(const std::filesystem::path &file, std::shared_ptr<HostServices> services,
                       const IdLookup &loaded_id = {});

}  // namespace crmhost::plugins
