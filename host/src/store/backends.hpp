// Backend constructors, used by open_store().
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "store/store.hpp"

namespace crmhost::store {

std::unique_ptr<Store> open_sqlite_store(const std::filesystem::path &path,
                                         const StoreOptions &options);
std::unique_ptr<Store> open_postgresql_store(const std::string &conninfo,
                                             const StoreOptions &options);

}  // namespace crmhost::store
