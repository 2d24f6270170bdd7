#pragma once
// Requests handed to a plugin as raw JSON, past the host's adapter, which does not send every
// request member the plugins honour (push's match_normalize). The host must have loaded the
// library already (so init ran with the host's services); this opens it once more, creates a
// connector of its own behind a host instance made as the host makes them, and calls it.
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <dlfcn.h>

#include <rapidjson/document.h>

#include "plugins/connector.hpp"
#include "plugins/host_services.hpp"

namespace crmhost::testing {

struct RawResult {
  crm_status status = CRM_OK;
  std::string json;     // the emitted document, when status >= 0
  std::string message;  // crm_error.message, when status < 0

  // The "results" entries, read as the host reads them; empty when there are none.
  std::vector<plugins::PushResult> results() const {
    std::vector<plugins::PushResult> out;
    rapidjson::Document doc;
    doc.Parse(json.data(), json.size());
    if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("results") ||
        !doc["results"].IsArray())
      return out;
    const auto text = [](const rapidjson::Value &v, const char *key) {
      const auto it = v.FindMember(key);
      return it != v.MemberEnd() && it->value.IsString() ? std::string(it->value.GetString())
                                                         : std::string();
    };
    const auto flag = [](const rapidjson::Value &v, const char *key) {
      const auto it = v.FindMember(key);
      return it != v.MemberEnd() && it->value.IsBool() && it->value.GetBool();
    };
    for (const auto &r : doc["results"].GetArray()) {
      plugins::PushResult result;
      result.ref = text(r, "ref");
      result.ok = text(r, "status") == "ok";
      result.id = text(r, "id");
      result.created = flag(r, "created");
      result.code = text(r, "code");
      result.retryable = flag(r, "retryable");
      result.message = text(r, "message");
      out.push_back(std::move(result));
    }
    return out;
  }
};

class RawConnector {
 public:
  RawConnector(const std::filesystem::path &library, const std::string &plugin_id,
               std::shared_ptr<plugins::HostServices> services, const std::string &settings)
      : handle_(::dlopen(library.c_str(), RTLD_NOW | RTLD_NOLOAD)) {
    if (!handle_) throw std::runtime_error(library.string() + " is not loaded yet");
    const auto get_entry =
        reinterpret_cast<crm_plugin_get_entry_fn>(::dlsym(handle_, CRM_ENTRY_SYMBOL));
    vtable_ =
        get_entry
            ? static_cast<const crm_connector_v1 *>(get_entry()->get_interface(CRM_CONNECTOR_V1))
            : nullptr;
    if (!vtable_) {
      ::dlclose(handle_);
      throw std::runtime_error(library.string() + " has no crm.connector.v1");
    }
    instance_.plugin_id = plugin_id;
    instance_.connection = "raw-" + plugin_id;
    instance_.services = std::move(services);
    crm_error err = new_error();
    if (vtable_->create(&instance_, {settings.data(), settings.size()}, &connector_, &err) < 0) {
      ::dlclose(handle_);
      throw std::runtime_error(std::string("create failed: ") + err.message);
    }
  }
  ~RawConnector() {
    if (connector_) vtable_->destroy(connector_);
    ::dlclose(handle_);
  }
  RawConnector(const RawConnector &) = delete;
  RawConnector &operator=(const RawConnector &) = delete;

  RawResult push(const std::string &request) { return invoke(vtable_->push, request); }
  RawResult fetch(const std::string &request) { return invoke(vtable_->fetch, request); }
  RawResult poll(const std::string &request) { return invoke(vtable_->poll, request); }

 private:
  using Call = crm_status (*)(crm_connector *, crm_str, crm_sink *, crm_error *);

  RawResult invoke(Call call, const std::string &request) {
    RawResult result;
    crm_sink sink{sizeof(crm_sink), 0, &result.json, [](crm_sink *s, crm_str data) -> crm_status {
                    static_cast<std::string *>(s->user_data)->assign(data.ptr, data.len);
                    return CRM_OK;
                  }};
    crm_error err = new_error();
    result.status = call(connector_, {request.data(), request.size()}, &sink, &err);
    if (result.status < 0) result.message = err.message;
    return result;
  }

  static crm_error new_error() {
    crm_error err{};
    err.struct_size = sizeof err;
    return err;
  }

  void *handle_;
  const crm_connector_v1 *vtable_ = nullptr;
  crm_host_instance instance_;
  crm_connector *connector_ = nullptr;
};

}  // namespace crmhost::testing
