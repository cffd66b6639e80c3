// Dead-letter operations (Inspector and CLI) and dead-letter retention,
// against a real redis-server.

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "streamfleet/streamfleet.hpp"
#include "support/redis_server.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using streamfleet::test::eventually;
using streamfleet::test::RedisServer;
using streamfleet::test::TestConn;

using streamfleet::test::shell;

TEST_CASE(
    "dead letters keep their error and retries, and can be requeued one by one, all, or purged") {
    RedisServer rs;
    std::mutex m;
    std::map<std::string, int> runs;
    std::atomic<bool> healed{false};
    Server server({.redis = rs.url(), .id = "w1", .concurrency = 4, .read_block = 500ms});
    server.handle("jobs", [&](TaskContext& t) -> Outcome {
        std::lock_guard lock(m);
        ++runs[std::string(t.data())];
        if (healed) return Outcome::success();
        return Outcome::failure("boom " + std::string(t.data()));
    });
    server.start();
    Client client({.redis = rs.url()}, {"jobs"});
    std::vector<TaskId> ids;
    for (int i = 0; i < 5; ++i)
        ids.push_back(client.enqueue("jobs", "t" + std::to_string(i), {.max_retries = 1}));
    Inspector inspector(rs.url());
    REQUIRE(eventually([&] { return inspector.stats("jobs").dead == 5; }));

    auto letters = inspector.dead_letters("jobs");
    REQUIRE(letters.size() == 5);
    std::set<std::string> dead_ids;
    for (const auto& d : letters) {
        dead_ids.insert(d.id);
        CHECK(d.error == "boom " + d.data);
        CHECK(d.retries == 1);
        CHECK(d.died_at_ms > 0);
        REQUIRE(d.history.size() == 2);  // both failed runs
        CHECK(d.history[0].ends_with(" boom " + d.data));
        CHECK(d.history[1].ends_with(" boom " + d.data));
    }
    CHECK(dead_ids == std::set<std::string>(ids.begin(), ids.end()));
    // Paging.
    auto first = inspector.dead_letters("jobs", 2);
    REQUIRE(first.size() == 2);
    auto rest = inspector.dead_letters("jobs", 10, first.back().entry_id);
    CHECK(rest.size() == 3);

    healed = true;
    CHECK_FALSE(inspector.requeue_dead("jobs", "no-such-task"));
    REQUIRE(inspector.requeue_dead("jobs", ids[0]));
    CHECK_FALSE(inspector.requeue_dead("jobs", ids[0]));  // gone from the dead letters
    REQUIRE(eventually([&] {
        std::lock_guard l(m);
        return runs["t0"] == 3;
    }));
    CHECK(inspector.stats("jobs").dead == 4);

    // The CLI sees the same letters, as JSON lines.
    auto cli = streamfleet::test::cli_path();
    auto [json, rc] = shell(cli + " dead list --redis " + rs.url() + " --queue jobs --json");
    CHECK(rc == 0);
    CHECK(std::count(json.begin(), json.end(), '\n') == 4);
    CHECK(json.find("\"error\":\"boom t1\"") != std::string::npos);
    CHECK(json.find("\"retries\":1") != std::string::npos);
    CHECK(json.find("\"history\":[\"") != std::string::npos);
    auto [none, rc2] =
        shell(cli + " dead requeue --redis " + rs.url() + " --queue jobs --id nope 2>&1");
    CHECK(rc2 == 1);
    CHECK(none.find("no dead letter of task nope") != std::string::npos);
    auto [one, rc3] =
        shell(cli + " dead requeue --redis " + rs.url() + " --queue jobs --id " + ids[1]);
    CHECK(rc3 == 0);
    auto [all, rc4] = shell(cli + " dead requeue --redis " + rs.url() + " --queue jobs --all");
    CHECK(rc4 == 0);
    CHECK(all == "3\n");
    REQUIRE(eventually([&] {
        std::lock_guard l(m);
        for (int i = 0; i < 5; ++i) {
            if (runs["t" + std::to_string(i)] != 3) return false;
        }
        return true;
    }));
    CHECK(inspector.stats("jobs").dead == 0);

    // Purge.
    healed = false;
    for (int i = 0; i < 3; ++i) client.enqueue("jobs", "p" + std::to_string(i), {.max_retries = 1});
    REQUIRE(eventually([&] { return inspector.stats("jobs").dead == 3; }));
    auto [purged, rc5] = shell(cli + " dead purge --redis " + rs.url() + " --queue jobs");
    CHECK(rc5 == 0);
    CHECK(purged == "3\n");
    CHECK(inspector.stats("jobs").dead == 0);
    auto [usage, rc6] = shell(cli + " dead requeue --redis " + rs.url() + " --queue jobs 2>&1");
    CHECK(rc6 == 2);
    CHECK(usage.find("exactly one of --id ID and --all") != std::string::npos);
    server.shutdown(5s);
}

TEST_CASE("dead-letter retention bounds P{Q}:dead by count and by age") {
    RedisServer rs;
    TestConn c(rs.url());
    // 1,000 dead letters written directly, as a long-running server would have.
    for (int i = 0; i < 1000; ++i) {
        REQUIRE(c.cmd({"XADD", "streamfleet:{jobs}:dead", "*", "id", std::to_string(i), "x_error",
                       "old"})
                    .ok());
    }
    {
        // The janitor runs every orphan_timeout / 2 (at least 100 ms).
        Server server({.redis = rs.url(),
                       .id = "w1",
                       .concurrency = 1,
                       .read_block = 500ms,
                       .orphan_timeout = 200ms,
                       .dead_max = 150});
        server.handle("jobs", [](TaskContext&) {});
        server.start();
        // Approximate trimming keeps whole stream nodes (100 entries each).
        REQUIRE(eventually([&] {
            return c.cmd({"XLEN", "streamfleet:{jobs}:dead"}).value().integer() <= 250;
        }));
        CHECK(c.cmd({"XLEN", "streamfleet:{jobs}:dead"}).value().integer() >= 150);
        server.shutdown(5s);
    }
    std::this_thread::sleep_for(50ms);
    {
        Server server({.redis = rs.url(),
                       .id = "w2",
                       .concurrency = 1,
                       .read_block = 500ms,
                       .orphan_timeout = 200ms,
                       .dead_max = 0,
                       .dead_max_age = 10ms});
        server.handle("jobs", [](TaskContext&) {});
        server.start();
        REQUIRE(eventually([&] {
            return c.cmd({"XLEN", "streamfleet:{jobs}:dead"}).value().integer() < 100;
        }));
        server.shutdown(5s);
    }
}
