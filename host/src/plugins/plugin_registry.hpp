#pragma once
// All plugins of a host, keyed by id; refused files are kept with their reasons.
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "plugins/plugin_library.hpp"

namespace crmhost::plugins {

class PluginRegistry {
 public:
  explicit PluginRegistry(
      std::shared_ptr<HostServices> services = std::make_shared<HostServices>());

  // Loads every shared library (*.so) in `dir`, in name order. A missing directory is one
  // refusal; each bad file is another; the good ones load regardless. Called again, it loads
  // only new files (and retries refused ones): plugins already loaded stay as they are.
  void load_directory(const std::filesystem::path &dir);
  // Loads one file, whatever its name.
  void load_file(const std::filesystem::path &file);

  // Copies: a reload may load more plugins meanwhile (on the control thread).
  std::vector<std::shared_ptr<PluginLibrary>> plugins() const;
  std::vector<LoadRefusal> refusals() const;
  std::shared_ptr<PluginLibrary> find(const std::string &id) const;

 private:
  void load_file_locked(const std::filesystem::path &file);
  std::shared_ptr<PluginLibrary> find_locked(const std::string &id) const;

  mutable std::mutex mutex_;
  std::shared_ptr<HostServices> services_;
  std::vector<std::shared_ptr<PluginLibrary>> plugins_;
  std::vector<LoadRefusal> refusals_;
};

}  // namespace crmhost::plugins
