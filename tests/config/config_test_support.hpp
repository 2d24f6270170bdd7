#pragma once
// Temporary configuration files and problem listings for the config tests.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace crmhost::test {

class TempDir {
 public:
  TempDir() {
    std::random_device random;
    path_ = std::filesystem::temp_directory_path() /
            ("crmhost-config-test-" + std::to_string(random()) + std::to_string(random()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  const std::filesystem::path &path() const { return path_; }
  std::filesystem::path write(const std::string &name, const std::string &text) const {
    const auto file = path_ / name;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << text;
    return file;
  }

 private:
  std::filesystem::path path_;
};

// The problems as "c.yaml:1:2: message", with the temporary directory cut from every path.
inline std::vector<std::string> listing(const config::LoadResult &result,
                                        const std::filesystem::path &dir) {
  std::vector<std::string> out;
  const std::string prefix = dir.string() + "/";
  for (const auto &problem : result.problems) {
    std::string line = problem.to_string();
    for (size_t at; (at = line.find(prefix)) != std::string::npos;) line.erase(at, prefix.size());
    out.push_back(line);
  }
  return out;
}

// Loads `yaml` as c.yaml in a fresh directory.
inline std::vector<std::string> problems_of(const std::string &yaml,
                                            const plugins::PluginRegistry *registry = nullptr) {
  TempDir dir;
  const auto file = dir.write("c.yaml", yaml);
  return listing(config::load({file}, registry), dir.path());
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const char *value) : name_(std::move(name)) {
    if (const char *old = std::getenv(name_.c_str())) old_ = old;
    if (value)
      ::setenv(name_.c_str(), value, 1);
    else
      ::unsetenv(name_.c_str());
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace crmhost::test
