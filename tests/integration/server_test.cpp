// Server + Client end to end against a real redis-server.

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "streamfleet/streamfleet.hpp"
#include "support/redis_server.hpp"
#include "support/worker_options.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using streamfleet::test::entry_fields;
using streamfleet::test::eventually;
using streamfleet::test::RedisServer;
using streamfleet::test::server_opts;
using streamfleet::test::TestConn;

namespace {

}  // namespace

TEST_CASE("fire-and-forget and tracked tasks run once and leave nothing behind") {
    RedisServer rs;
    TestConn c(rs.url());
    std::mutex m;
    std::multiset<std::string> seen;
    Server server(server_opts(rs, "w1"));
    server.handle("jobs", [&](TaskContext& t) {
        std::lock_guard lock(m);
        seen.insert(std::string(t.data()));
        CHECK(t.retries() == 0);
        CHECK(t.deliveries() == 1);
        CHECK(t.queue() == "jobs");
    });
    server.start();
    Client client({.redis = rs.url()}, {"jobs"});
    for (int i = 0; i < 200; ++i) client.enqueue("jobs", "f" + std::to_string(i));
    std::vector<TaskHandle> handles;
    for (int i = 0; i < 50; ++i)
        handles.push_back(client.enqueue_tracked("jobs", "t" + std::to_string(i)));
    for (auto& h : handles) {
        auto out = h.wait_for(20s);
        REQUIRE(out);
        CHECK(out->status == TaskStatus::completed);
    }
    REQUIRE(eventually([&] {
        std::lock_guard l(m);
        return seen.size() == 250;
    }));
    std::this_thread::sleep_for(100ms);
    {
        std::lock_guard l(m);
        CHECK(seen.size() == 250);
        CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 250);  // each exactly once
    }
    REQUIRE(eventually([&] {
        return c.cmd({"XLEN", "streamfleet:{jobs}"}).value().integer() == 0;
    }));
    auto pending = c.cmd({"XPENDING", "streamfleet:{jobs}", "streamfleet-server"}).value();
    CHECK(pending[0].integer() == 0);
    CHECK(server.stats().succeeded == 250);
    CHECK_FALSE(c.cmd({"ZSCORE", "streamfleet:{jobs}:servers", "w1"}).value().is_nil());
    server.shutdown(5s);
    CHECK(c.cmd({"ZSCORE", "streamfleet:{jobs}:servers", "w1"}).value().is_nil());
}

TEST_CASE("retries reach success on the third attempt, immediately and after a delay") {
    RedisServer rs;
    std::mutex m;
    std::map<std::string, int> attempts;
    Server server(server_opts(rs, "w1"));
    server.handle("flaky", [&](TaskContext& t) {
        int n;
        {
            std::lock_guard lock(m);
            n = ++attempts[std::string(t.data())];
        }
        CHECK(t.retries() == static_cast<unsigned>(n - 1));
        if (n < 3) throw std::runtime_error("attempt " + std::to_string(n) + " failed");
    });
    server.start();
    Client client({.redis = rs.url()}, {"flaky"});
    auto now = client.enqueue_tracked("flaky", "now", {.max_retries = 5});
    auto later = client.enqueue_tracked("flaky", "later", {.max_retries = 5, .retry_delay = 150ms});
    auto t0 = std::chrono::steady_clock::now();
    REQUIRE(now.wait_for(20s));
    CHECK(now.wait().status == TaskStatus::completed);
    REQUIRE(later.wait_for(20s));
    CHECK(later.wait().status == TaskStatus::completed);
    CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);  // two delays, never early
    std::lock_guard lock(m);
    CHECK(attempts["now"] == 3);
    CHECK(attempts["later"] == 3);
    CHECK(server.stats().retried == 4);
}

TEST_CASE("exhausted retries: error notification with the handler's text, and a dead letter") {
    RedisServer rs;
    TestConn c(rs.url());
    std::atomic<int> runs{0};
    Server server(server_opts(rs, "w1"));
    server.handle("doomed", [&](TaskContext&) {
        ++runs;
        throw std::runtime_error("database is on fire");
    });
    server.handle("hopeless",
                  [&](TaskContext&) { return Outcome::dead("bad input, do not retry"); });
    server.start();
    Client client({.redis = rs.url()}, {"doomed", "hopeless"});
    auto h = client.enqueue_tracked("doomed", "payload", {.max_retries = 2});
    auto out = h.wait_for(20s);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::error);
    CHECK(out->error == "database is on fire");
    CHECK(runs == 3);  // first run + 2 retries
    auto dead = c.cmd({"XRANGE", "streamfleet:{doomed}:dead", "-", "+"}).value();
    REQUIRE(dead.size() == 1);
    auto f = entry_fields(dead[0]);
    CHECK(f["id"] == h.id());
    CHECK(f["data"] == "payload");
    CHECK(f["retries"] == "2");
    CHECK(f["x_error"] == "database is on fire");

    auto h2 = client.enqueue_tracked("hopeless", "x", {.max_retries = 10});
    auto out2 = h2.wait_for(20s);
    REQUIRE(out2);
    CHECK(out2->status == TaskStatus::error);
    CHECK(out2->error == "bad input, do not retry");
    CHECK(c.cmd({"XLEN", "streamfleet:{hopeless}:dead"}).value().integer() == 1);
}

TEST_CASE("an expired task is not run; its tracker hears expired") {
    RedisServer rs;
    Client client({.redis = rs.url()}, {"q"});
    auto h = client.enqueue_tracked("q", "late", {.expires_in = 1ms});
    std::this_thread::sleep_for(50ms);
    std::atomic<int> runs{0};
    Server server(server_opts(rs, "w1"));
    server.handle("q", [&](TaskContext&) { ++runs; });
    server.start();
    auto out = h.wait_for(20s);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::expired);
    CHECK(runs == 0);
    CHECK(server.stats().expired == 1);
}

TEST_CASE(
    "malformed entries are dead-lettered with their raw fields and the reason; the server goes "
    "on") {
    RedisServer rs;
    TestConn c(rs.url());
    const std::string s = "streamfleet:{q}";
    std::vector<std::vector<std::string>> bad = {
        {"XADD", s, "*", "garbage", "1"},
        {"XADD", s, "*", "enc_version", "2", "id", "a"},
        {"XADD", s,
         "*",    "enc_version",
         "1",    "id",
         "b",    "client_id",
         "",     "data",
         "",     "max_retries",
         "x",    "expires_ts",
         "0",    "retry_delay",
         "0",    "send_notif",
         "0",    "retries",
         "0"},
        {"XADD",  s,
         "*",     "enc_version",
         "1",     "id",
         "c",     "client_id",
         "",      "data",
         "",      "max_retries",
         "0",     "expires_ts",
         "0",     "retry_delay",
         "0",     "send_notif",
         "maybe", "retries",
         "0"},
    };
    for (const auto& b : bad) REQUIRE(c.cmd(b).ok());
    std::atomic<int> runs{0};
    Server server(server_opts(rs, "w1"));
    server.handle("q", [&](TaskContext&) { ++runs; });
    server.start();
    Client client({.redis = rs.url()}, {"q"});
    auto h = client.enqueue_tracked("q", "good");
    REQUIRE(h.wait_for(20s));
    CHECK(h.wait().status == TaskStatus::completed);
    REQUIRE(eventually([&] { return c.cmd({"XLEN", s + ":dead"}).value().integer() == 4; }));
    auto dead = c.cmd({"XRANGE", s + ":dead", "-", "+"}).value();
    auto f0 = entry_fields(dead[0]);
    CHECK(f0["garbage"] == "1");
    CHECK(f0["x_error"].find("missing field 'enc_version'") != std::string::npos);
    CHECK(entry_fields(dead[1])["x_error"].find("unsupported enc_version '2'") !=
          std::string::npos);
    CHECK(entry_fields(dead[2])["x_error"].find("'max_retries'") != std::string::npos);
    CHECK(entry_fields(dead[3])["x_error"].find("'send_notif'") != std::string::npos);
    CHECK(runs == 1);
    CHECK(server.stats().malformed == 4);
    CHECK(c.cmd({"XLEN", s}).value().integer() == 0);
}

TEST_CASE("concurrency N is never exceeded and is fully used") {
    RedisServer rs;
    std::atomic<int> active{0}, peak{0}, done{0};
    Server server(server_opts(rs, "w1", 4));
    server.handle("q", [&](TaskContext&) {
        int now = ++active;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        std::this_thread::sleep_for(30ms);
        --active;
        ++done;
    });
    Client client({.redis = rs.url()}, {"q"});
    std::vector<std::string> data(40, "x");
    client.enqueue_many("q", data);
    server.start();
    REQUIRE(eventually([&] { return done == 40; }));
    CHECK(peak == 4);
}

TEST_CASE("10,000 tasks over 3 servers: each handled exactly once") {
    RedisServer rs;
    TestConn c(rs.url());
    std::mutex m;
    std::map<std::string, int> count;
    std::map<std::string, int> by_server;
    std::vector<std::unique_ptr<Server>> servers;
    for (int i = 0; i < 3; ++i) {
        auto id = "w" + std::to_string(i);
        servers.push_back(std::make_unique<Server>(server_opts(rs, id, 8)));
        servers.back()->handle("bulk", [&, id](TaskContext& t) {
            std::lock_guard lock(m);
            ++count[std::string(t.data())];
            ++by_server[id];
        });
    }
    Client client({.redis = rs.url()}, {"bulk"});
    std::vector<std::string> data;
    for (int i = 0; i < 10'000; ++i) data.push_back(std::to_string(i));
    // Half before any server exists (group created at id 0 picks them up), half after.
    client.enqueue_many("bulk", std::vector<std::string>(data.begin(), data.begin() + 5000));
    for (auto& s : servers) s->start();
    client.enqueue_many("bulk", std::vector<std::string>(data.begin() + 5000, data.end()));
    REQUIRE(eventually(
        [&] {
            std::lock_guard l(m);
            return count.size() == 10'000;
        },
        60s));
    std::this_thread::sleep_for(200ms);
    std::lock_guard l(m);
    int dup = 0;
    for (auto& [_, n] : count) dup += n - 1;
    CHECK(dup == 0);
    CHECK(count.size() == 10'000);
    CHECK(by_server.size() == 3);  // all three took part
}

TEST_CASE("shutdown cancels overdue handlers and returns their tasks to the stream") {
    RedisServer rs;
    TestConn c(rs.url());
    std::atomic<int> started{0}, saw_cancel{0};
    auto server = std::make_unique<Server>(server_opts(rs, "w1", 2));
    server->handle("slow", [&](TaskContext& t) {
        ++started;
        while (!t.canceled()) std::this_thread::sleep_for(5ms);
        ++saw_cancel;
        throw std::runtime_error("interrupted");
    });
    Client client({.redis = rs.url()}, {"slow"});
    client.enqueue_many("slow", {"a", "b", "c", "d", "e"});
    server->start();
    REQUIRE(eventually([&] { return started == 2; }));
    server->shutdown(200ms);
    CHECK(saw_cancel == 2);
    CHECK(server->stats().returned == 2);
    CHECK(server->stats().failed == 0);
    // Nothing lost: the 2 interrupted tasks are back, the 3 unread ones are still there,
    // and none of them spent a retry.
    auto entries = c.cmd({"XRANGE", "streamfleet:{slow}", "-", "+"}).value();
    CHECK(entries.size() == 5);
    for (std::size_t i = 0; i < entries.size(); ++i)
        CHECK(entry_fields(entries[i])["retries"] == "0");
    auto pending = c.cmd({"XPENDING", "streamfleet:{slow}", "streamfleet-server"}).value();
    CHECK(pending[0].integer() == 0);

    // A new server picks them all up.
    std::atomic<int> finished{0};
    Server next(server_opts(rs, "w2", 2));
    next.handle("slow", [&](TaskContext&) { ++finished; });
    next.start();
    CHECK(eventually([&] { return finished == 5; }));
}

TEST_CASE("bad server configuration is refused with a typed error") {
    CHECK_THROWS_WITH_AS(Server({.id = ""}), "server id is empty", InvalidArgument);
    CHECK_THROWS_AS(Server({.id = "a", .concurrency = 0}), InvalidArgument);
    CHECK_THROWS_AS(Server({.redis = "redis://h:x", .id = "a"}), InvalidArgument);
    Server s({.id = "a"});
    CHECK_THROWS_AS(s.start(), InvalidArgument);  // no handler
    s.handle("q", [](TaskContext&) {});
    CHECK_THROWS_WITH_AS(s.handle("q", [](TaskContext&) {}), "queue 'q' already has a handler",
                         InvalidArgument);
    CHECK_THROWS_AS(s.handle("", [](TaskContext&) {}), InvalidArgument);
}

TEST_CASE("a dead letter that cannot be written leaves the task pending, never lost") {
    RedisServer rs;
    TestConn c(rs.url());
    // Sabotage: the dead-letter key has the wrong type, so its XADD fails.
    REQUIRE(c.cmd({"SET", "streamfleet:{q}:dead", "not a stream"}).ok());
    Server server(server_opts(rs, "w1"));
    std::atomic<int> runs{0};
    server.handle("q", [&](TaskContext&) -> Outcome {
        ++runs;
        return Outcome::dead("poison");
    });
    server.start();
    Client client({.redis = rs.url()}, {"q"});
    client.enqueue("q", "x");
    REQUIRE(eventually([&] { return runs == 1; }));
    std::this_thread::sleep_for(200ms);
    auto pending = c.cmd({"XPENDING", "streamfleet:{q}", "streamfleet-server"}).value();
    CHECK(pending[0].integer() == 1);  // still owned by w1: a reclaim will redeliver it
    CHECK(c.cmd({"XLEN", "streamfleet:{q}"}).value().integer() == 1);
}

TEST_CASE("scripts survive SCRIPT FLUSH (NOSCRIPT falls back to EVAL)") {
    RedisServer rs;
    TestConn c(rs.url());
    std::mutex m;
    std::map<std::string, int> attempts;
    Server server(server_opts(rs, "w1"));
    server.handle("q", [&](TaskContext& t) {
        std::lock_guard lock(m);
        if (++attempts[std::string(t.data())] < 2) throw std::runtime_error("again");
    });
    server.start();
    Client client({.redis = rs.url()}, {"q"});
    auto first = client.enqueue_tracked("q", "a", {.retry_delay = 20ms});
    REQUIRE(first.wait_for(20s));
    REQUIRE(c.cmd({"SCRIPT", "FLUSH"}).ok());
    auto second = client.enqueue_tracked("q", "b", {.retry_delay = 20ms});
    auto out = second.wait_for(20s);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::completed);
    std::lock_guard lock(m);
    CHECK(attempts["b"] == 2);
}

TEST_CASE("a server whose start fails can still be destroyed cleanly") {
    Server s({.redis = "rediss://127.0.0.1:1", .id = "w"});
    s.handle("q", [](TaskContext&) {});
    CHECK_THROWS_AS(s.start(), Unsupported);
    s.shutdown(1s);  // no-op, no crash
}

TEST_CASE("the janitor removes silent clients' notification streams, not live ones") {
    RedisServer rs;
    TestConn c(rs.url());
    // A client that died long ago: an old heartbeat and a leftover stream with a group.
    const std::string ghost = "01000000-0000-7000-8000-000000000000";
    const std::string ghost_key = "streamfleet:receiver:{" + ghost + "}";
    REQUIRE(c.cmd({"ZADD", "streamfleet:{q}:clients", "1000", ghost}).ok());
    REQUIRE(c.cmd({"XGROUP", "CREATE", ghost_key, "streamfleet-client", "0", "MKSTREAM"}).ok());
    Client live({.redis = rs.url(), .heartbeat_interval = 100ms}, {"q"});
    const std::string live_key = "streamfleet:receiver:{" + live.id() + "}";
    REQUIRE(eventually([&] { return c.cmd({"EXISTS", live_key}).value().integer() == 1; }));

    auto so = server_opts(rs, "w1");
    so.orphan_timeout = 1000ms;
    Server server(so);
    server.handle("q", [](TaskContext&) {});
    server.start();
    CHECK(eventually([&] { return c.cmd({"EXISTS", ghost_key}).value().integer() == 0; }, 10s));
    CHECK(c.cmd({"ZSCORE", "streamfleet:{q}:clients", ghost}).value().is_nil());
    std::this_thread::sleep_for(1500ms);  // longer than orphan_timeout: the live client beats on
    CHECK(c.cmd({"EXISTS", live_key}).value().integer() == 1);
    CHECK_FALSE(c.cmd({"ZSCORE", "streamfleet:{q}:clients", live.id()}).value().is_nil());
}

TEST_CASE("shutdown from inside a handler is refused instead of deadlocking") {
    RedisServer rs;
    Server server(server_opts(rs, "w1"));
    std::atomic<bool> refused{false};
    server.handle("q", [&](TaskContext&) {
        try {
            server.shutdown(1s);
        } catch (const InvalidArgument&) {
            refused = true;
        }
    });
    server.start();
    Client client({.redis = rs.url()}, {"q"});
    auto h = client.enqueue_tracked("q", "x");
    REQUIRE(h.wait_for(20s));
    CHECK(refused);
    CHECK(h.wait().status == TaskStatus::completed);
}
