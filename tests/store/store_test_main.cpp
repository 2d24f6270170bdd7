// Runs the store suite against one backend: `store_test --backend sqlite|postgresql [catch args]`
// (or CRMHOST_STORE_BACKEND). The PostgreSQL run needs CRMHOST_TEST_PG_URI and fails without it,
// so a CI without a database cannot pass by skipping.
#define CATCH_CONFIG_RUNNER
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "store_test_support.hpp"

int main(int argc, char **argv) {
  using crmhost::store::test::TestBackend;
  std::string backend =
      std::getenv("CRMHOST_STORE_BACKEND") ? std::getenv("CRMHOST_STORE_BACKEND") : "sqlite";
  std::vector<char *> catch_args{argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
      backend = argv[++i];
    } else {
      catch_args.push_back(argv[i]);
    }
  }
  if (backend == "sqlite") {
    crmhost::store::test::set_backend(TestBackend::sqlite);
  } else if (backend == "postgresql") {
    if (crmhost::store::test::pg_test_uri().empty()) {
      std::cerr << "store_test: the PostgreSQL suite needs CRMHOST_TEST_PG_URI (run it through "
                   "scripts/with-postgres, e.g. scripts/with-postgres ctest -R store.postgresql)\n";
      return 2;
    }
    crmhost::store::test::set_backend(TestBackend::postgresql);
  } else {
    std::cerr << "store_test: unknown --backend '" << backend << "' (sqlite or postgresql)\n";
    return 2;
  }
  // Tests set keys explicitly; an ambient key must not change what they see.
  unsetenv("CRMHOST_SECRET_KEY");
  unsetenv("CRMHOST_SECRET_KEYS_OLD");
  spdlog::set_level(spdlog::level::warn);
  std::cerr << "store_test: backend " << backend << "\n";
  return Catch::Session().run(static_cast<int>(catch_args.size()), catch_args.data());
}
