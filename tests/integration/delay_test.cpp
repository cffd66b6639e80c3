// Delayed and scheduled tasks, backoff and run timeouts, against a real
// redis-server. Timing bounds are generous (never early; late by less than a
// second), as the test machines are small and shared.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "streamfleet/streamfleet.hpp"
#include "support/redis_server.hpp"
#include "support/worker_options.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using streamfleet::test::eventually;
using streamfleet::test::RedisServer;
using streamfleet::test::server_opts;
using streamfleet::test::wall_ms;
using streamfleet::test::TestConn;

namespace {

}  // namespace

TEST_CASE("delayed and scheduled tasks never run early and are not late") {
    RedisServer rs;
    std::mutex m;
    std::map<std::string, std::int64_t> started;  // payload -> wall ms
    Server server(server_opts(rs, "w1", 8));
    server.handle("later", [&](TaskContext& t) {
        std::lock_guard lock(m);
        started.emplace(std::string(t.data()), wall_ms());
    });
    server.start();
    // Let the server's promoter settle into its idle re-check, so on-time
    // runs below need the nudge rather than a lucky timer.
    std::this_thread::sleep_for(300ms);
    Client client({.redis = rs.url()}, {"later"});
    std::map<std::string, std::int64_t> due;
    for (int i = 0; i < 40; ++i) {
        auto name = "d" + std::to_string(i);
        auto delay = std::chrono::milliseconds(150 + 17 * i);
        due[name] = wall_ms() + delay.count();
        client.enqueue("later", name, {.delay = delay});
    }
    auto at = std::chrono::system_clock::now() + 400ms;
    due["at"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
    client.enqueue("later", "at", {.run_at = at});
    // A due time in the past runs at once.
    client.enqueue("later", "past", {.run_at = std::chrono::system_clock::now() - 10s});
    REQUIRE(eventually(
        [&] {
            std::lock_guard l(m);
            return started.size() == due.size() + 1;
        },
        20s));
    std::lock_guard l(m);
    for (const auto& [name, d] : due) {
        CAPTURE(name);
        REQUIRE(started.count(name) == 1);
        // The client stamps due before the XADD and the server compares with
        // the same clock: a run before `d` would be an early firing.
        CHECK(started[name] >= d);
        CHECK(started[name] - d < 1000);
    }
    CHECK(started.count("past") == 1);
    server.shutdown(5s);
}

TEST_CASE("only a task that became the earliest nudges the promoters") {
    RedisServer rs;
    TestConn c(rs.url());
    Client client({.redis = rs.url()}, {"q"});
    client.enqueue("q", "far", {.delay = 60s});
    client.close(5s);
    CHECK(c.cmd({"XLEN", "streamfleet:{q}:nudge"}).value().integer() == 1);
    Client second({.redis = rs.url()}, {"q"});
    second.enqueue("q", "farther", {.delay = 120s});  // not the earliest: no nudge
    second.enqueue("q", "sooner", {.delay = 30s});    // the earliest now: nudge
    second.close(5s);
    CHECK(c.cmd({"XLEN", "streamfleet:{q}:nudge"}).value().integer() == 2);
    CHECK(c.cmd({"ZCARD", "streamfleet:{q}:delayed"}).value().integer() == 3);
    CHECK(c.cmd({"XLEN", "streamfleet:{q}"}).value().integer() == 0);
}

TEST_CASE("three servers promote concurrently: every delayed task runs exactly once") {
    RedisServer rs;
    std::mutex m;
    std::multiset<std::string> seen;
    std::vector<std::unique_ptr<Server>> servers;
    for (int s = 0; s < 3; ++s) {
        servers.push_back(std::make_unique<Server>(server_opts(rs, "w" + std::to_string(s), 8)));
        servers.back()->handle("many", [&](TaskContext& t) {
            std::lock_guard lock(m);
            seen.insert(std::string(t.data()));
        });
        servers.back()->start();
    }
    Client client({.redis = rs.url()}, {"many"});
    constexpr int kTasks = 3000;
    for (int i = 0; i < kTasks; ++i) {
        // Due over about a second, many in the same millisecond.
        client.enqueue("many", std::to_string(i),
                       {.delay = std::chrono::milliseconds(200 + i / 3)});
    }
    REQUIRE(eventually(
        [&] {
            std::lock_guard l(m);
            return seen.size() >= kTasks;
        },
        30s));
    std::this_thread::sleep_for(300ms);  // a double promotion would show up by now
    std::lock_guard l(m);
    CHECK(seen.size() == kTasks);
    CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == kTasks);
    for (auto& s : servers) s->shutdown(5s);
}

TEST_CASE("retry backoff follows its strategy and is never early") {
    RedisServer rs;
    std::mutex m;
    std::map<std::string, std::vector<std::int64_t>> runs;
    Server server(server_opts(rs, "w1", 8));
    server.handle("flaky", [&](TaskContext& t) -> Outcome {
        std::lock_guard lock(m);
        auto& v = runs[std::string(t.data())];
        v.push_back(wall_ms());
        if (v.size() < 4) return Outcome::failure("not yet");
        return Outcome::success();
    });
    server.start();
    Client client({.redis = rs.url()}, {"flaky"});
    auto linear = client.enqueue_tracked("flaky", "linear",
                                         {.retry_delay = 100ms, .backoff = Backoff::linear});
    auto capped = client.enqueue_tracked(
        "flaky", "capped",
        {.retry_delay = 100ms, .backoff = Backoff::linear, .backoff_max = 150ms});
    auto expo = client.enqueue_tracked("flaky", "expo",
                                       {.retry_delay = 50ms, .backoff = Backoff::exponential});
    for (auto* h : {&linear, &capped, &expo}) {
        auto out = h->wait_for(20s);
        REQUIRE(out);
        CHECK(out->status == TaskStatus::completed);
    }
    std::lock_guard l(m);
    auto gaps = [&](const std::string& k) {
        std::vector<std::int64_t> g;
        for (std::size_t i = 1; i < runs[k].size(); ++i) g.push_back(runs[k][i] - runs[k][i - 1]);
        return g;
    };
    auto lin = gaps("linear");
    REQUIRE(lin.size() == 3);
    CHECK(lin[0] >= 100);
    CHECK(lin[1] >= 200);
    CHECK(lin[2] >= 300);
    auto cap = gaps("capped");
    REQUIRE(cap.size() == 3);
    CHECK(cap[0] >= 100);
    CHECK(cap[2] >= 150);
    CHECK(cap[2] < 150 + 1000);  // capped, not 300
    auto ex = gaps("expo");
    REQUIRE(ex.size() == 3);
    for (auto g : ex) CHECK(g < 400 + 1000);  // full jitter stays under base × 2^n (+ slack)
    server.shutdown(5s);
}

TEST_CASE("a run past its run_timeout is canceled and counts as a failure, then retried") {
    RedisServer rs;
    std::atomic<int> calls{0};
    std::atomic<bool> first_saw_cancel{false};
    Server server(server_opts(rs, "w1", 8));
    server.handle("slow", [&](TaskContext& t) {
        if (++calls == 1) {
            // Hangs until canceled (or 10 s); then "succeeds", too late.
            auto until = std::chrono::steady_clock::now() + 10s;
            while (!t.canceled() && std::chrono::steady_clock::now() < until)
                std::this_thread::sleep_for(5ms);
            first_saw_cancel = t.canceled();
        }
    });
    server.start();
    Client client({.redis = rs.url()}, {"slow"});
    auto h = client.enqueue_tracked("slow", "x", {.max_retries = 2, .run_timeout = 200ms});
    auto out = h.wait_for(20s);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::completed);
    CHECK(calls == 2);
    CHECK(first_saw_cancel);
    CHECK(server.stats().retried == 1);
    // Without retries left, the timeout is the task's error.
    auto h2 = client.enqueue_tracked("slow", "y", {.max_retries = 1, .run_timeout = 100ms});
    calls = 0;
    auto out2 = h2.wait_for(20s);
    REQUIRE(out2);
    CHECK(out2->status == TaskStatus::completed);  // second run is fast
    server.shutdown(5s);
}

TEST_CASE("bad delay options are refused with the option named") {
    RedisServer rs;
    Client client({.redis = rs.url()}, {"q"});
    CHECK_THROWS_WITH_AS(client.enqueue("q", "x", {.delay = -1ms}), doctest::Contains("delay"),
                         InvalidArgument);
    CHECK_THROWS_WITH_AS(client.enqueue("q", "x", {.run_timeout = -5ms}),
                         doctest::Contains("run_timeout"), InvalidArgument);
    CHECK_THROWS_WITH_AS(
        client.enqueue(
            "q", "x",
            {.run_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(-1))}),
        doctest::Contains("run_at"), InvalidArgument);
}
