// The examples are programs users copy from: run them against a real server.

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
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

TEST_CASE("order_timeout: the paid order's timeout is canceled, the unpaid one fires") {
    RedisServer rs;
    CHECK(run_example("order_timeout", rs) == 0);
}

TEST_CASE("the benchmark binary runs and reports every key (smoke test, no timing asserted)") {
    RedisServer rs;
    const char* dir = std::getenv("SF_BENCH_DIR");
    REQUIRE(dir != nullptr);
    std::string out = rs.dir() + "/bench.json";
    std::string cmd = std::string(dir) + "/streamfleet_bench --redis " + rs.url() +
                      " --scenario e2e --tasks 1000 --concurrency 4 --tracked > " + out;
    REQUIRE(std::system(cmd.c_str()) == 0);
    std::ifstream in(out);
    std::string json((std::istreambuf_iterator<char>(in)), {});
    for (const char* key :
         {"\"scenario\":\"e2e\"", "\"tasks\":1000", "\"tasks_per_s\":", "\"lat_p50_ms\":",
          "\"lat_p99_ms\":", "\"max_rss_kb\":", "\"redis_cpu_us_per_task\":"}) {
        CAPTURE(key);
        CHECK(json.find(key) != std::string::npos);
    }
    std::string bad = std::string(dir) + "/streamfleet_bench --redis " + rs.url() +
                      " --scenario nope --tasks 1 --concurrency 1 2>/dev/null";
    CHECK(std::system(bad.c_str()) != 0);
}
