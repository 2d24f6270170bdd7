// The smallest useful SDK connector: it answers check and nothing else.
#include <crmhost/plugin.hpp>

class HelloConnector : public crmhost::sdk::Connector {
 public:
  HelloConnector(crm_host_instance *instance, const rapidjson::Value &) : Connector(instance) {}
  static std::string describe() {
    return R"({"name":"hello-sdk","objects":[{"name":"contact"}],"capabilities":["check"]})";
  }
  crm_status check(rapidjson::Document &result) override {
    result.AddMember("ok", true, result.GetAllocator());
    return CRM_OK;
  }
};

CRMHOST_SDK_PLUGIN(HelloConnector, "hello-sdk", "0.1.0", "Example Ltd")
