// The examples are programs users copy from: run them against a real server.

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "support/redis_server.hpp"

using streamfleet::test::RedisServer;

namespace {
int run_example(const char* name, const RedisServer& rs) {
    const char* dir = std::getenv("SF_EXAMPLES_DIR");
    REQUIRE(dir != nullptr);
    std::string cmd = std::string(dir) + "/" + name + " --redis " + rs.url() + " > /dev/null";
    int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
}  // namespace

TEST_CASE("quickstart runs client and server end to end") {
    RedisServer rs;
    CHECK(run_example("quickstart", rs) == 0);
}

TEST_CASE("typed_payload round-trips a struct through a task") {
    RedisServer rs;
    CHECK(run_example("typed_payload", rs) == 0);
}
