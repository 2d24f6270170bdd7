#include "plugins/plugin_library.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <regex>

#include <boost/dll/shared_library_load_mode.hpp>

#include "plugins/connector.hpp"
#include "util/control_thread.hpp"
#include "util/crash.hpp"

namespace crmhost::plugins {

std::string format_version(uint32_t v) {
  return std::to_string(CRM_VERSION_MAJOR(v)) + "." + std::to_string(CRM_VERSION_MINOR(v)) + "." +
         std::to_string(CRM_VERSION_PATCH(v));
}

std::string LoadRefusal::to_string() const {
  return path.string() + ": " + reason;
}

namespace {

// Copies a plugin-owned struct of `size` bytes into a zeroed one of ours (the growth rule).
template <class T>
T copy_struct(const T *source) {
  T copy{};
  std::memcpy(&copy, source, std::min<size_t>(source->struct_size, sizeof(T)));
  copy.struct_size = std::min<uint32_t>(source->struct_size, sizeof(T));
  return copy;
}

bool is_valid_id(const char *id) {
  static const std::regex pattern("[a-z0-9][a-z0-9_.-]{0,63}");
  return id && std::regex_match(id, pattern);
}

struct StringSink {
  std::string text;
  bool emitted = false;
  crm_sink sink{sizeof(crm_sink), 0, this, &StringSink::emit};
  static crm_status emit(crm_sink *s, crm_str data) {
    auto *self = static_cast<StringSink *>(s->user_data);
    if (self->emitted) return CRM_ERR_INVALID_INPUT;
    self->text.assign(data.ptr ? data.ptr : "", data.len);
    self->emitted = true;
    return CRM_OK;
  }
};

// Boost wraps dlerror() in boilerplate; keep the part that says what is wrong.
std::string loader_message(const std::string &what) {
  const std::string marker = "dlerror system message: ";
  const auto begin = what.find(marker);
  if (begin == std::string::npos) return what;
  const auto end = what.rfind("): ");
  return what.substr(begin + marker.size(), end == std::string::npos || end < begin
                                                ? std::string::npos
                                                : end - begin - marker.size());
}

crm_error new_error() {
  crm_error err{};
  err.struct_size = sizeof err;
  err.retryable = -1;
  return err;
}

std::string message_of(const crm_error &err) {
  return std::string(err.message, strnlen(err.message, sizeof err.message));
}

}  // namespace

struct Loader {
  std::filesystem::path file;
  std::shared_ptr<HostServices> services;
  const IdLookup &loaded_id;

  LoadRefusal refuse(std::string reason) const { return LoadRefusal{file, std::move(reason)}; }

  LoadResult load() {
    // The entry function, negotiate, init, get_interface and describe are [control] calls; a
    // refused plugin's deinit (its destructor, below) runs here too.
    assert(control::on_control_thread() &&
           "loading a plugin (negotiate, init, describe) is [control]: load it on the control "
           "thread");
    auto plugin = std::shared_ptr<PluginLibrary>(new PluginLibrary());
    plugin->info_.path = file;
    try {
      plugin->library_.load(boost::dll::fs::path(file.string()),
                            boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception &e) {
      return refuse("not a loadable shared library (" + loader_message(e.what()) +
                    "); remove it from the plugin directory or rebuild it for this platform");
    }
    if (!plugin->library_.has(CRM_ENTRY_SYMBOL))
      return refuse("no " CRM_ENTRY_SYMBOL
                    "() entry function; export it with CRM_EXPORT as plugin-api/README.md shows");
    auto get_entry = plugin->library_.get<const crm_plugin_entry *()>(CRM_ENTRY_SYMBOL);
    const crm_plugin_entry *raw = get_entry();
    if (!raw || raw->struct_size < offsetof(crm_plugin_entry, id))
      return refuse(
          "the entry function returned no valid crm_plugin_entry; rebuild against plugin.h");
    if (auto refusal = check_versions(*plugin, raw)) return *refusal;
    if (auto refusal = check_identity(*plugin)) return *refusal;
    if (auto refusal = initialise(*plugin)) return *refusal;
    if (auto refusal = bind_connector(*plugin)) return *refusal;
    if (auto refusal = describe(*plugin)) return *refusal;
    return plugin;
  }

  std::optional<LoadRefusal> check_versions(PluginLibrary &plugin, const crm_plugin_entry *raw) {
    const uint32_t host = CRM_ABI_VERSION;
    const uint32_t built = raw->abi_version;
    plugin.info_.built_abi = built;
    if (CRM_VERSION_MAJOR(built) != CRM_VERSION_MAJOR(host))
      return refuse("built for plugin ABI " + format_version(built) + " but this host speaks ABI " +
                    format_version(host) + " (majors must match); rebuild the plugin against " +
                    "crmhost-plugin-api " + std::to_string(CRM_VERSION_MAJOR(host)) +
                    ".x or run a crmhost of ABI major " + std::to_string(CRM_VERSION_MAJOR(built)));
    // Only now is the layout known to be ours, so the rest of the entry can be read.
    plugin.entry_ = copy_struct(raw);
    uint32_t agreed = CRM_VERSION_MINOR(built) <= CRM_VERSION_MINOR(host) ? built : host;
    bool compatible = CRM_VERSION_MINOR(built) <= CRM_VERSION_MINOR(host);
    if (CRM_HAS_FIELD(&plugin.entry_, crm_plugin_entry, negotiate) && plugin.entry_.negotiate) {
      agreed = host;
      compatible = plugin.entry_.negotiate(&agreed) == CRM_OK;
    }
    if (!compatible || CRM_VERSION_MAJOR(agreed) != CRM_VERSION_MAJOR(host) ||
        CRM_VERSION_MINOR(agreed) > CRM_VERSION_MINOR(host)) {
      const uint32_t needed = compatible ? agreed : std::max(agreed, built);
      return refuse("needs plugin ABI " + format_version(needed) + ", newer than this host's " +
                    format_version(host) + "; upgrade crmhost or use a build of the plugin made " +
                    "for ABI " + std::to_string(CRM_VERSION_MAJOR(host)) + "." +
                    std::to_string(CRM_VERSION_MINOR(host)));
    }
    plugin.info_.negotiated_abi = agreed;
    return std::nullopt;
  }

  std::optional<LoadRefusal> check_identity(PluginLibrary &plugin) {
    const crm_plugin_entry &e = plugin.entry_;
    if (!CRM_HAS_FIELD(&e, crm_plugin_entry, get_interface))
      return refuse("crm_plugin_entry is truncated (struct_size " + std::to_string(e.struct_size) +
                    "); rebuild against plugin.h");
    if (!is_valid_id(e.id))
      return refuse(
          "plugin id must match [a-z0-9][a-z0-9_.-]* (at most 64 characters); fix the "
          "id in crm_plugin_entry");
    plugin.info_.id = e.id;
    plugin.info_.version = e.version ? e.version : "";
    plugin.info_.vendor = e.vendor ? e.vendor : "";
    if (!e.init || !e.get_interface)
      return refuse(std::string("crm_plugin_entry lacks the required function ") +
                    (e.init ? "get_interface" : "init") +
                    "; implement it (see plugin-api/README.md)");
    if (loaded_id) {
      if (auto other = loaded_id(plugin.info_.id))
        return refuse("plugin id '" + plugin.info_.id + "' is already provided by " +
                      other->string() + "; remove one of the two files");
    }
    return std::nullopt;
  }

  std::optional<LoadRefusal> initialise(PluginLibrary &plugin) {
    plugin.context_.plugin_id = plugin.info_.id;
    plugin.context_.services = services;
    plugin.host_api_ = make_host_api(&plugin.context_, plugin.info_.negotiated_abi);
    crm_error err = new_error();
    crash::PluginCallScope in_flight(plugin.info_.id.c_str(), "", "init");
    const crm_status status = normalize_status(plugin.entry_.init(&plugin.host_api_, &err));
    if (status < 0)
      return refuse(std::string("init failed (") + status_name(status) + "): " + message_of(err) +
                    "; see the plugin's documentation for what it needs");
    plugin.initialised_ = true;
    return std::nullopt;
  }

  std::optional<LoadRefusal> bind_connector(PluginLibrary &plugin) {
    const auto *table =
        static_cast<const crm_connector_v1 *>(plugin.entry_.get_interface(CRM_CONNECTOR_V1));
    if (!table)
      return refuse("provides no " CRM_CONNECTOR_V1 " interface; a plugin must implement it");
    plugin.connector_ = copy_struct(table);
    plugin.connector_size_ = plugin.connector_.struct_size;
    const crm_connector_v1 &c = plugin.connector_;
    const std::pair<const char *, bool> required[] = {
        {"describe", CRM_HAS_FIELD(&c, crm_connector_v1, describe) && c.describe},
        {"create", CRM_HAS_FIELD(&c, crm_connector_v1, create) && c.create},
        {"destroy", CRM_HAS_FIELD(&c, crm_connector_v1, destroy) && c.destroy},
        {"check", CRM_HAS_FIELD(&c, crm_connector_v1, check) && c.check}};
    for (const auto &[name, present] : required)
      if (!present)
        return refuse(std::string(CRM_CONNECTOR_V1 " lacks the required function ") + name +
                      "; implement it (see plugin-api/README.md)");
    if (const auto *upkeep = static_cast<const crm_maintenance_v1 *>(
            plugin.entry_.get_interface(CRM_MAINTENANCE_V1))) {
      if (!CRM_HAS_FIELD(upkeep, crm_maintenance_v1, maintain) || !upkeep->maintain)
        return refuse(CRM_MAINTENANCE_V1
                      " lacks its function maintain; implement it or do "
                      "not offer the interface");
      plugin.maintenance_ = copy_struct(upkeep);
    }
    for (const char *id : {CRM_CONNECTOR_V1, CRM_MAINTENANCE_V1})
      if (plugin.entry_.get_interface(id)) plugin.info_.interfaces.emplace_back(id);
    return std::nullopt;
  }

  std::optional<LoadRefusal> describe(PluginLibrary &plugin) {
    StringSink out;
    crm_error err = new_error();
    crash::PluginCallScope in_flight(plugin.info_.id.c_str(), "", "describe");
    const crm_status status = normalize_status(plugin.connector_.describe(&out.sink, &err));
    if (status < 0)
      return refuse(std::string("describe failed (") + status_name(status) +
                    "): " + message_of(err) + "; fix the plugin");
    std::string error;
    auto description = parse_description(out.text, error);
    if (!description) return refuse("describe returned an invalid description: " + error);
    const crm_connector_v1 &c = plugin.connector_;
    const std::pair<const char *, bool> optional_calls[] = {
        {"poll", CRM_HAS_FIELD(&c, crm_connector_v1, poll) && c.poll},
        {"fetch", CRM_HAS_FIELD(&c, crm_connector_v1, fetch) && c.fetch},
        {"push", CRM_HAS_FIELD(&c, crm_connector_v1, push) && c.push},
        {"webhook", CRM_HAS_FIELD(&c, crm_connector_v1, webhook) && c.webhook},
        {"cancel", CRM_HAS_FIELD(&c, crm_connector_v1, cancel) && c.cancel}};
    for (const auto &[name, present] : optional_calls)
      if (description->has_capability(name) && !present)
        return refuse(std::string("declares the capability \"") + name + "\" but " +
                      CRM_CONNECTOR_V1 " lacks the function " + name + "; implement it or " +
                      "drop the capability");
    plugin.info_.description = std::move(*description);
    return std::nullopt;
  }
};

LoadResult load_plugin(const std::filesystem::path &file, std::shared_ptr<HostServices> services,
                       const IdLookup &loaded_id) {
  try {
    return Loader{file, services ? std::move(services) : std::make_shared<HostServices>(),
                  loaded_id}
        .load();
  } catch (const std::exception &e) {
    return LoadRefusal{file, std::string("could not be loaded: ") + e.what()};
  } catch (...) {
    return LoadRefusal{file,
                       "an exception escaped through the C ABI while loading; fix the plugin"};
  }
}

PluginLibrary::~PluginLibrary() {
  // The last reference is the registry's or a connector's (destroyed on the control thread): a
  // registry outlives the engine that uses it, and is dropped once the control thread is gone.
  assert((!initialised_ || control::on_control_thread()) &&
         "deinit is a [control] call: drop the last reference on the control thread");
  std::lock_guard lock(control_mutex_);
  if (initialised_ && CRM_HAS_FIELD(&entry_, crm_plugin_entry, deinit) && entry_.deinit)
    entry_.deinit();
}

Outcome<std::unique_ptr<Connector>> PluginLibrary::create_connector(
    const std::string &connection, const std::string &settings_json) const {
  assert(control::on_control_thread() &&
         "create is a [control] call: run it on the control thread");
  auto host = std::make_unique<crm_host_instance>();
  host->plugin_id = info_.id;
  host->connection = connection;
  host->services = context_.services;
  crm_connector *handle = nullptr;
  crm_error err = new_error();
  crm_status status;
  try {
    std::lock_guard lock(control_mutex_);
    crash::PluginCallScope in_flight(info_.id.c_str(), host->connection.c_str(), "create");
    status = normalize_status(connector_.create(
        host.get(), crm_str{settings_json.data(), settings_json.size()}, &handle, &err));
  } catch (...) {
    return CallError{CRM_ERR_INTERNAL, 0, 0, false,
                     "plugin " + info_.id + ": an exception escaped create() through the C ABI"};
  }
  if (status < 0 || !handle) {
    CallError error;
    error.code = status < 0 ? status : CRM_ERR_INTERNAL;
    error.http_status = err.http_status;
    error.retryable = err.retryable == -1 ? default_retryable(error.code) : err.retryable == 1;
    error.message = status < 0 ? message_of(err) : "create returned ok but no connector";
    return error;
  }
  return std::unique_ptr<Connector>(new Connector(shared_from_this(), std::move(host), handle));
}

}  // namespace crmhost::plugins
