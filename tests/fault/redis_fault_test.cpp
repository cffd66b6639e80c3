// The Redis layer when the server dies, restarts or freezes, with real signals.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "support/redis_server.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet::detail;
using namespace streamfleet::detail::redis;
using streamfleet::test::RedisServer;
using streamfleet::test::TestConn;

namespace {

// Records state edges from the loop thread for the test thread to inspect.
struct StateLog {
    std::mutex m;
    std::vector<ConnState> states;
    void attach(TestConn& c) {
        c.rt().call([&] {
            c.conn()->on_state([this](ConnState s, const Error*) {
                std::lock_guard lock(m);
                states.push_back(s);
            });
        });
    }
    std::vector<ConnState> snapshot() {
        std::lock_guard lock(m);
        return states;
    }
};

// Retries `argv` until it succeeds or `limit` passes; returns whether it did.
bool eventually_ok(TestConn& c, std::vector<std::string> argv, std::chrono::milliseconds limit) {
    return streamfleet::test::eventually([&] { return c.cmd(argv).ok(); }, limit);
}

}  // namespace

TEST_CASE("SIGKILL + restart: the connection comes back and later commands succeed") {
    RedisServer server({.aof = true});
    StateLog log;  // before the connection: its listener must outlive it
    TestConn c(server.url(), ConnectionOptions{.command_timeout = 2000ms, .reconnect_max = 500ms});
    log.attach(c);
    REQUIRE(c.cmd({"SET", "kept", "1"}).ok());
    auto before = c.rt().call([&] { return c.conn()->connects(); });

    server.kill();
    // While it is down a command fails (lost, timed out, or refused), but
    // exactly once and never by hanging.
    auto during = c.cmd({"GET", "kept"});
    CHECK_FALSE(during.ok());

    server.restart();
    REQUIRE(eventually_ok(c, {"PING"}, 10s));
    CHECK(c.cmd({"GET", "kept"}).value().str() == "1");  // AOF kept it
    CHECK(c.rt().call([&] { return c.conn()->connects(); }) > before);
    auto states = log.snapshot();
    REQUIRE(states.size() >= 2);
    CHECK(states[states.size() - 2] == ConnState::down);
    CHECK(states.back() == ConnState::ready);
}

TEST_CASE(
    "commands sent while the server is down wait in the offline queue and run after restart") {
    RedisServer server;
    TestConn c(server.url(),
               ConnectionOptions{.command_timeout = 10'000ms, .reconnect_max = 200ms});
    REQUIRE(c.cmd({"PING"}).ok());
    server.stop();
    // Let the connection notice the loss before queueing.
    std::this_thread::sleep_for(200ms);
    std::promise<Result<Reply>> p;
    c.rt().post([&] {
        c.conn()->send({"SET", "late", "yes"}, [&](Result<Reply> r) { p.set_value(std::move(r)); });
    });
    std::this_thread::sleep_for(300ms);
    server.restart();
    auto fut = p.get_future();
    REQUIRE(fut.wait_for(15s) == std::future_status::ready);
    auto r = fut.get();
    CAPTURE(r.ok() ? std::string("ok") : r.error().message());
    CHECK(r.ok());
    CHECK(c.cmd({"GET", "late"}).value().str() == "yes");
}

TEST_CASE("SIGSTOP: a command times out within its bound; after SIGCONT the link recovers") {
    RedisServer server;
    TestConn c(server.url(),
               ConnectionOptions{
                   .command_timeout = 500ms, .connect_timeout = 500ms, .reconnect_max = 300ms});
    REQUIRE(c.cmd({"PING"}).ok());
    server.pause();
    auto t0 = std::chrono::steady_clock::now();
    auto r = c.cmd({"PING"});
    auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE_FALSE(r.ok());
    CAPTURE(r.error().message());
    CHECK(r.error().is(errc::timeout));
    // Generous liveness bound: the 500 ms deadline must fire, not hang.
    CHECK(took < 5s);
    CHECK(took >= 450ms);

    // Several commands in flight at the freeze all complete with an error.
    std::atomic<int> failed{0};
    std::promise<void> all;
    c.rt().post([&] {
        for (int i = 0; i < 10; ++i) {
            c.conn()->send({"INCR", "n"}, [&](Result<Reply> res) {
                if (!res) ++failed;
                if (failed == 10) all.set_value();
            });
        }
    });
    REQUIRE(all.get_future().wait_for(10s) == std::future_status::ready);

    server.resume();
    REQUIRE(eventually_ok(c, {"PING"}, 10s));
    CHECK(c.cmd({"SET", "after", "cont"}).ok());
}

TEST_CASE("state listeners hear down and up exactly at the edges") {
    RedisServer server;
    StateLog log;  // before the connection: its listener must outlive it
    TestConn c(server.url(), ConnectionOptions{.reconnect_max = 200ms});
    REQUIRE(c.cmd({"PING"}).ok());  // up before listening: only later edges count
    log.attach(c);
    // Kill only our connection: one down edge, one up edge after the reconnect.
    TestConn admin(server.url());
    REQUIRE(admin.cmd({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"}).ok());
    REQUIRE(eventually_ok(c, {"PING"}, 5s));
    auto states = log.snapshot();
    REQUIRE(states.size() == 2);
    CHECK(states[0] == ConnState::down);
    CHECK(states[1] == ConnState::ready);
}
