#include <algorithm>
#include <ostream>

#include <rapidjson/document.h>

#include "cli/cli.hpp"
#include "plugins/plugin_registry.hpp"
#include "util/json.hpp"

namespace crmhost::cli {

namespace {

std::string join(const std::vector<std::string> &items) {
  std::string out;
  for (const auto &item : items) out += (out.empty() ? "" : ",") + item;
  return out.empty() ? "-" : out;
}

std::vector<std::string> object_names(const plugins::PluginDescription &d) {
  std::vector<std::string> names;
  for (const auto &o : d.objects) names.push_back(o.name);
  return names;
}

rapidjson::Value string_array(const std::vector<std::string> &items,
                              rapidjson::Document::AllocatorType &alloc) {
  rapidjson::Value array(rapidjson::kArrayType);
  for (const auto &item : items) array.PushBack(rapidjson::Value(item.c_str(), alloc), alloc);
  return array;
}

void print_json(const plugins::PluginRegistry &registry, std::ostream &out) {
  rapidjson::Document doc(rapidjson::kObjectType);
  auto &alloc = doc.GetAllocator();
  rapidjson::Value loaded(rapidjson::kArrayType);
  for (const auto &plugin : registry.plugins()) {
    const auto &info = plugin->info();
    rapidjson::Value p(rapidjson::kObjectType);
    p.AddMember("id", rapidjson::Value(info.id.c_str(), alloc), alloc);
    p.AddMember("version", rapidjson::Value(info.version.c_str(), alloc), alloc);
    p.AddMember("vendor", rapidjson::Value(info.vendor.c_str(), alloc), alloc);
    p.AddMember("abi_version",
                rapidjson::Value(plugins::format_version(info.negotiated_abi).c_str(), alloc),
                alloc);
    p.AddMember("built_abi_version",
                rapidjson::Value(plugins::format_version(info.built_abi).c_str(), alloc), alloc);
    p.AddMember("interfaces", string_array(info.interfaces, alloc), alloc);
    p.AddMember("objects", string_array(object_names(info.description), alloc), alloc);
    p.AddMember("capabilities", string_array(info.description.capabilities, alloc), alloc);
    p.AddMember("push_modes", string_array(info.description.push_modes, alloc), alloc);
    p.AddMember("max_batch", info.description.max_batch, alloc);
    p.AddMember("path", rapidjson::Value(info.path.string().c_str(), alloc), alloc);
    loaded.PushBack(p, alloc);
  }
  rapidjson::Value refused(rapidjson::kArrayType);
  for (const auto &refusal : registry.refusals()) {
    rapidjson::Value r(rapidjson::kObjectType);
    r.AddMember("path", rapidjson::Value(refusal.path.string().c_str(), alloc), alloc);
    r.AddMember("reason", rapidjson::Value(refusal.reason.c_str(), alloc), alloc);
    refused.PushBack(r, alloc);
  }
  doc.AddMember("plugins", loaded, alloc);
  doc.AddMember("refused", refused, alloc);
  out << json::to_pretty_string(doc) << "\n";
}

void print_table(const plugins::PluginRegistry &registry, std::ostream &out) {
  std::vector<std::vector<std::string>> rows = {
      {"ID", "VERSION", "VENDOR", "ABI", "INTERFACES", "OBJECTS", "CAPABILITIES", "FILE"}};
  for (const auto &plugin : registry.plugins()) {
    const auto &info = plugin->info();
    rows.push_back({info.id, info.version, info.vendor,
                    plugins::format_version(info.negotiated_abi), join(info.interfaces),
                    join(object_names(info.description)), join(info.description.capabilities),
                    info.path.string()});
  }
  std::vector<size_t> widths(rows.front().size(), 0);
  for (const auto &row : rows)
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  for (const auto &row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      out << row[i];
      if (i + 1 < row.size()) out << std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << "\n";
  }
  if (!registry.refusals().empty()) {
    out << "\nrefused:\n";
    for (const auto &refusal : registry.refusals()) out << "  " << refusal.to_string() << "\n";
  }
}

}  // namespace

int plugins_command(const std::vector<std::string> &args, std::ostream &out, std::ostream &err) {
  std::string dir;
  bool as_json = false;
  std::vector<std::string> files;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--json") {
      as_json = true;
    } else if (args[i] == "--plugin-dir") {
      if (i + 1 == args.size()) {
        err << "crmhost plugins: --plugin-dir needs a directory\n";
        return 2;
      }
      dir = args[++i];
    } else if (args[i].rfind("--plugin-dir=", 0) == 0) {
      dir = args[i].substr(13);
    } else if (!args[i].empty() && args[i][0] == '-') {
      err << "crmhost plugins: unknown option '" << args[i] << "'\n";
      return 2;
    } else {
      files.push_back(args[i]);
    }
  }
  plugins::PluginRegistry registry;
  // Named files alone list just those; otherwise (or with --plugin-dir) the directory too.
  if (!dir.empty() || files.empty())
    registry.load_directory(dir.empty() ? default_plugin_dir() : dir);
  for (const auto &file : files) registry.load_file(file);
  if (as_json)
    print_json(registry, out);
  else
    print_table(registry, out);
  return registry.refusals().empty() ? 0 : 1;
}

}  // namespace crmhost::cli
