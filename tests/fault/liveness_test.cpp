// Liveness with real servers and a real redis-server: who counts as dead is decided by Redis's
// clock in the step that acts on it; live servers keep their work under skewed host clocks,
// Redis OOM and a stalled heartbeat; two servers never share an id; a shutdown during an outage
// hands its leftovers over at once. Every task is counted by its id.

#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "core/clock.hpp"
#include "server/test_access.hpp"
#include "streamfleet/streamfleet.hpp"
#include "support/redis_server.hpp"
#include "support/tally.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using streamfleet::detail::ServerTestAccess;
using streamfleet::test::eventually;
using streamfleet::test::kill_group;
using streamfleet::test::pending_count;
using streamfleet::test::RedisServer;
using streamfleet::test::spawn_worker;
using streamfleet::test::TestConn;

namespace {

// Runs per task (the payload is the task's name), from any handler thread.
using Runs = streamfleet::test::Tally;

// The host's clock, off by a fixed amount.
class SkewedClock final : public detail::Clock {
public:
    explicit SkewedClock(std::int64_t offset_ms) : offset_(offset_ms) {}
    std::int64_t now_ms() const override {
        return detail::SystemClock::instance().now_ms() + offset_;
    }

private:
    std::int64_t offset_;
};

ServerOptions fast(const RedisServer& rs, std::string id) {
    return ServerOptions{.redis = rs.url(),
                         .id = std::move(id),
                         .concurrency = 4,
                         .read_block = 200ms,
                         .heartbeat_interval = 200ms,
                         .command_timeout = 1s,
                         .lease = 30s,
                         .dead_after = 1s};
}

std::vector<std::string> lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    std::string l;
    while (std::getline(in, l)) out.push_back(l);
    return out;
}

bool has_consumer(TestConn& c, const std::string& name) {
    auto consumers = c.cmd({"XINFO", "CONSUMERS", "streamfleet:{q}", "streamfleet-server"}).value();
    for (const auto& cons : consumers.elements()) {
        if (cons[1].str() == name) return true;
    }
    return false;
}

}  // namespace

TEST_CASE("a server whose host clock is 5 s off runs nothing twice and loses nothing") {
    std::int64_t offset = 0;
    SUBCASE("behind") { offset = -5000; }
    SUBCASE("ahead") { offset = 5000; }
    CAPTURE(offset);
    RedisServer rs;
    Runs runs;
    SkewedClock clock(offset);
    auto handler = [&](TaskContext& t) {
        runs.add(t.data());
        std::this_thread::sleep_for(1500ms);  // longer than dead_after
    };
    Server skewed(fast(rs, "skewed")), normal(fast(rs, "normal"));
    ServerTestAccess::set_clock(skewed, clock);
    skewed.handle("q", handler);
    normal.handle("q", handler);
    skewed.start();
    normal.start();
    Client client({.redis = rs.url()}, {"q"});
    constexpr int kTasks = 16;
    for (int i = 0; i < kTasks; ++i) client.enqueue("q", "t" + std::to_string(i));
    auto done = [&] { return skewed.stats().succeeded + normal.stats().succeeded; };
    REQUIRE(eventually([&] { return done() == kTasks; }, 30s));
    std::this_thread::sleep_for(1500ms);  // a wrongful takeover would show up here
    MESSAGE("runs: " << runs.total() << " of " << kTasks << " tasks; skewed ran "
                     << skewed.stats().succeeded);
    for (int i = 0; i < kTasks; ++i) CHECK(runs.of("t" + std::to_string(i)) == 1);
    CHECK(runs.total() == kTasks);
}

TEST_CASE("under Redis OOM a live server's long tasks are not taken over; all finish once") {
    RedisServer rs;
    TestConn c(rs.url());
    Runs runs;
    std::atomic<bool> release{false};
    auto handler = [&](TaskContext& t) {
        runs.add(t.data());
        while (!release) std::this_thread::sleep_for(5ms);
    };
    auto o = fast(rs, "busy");
    o.lease = 3s;  // renewed every second; the peer's idle scan runs every ~1.5 s
    Server busy(o);
    busy.handle("q", handler);
    busy.start();
    Client client({.redis = rs.url()}, {"q"});
    for (int i = 0; i < 4; ++i) client.enqueue("q", "t" + std::to_string(i));
    REQUIRE(eventually([&] { return runs.distinct() == 4; }));
    o.id = "peer";
    Server peer(o);
    peer.handle("q", handler);
    peer.start();
    REQUIRE(c.cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction"}).ok());
    REQUIRE(c.cmd({"CONFIG", "SET", "maxmemory", "1"}).ok());
    // Writes are refused now: a heartbeat ZADD would be too.
    auto refused = c.cmd({"SET", "probe", "x"});
    CHECK_FALSE(refused.ok());
    std::this_thread::sleep_for(4s);  // past dead_after and the lease
    REQUIRE(c.cmd({"CONFIG", "SET", "maxmemory", "0"}).ok());
    CHECK(runs.total() == 4);  // nothing was taken over while Redis refused writes
    release = true;
    REQUIRE(eventually([&] { return busy.stats().succeeded + peer.stats().succeeded == 4; }));
    std::this_thread::sleep_for(500ms);
    for (int i = 0; i < 4; ++i) CHECK(runs.of("t" + std::to_string(i)) == 1);
    CHECK(busy.stats().succeeded == 4);
}

TEST_CASE("a live server whose beat looks dead keeps its consumer; its failed runs come back") {
    RedisServer rs;
    TestConn c(rs.url());
    Runs runs;
    auto handler = [&](TaskContext& t) {
        if (t.data() == "hog") {
            runs.add(t.data());
            std::this_thread::sleep_for(4500ms);  // the peer's one slot: it reads nothing more
            return;
        }
        if (runs.add(t.data()) == 1) throw std::runtime_error("first run fails");
    };
    auto o = fast(rs, "peer");
    o.concurrency = 1;
    Server peer(o);
    peer.handle("q", handler);
    peer.start();
    Client client({.redis = rs.url()}, {"q"});
    client.enqueue("q", "hog");
    REQUIRE(eventually([&] { return runs.of("hog") == 1; }));
    Server quiet(fast(rs, "quiet"));
    quiet.handle("q", handler);
    quiet.start();
    ServerTestAccess::stop_heartbeat(quiet);
    // For three times dead_after its beat is stale while it reads and runs a stream of tasks,
    // each failing once; the peer looks at it ~15 times meanwhile.
    constexpr int kTasks = 60;
    bool forgotten = false;
    for (int i = 0; i < kTasks; ++i) {
        client.enqueue("q", "f" + std::to_string(i), {.max_retries = 3});
        std::this_thread::sleep_for(50ms);
        forgotten |= c.cmd({"ZSCORE", "streamfleet:{q}:servers", "quiet"}).value().is_nil();
    }
    CHECK_FALSE(forgotten);
    CHECK(has_consumer(c, "quiet"));
    REQUIRE(eventually(
        [&] { return quiet.stats().succeeded + peer.stats().succeeded == kTasks + 1; }, 30s));
    std::this_thread::sleep_for(300ms);
    MESSAGE("quiet: " << quiet.stats().succeeded << " succeeded, " << quiet.stats().retried
                      << " retried; peer: " << peer.stats().succeeded);
    for (int i = 0; i < kTasks; ++i) CHECK(runs.of("f" + std::to_string(i)) == 2);
    CHECK(runs.of("hog") == 1);
}

namespace {

// A server with 4 tasks running stops while Redis cannot take their outcomes
// (`fault` makes it so, `after` undoes it once the server has gone); a peer
// must finish them well within the 60 s lease. Returns how long after `after`
// every handle resolved completed and nothing was left pending.
std::chrono::milliseconds leftovers_handed_over(RedisServer& rs, TestConn& c,
                                                const std::function<void()>& fault,
                                                const std::function<void()>& after) {
    Runs runs;
    std::atomic<bool> go{false};
    auto handler = [&](TaskContext& t) {
        if (runs.add(t.data()) == 1) {
            while (!go) std::this_thread::sleep_for(5ms);
        }
    };
    auto o = fast(rs, "leaving");
    o.command_timeout = 300ms;
    o.lease = 60s;  // leftovers waiting for the lease would miss the bound by far
    Server leaving(o);
    leaving.handle("q", handler);
    leaving.start();
    Client client({.redis = rs.url(), .command_timeout = 30s}, {"q"});
    std::vector<TaskHandle> handles;
    for (int i = 0; i < 4; ++i)
        handles.push_back(client.enqueue_tracked("q", "t" + std::to_string(i)));
    REQUIRE(eventually([&] { return runs.distinct() == 4; }));
    o.id = "peer";
    Server peer(o);
    peer.handle("q", handler);
    peer.start();
    fault();
    go = true;  // the runs end while Redis cannot take their outcomes
    leaving.shutdown(0ms);
    after();
    auto back = std::chrono::steady_clock::now();
    auto score = c.cmd({"ZSCORE", "streamfleet:{q}:servers", "leaving"}).value();
    MESSAGE("leaving's registry entry once Redis is back: "
            << (score.is_nil() ? std::string("removed") : std::string(score.str())));
    for (auto& h : handles) {
        auto out = h.wait_for(20s);
        REQUIRE(out);
        CHECK(out->status == TaskStatus::completed);
    }
    REQUIRE(eventually(
        [&] { return pending_count(c) == 0; },
        20s));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - back);
    MESSAGE("all completed and acked " << took.count() << " ms after Redis was back; peer ran "
                                       << peer.stats().succeeded);
    for (int i = 0; i < 4; ++i) CHECK(runs.of("t" + std::to_string(i)) >= 1);
    return took;
}

}  // namespace

TEST_CASE("a server stopped while Redis refuses writes (OOM) hands its leftovers over at once") {
    RedisServer rs;
    TestConn c(rs.url());
    auto took = leftovers_handed_over(
        rs, c,
        [&] {
            REQUIRE(c.cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction"}).ok());
            REQUIRE(c.cmd({"CONFIG", "SET", "maxmemory", "1"}).ok());
        },
        [&] {
            REQUIRE(c.cmd({"CONFIG", "SET", "maxmemory", "0"}).ok());
        });
    CHECK(took < 15s);  // well within the 60 s lease
}

TEST_CASE("a server stopped while Redis is frozen hands its leftovers over well within the lease") {
    RedisServer rs;
    TestConn c(rs.url());
    auto took = leftovers_handed_over(
        rs, c, [&] { rs.pause(); }, [&] { rs.resume(); });
    CHECK(took < 15s);  // well within the 60 s lease
}

TEST_CASE("a second server with the same id refuses to start; the first keeps running") {
    RedisServer rs;
    Runs runs;
    auto handler = [&](TaskContext& t) { runs.add(t.data()); };
    Server first(fast(rs, "twin")), second(fast(rs, "twin"));
    first.handle("q", handler);
    second.handle("q", handler);
    first.start();
    auto t0 = std::chrono::steady_clock::now();
    std::string what;
    try {
        second.start();
    } catch (const ServerIdInUse& e) {
        what = e.what();
    }
    auto waited = std::chrono::steady_clock::now() - t0;
    MESSAGE(
        "refused after " << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()
                         << " ms: " << what);
    CHECK(what.find("'twin'") != std::string::npos);
    CHECK(waited < 5s);
    Client client({.redis = rs.url()}, {"q"});
    for (int i = 0; i < 10; ++i) client.enqueue("q", "t" + std::to_string(i));
    REQUIRE(eventually([&] { return first.stats().succeeded == 10; }));
    CHECK(runs.total() == 10);
    CHECK(second.stats().succeeded == 0);
}

TEST_CASE("a SIGKILLed worker restarted with the same id starts and recovers its leftovers") {
    RedisServer rs;
    auto dir = rs.dir();
    std::string script =
        "read x; echo \"$x $STREAMFLEET_DELIVERIES\" >> " + dir +
        "/started; if [ \"$STREAMFLEET_DELIVERIES\" = 1 ]; then sleep 60; fi; echo \"$x\" >> " +
        dir + "/done";
    auto args = "--redis " + rs.url() + " --queue q --id phoenix --concurrency 4 " +
                "--heartbeat-ms 200 --exec '" + script + "'";
    pid_t first = spawn_worker(args);
    REQUIRE(std::system(("printf 't1\\nt2\\nt3\\n' | " + streamfleet::test::cli_path() +
                         " enqueue --redis " + rs.url() + " --queue q --lines > /dev/null")
                            .c_str()) == 0);
    REQUIRE(eventually([&] { return lines(dir + "/started").size() == 3; }, 20s));
    kill_group(first, SIGKILL);
    auto killed = std::chrono::steady_clock::now();
    pid_t again = spawn_worker(args);
    REQUIRE(eventually([&] { return lines(dir + "/done").size() == 3; }, 30s));
    auto took = std::chrono::steady_clock::now() - killed;
    MESSAGE("restart with the same id recovered its leftovers in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    auto done = lines(dir + "/done");
    CHECK(std::set<std::string>(done.begin(), done.end()) ==
          std::set<std::string>{"t1", "t2", "t3"});
    int redelivered = 0;
    for (const auto& l : lines(dir + "/started")) redelivered += l.ends_with(" 2");
    CHECK(redelivered == 3);
    kill_group(again, SIGTERM);
}
