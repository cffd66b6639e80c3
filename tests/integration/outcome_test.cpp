// Outcomes that reach nobody and failures that repeat: a notification for a client that has gone
// must not leave a stream behind, and a task that always fails must not spin.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

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
using streamfleet::test::shell;
using streamfleet::test::TestConn;

namespace {

long long receiver_streams(TestConn& c) {
    return static_cast<long long>(c.cmd({"KEYS", "streamfleet:receiver:*"}).value().size());
}

// The queue has no entry left, pending or not: every outcome is written and acked.
bool drained(TestConn& c, const std::string& stream) {
    auto n = c.cmd({"XLEN", stream});
    return n.ok() && n->integer() == 0;
}

}  // namespace

TEST_CASE("a task finishing after its tracking client closed leaves no notification stream") {
    RedisServer rs;
    TestConn c(rs.url());
    std::atomic<bool> started{false}, release{false};
    std::atomic<int> runs{0};
    Server server(server_opts(rs));
    server.handle("jobs", [&](TaskContext&) {
        started = true;
        while (!release) std::this_thread::sleep_for(2ms);
        ++runs;
    });
    server.start();
    {
        Client client({.redis = rs.url()}, {"jobs"});
        auto h = client.enqueue_tracked("jobs", "x");
        REQUIRE(eventually([&] { return started.load(); }));
        CHECK(receiver_streams(c) == 1);  // the tracking client's, made when it opened
        client.close();
        CHECK(receiver_streams(c) == 0);
    }
    release = true;
    REQUIRE(eventually([&] { return runs == 1 && drained(c, "streamfleet:{jobs}"); }));
    REQUIRE(eventually([&] { return server.stats().succeeded == 1; }));
    std::this_thread::sleep_for(200ms);  // the notification, had it been sent, is in by now
    CHECK(receiver_streams(c) == 0);
    server.shutdown(5s);
}

TEST_CASE("a CLI enqueue --track that times out leaves no notification stream once the task ends") {
    RedisServer rs;
    TestConn c(rs.url());
    std::atomic<bool> release{false};
    std::atomic<int> runs{0};
    Server server(server_opts(rs));
    server.handle("jobs", [&](TaskContext&) {
        while (!release) std::this_thread::sleep_for(2ms);
        ++runs;
    });
    server.start();
    auto [out, rc] = shell(streamfleet::test::cli_path() + " enqueue --redis " + rs.url() +
                           " --queue jobs --data x --track --timeout-ms 300");
    CHECK(rc == 1);
    CHECK(out.find("timeout") != std::string::npos);
    CHECK(receiver_streams(c) == 0);
    release = true;
    REQUIRE(eventually([&] { return runs == 1 && drained(c, "streamfleet:{jobs}"); }));
    REQUIRE(eventually([&] { return server.stats().succeeded == 1; }));
    std::this_thread::sleep_for(200ms);
    CHECK(receiver_streams(c) == 0);
    server.shutdown(5s);
}

TEST_CASE("with default options a task that always fails backs off between retries") {
    RedisServer rs;
    std::atomic<int> runs{0}, eager_runs{0};
    Server server(server_opts(rs));
    server.handle("jobs", [&](TaskContext&) -> Outcome {
        ++runs;
        return Outcome::failure("always");
    });
    server.handle("eager", [&](TaskContext&) -> Outcome {
        ++eager_runs;
        return Outcome::failure("always");
    });
    server.start();
    Client client({.redis = rs.url()}, {"jobs", "eager"});
    auto id = client.enqueue("jobs", "x");  // max_retries 0: retried until it succeeds
    // Asked for explicitly: immediate retries, the user's choice.
    client.enqueue("eager", "y", {.max_retries = 50, .backoff = Backoff::fixed});
    REQUIRE(eventually([&] { return runs >= 2; }, 10s));  // it is retried
    std::this_thread::sleep_for(4s);
    // A busy loop ran it ~500 times in 4 s; backing off from ~1 s, doubling: at most a handful.
    MESSAGE("default policy: ", runs.load(), " runs in ~4-5 s; explicit fixed 0 ms: ",
            eager_runs.load(), " runs");
    CHECK(runs <= 6);
    // The explicit policy still wins: all its retries, at once.
    CHECK(eventually([&] { return eager_runs == 51; }, 10s));
    auto info = client.get("jobs", id);
    CHECK(info.error == "always");
    CHECK(info.retries >= 1);
    server.shutdown(5s);
}
