#include "plugins/plugin_registry.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace crmhost::plugins {

PluginRegistry::PluginRegistry(std::shared_ptr<HostServices> services)
    : services_(std::move(services)) {}

void PluginRegistry::load_directory(const std::filesystem::path &dir) {
  std::lock_guard lock(mutex_);
  std::error_code ec;
  std::erase_if(refusals_,
                [&](const LoadRefusal &r) { return r.missing_directory && r.path == dir; });
  if (!std::filesystem::is_directory(dir, ec)) {
    refusals_.push_back({dir,
                         std::filesystem::exists(dir, ec)
                             ? "is not a readable directory; fix it, set plugin_dir or pass "
                               "--plugin-dir"
                             : "does not exist; create it, set plugin_dir or pass --plugin-dir",
                         true});
    return;
  }
  std::vector<std::filesystem::path> files;
  for (const auto &entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".so" && !entry.is_directory(ec)) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto &file : files) load_file_locked(file);
}

void PluginRegistry::load_file(const std::filesystem::path &file) {
  std::lock_guard lock(mutex_);
  load_file_locked(file);
}

void PluginRegistry::load_file_locked(const std::filesystem::path &file) {
  // A rescan (on reload) loads only files it has not loaded yet and retries refused ones.
  for (const auto &plugin : plugins_)
    if (plugin->info().path == file) return;
  std::erase_if(refusals_, [&](const LoadRefusal &r) { return r.path == file; });
  auto loaded_id = [this](const std::string &id) -> std::optional<std::filesystem::path> {
    if (auto existing = find_locked(id)) return existing->info().path;
    return std::nullopt;
  };
  auto result = load_plugin(file, services_, loaded_id);
  if (auto *refusal = std::get_if<LoadRefusal>(&result)) {
    spdlog::warn("plugin refused: {}", refusal->to_string());
    refusals_.push_back(std::move(*refusal));
    return;
  }
  auto plugin = std::get<std::shared_ptr<PluginLibrary>>(std::move(result));
  spdlog::debug("plugin {} {} loaded from {}", plugin->id(), plugin->info().version, file.string());
  plugins_.push_back(std::move(plugin));
}

std::vector<std::shared_ptr<PluginLibrary>> PluginRegistry::plugins() const {
  std::lock_guard lock(mutex_);
  return plugins_;
}

std::vector<LoadRefusal> PluginRegistry::refusals() const {
  std::lock_guard lock(mutex_);
  return refusals_;
}

std::shared_ptr<PluginLibrary> PluginRegistry::find(const std::string &id) const {
  std::lock_guard lock(mutex_);
  return find_locked(id);
}

std::shared_ptr<PluginLibrary> PluginRegistry::find_locked(const std::string &id) const {
  for (const auto &plugin : plugins_)
    if (plugin->id() == id) return plugin;
  return nullptr;
}

}  // namespace crmhost::plugins
