// Crash recovery with real processes and real signals: dead workers' tasks are
// taken over, live long tasks are not, poison tasks end as dead letters.

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "streamfleet/streamfleet.hpp"
#include "support/redis_server.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using streamfleet::test::entry_fields;
using streamfleet::test::eventually;
using streamfleet::test::kill_group;
using streamfleet::test::pending_count;
using streamfleet::test::RedisServer;
using streamfleet::test::spawn_worker;
using streamfleet::test::TestConn;

namespace {

std::vector<std::string> lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    std::string l;
    while (std::getline(in, l)) out.push_back(l);
    return out;
}

}  // namespace

TEST_CASE("a SIGKILLed worker's in-flight tasks restart on a live worker within seconds") {
    RedisServer rs;
    auto dir = rs.dir();
    std::string script =
        "read x; echo \"$x $STREAMFLEET_DELIVERIES\" >> " + dir +
        "/started; if [ \"$STREAMFLEET_DELIVERIES\" = 1 ]; then sleep 60; fi; echo \"$x\" >> " +
        dir + "/done";
    auto common = "--redis " + rs.url() + " --queue q --concurrency 4 --heartbeat-ms 200 --exec '" +
                  script + "'";
    pid_t a = spawn_worker(common + " --id victim");
    REQUIRE(std::system(("printf 't1\\nt2\\nt3\\n' | " + streamfleet::test::cli_path() +
                         " enqueue --redis " + rs.url() + " --queue q --lines > /dev/null")
                            .c_str()) == 0);
    REQUIRE(eventually([&] { return lines(dir + "/started").size() == 3; }, 20s));
    pid_t b = spawn_worker(common + " --id survivor");
    std::this_thread::sleep_for(300ms);  // b is up and beating
    auto killed_at = std::chrono::steady_clock::now();
    kill_group(a, SIGKILL);
    REQUIRE(eventually([&] { return lines(dir + "/done").size() == 3; }, 30s));
    auto recovery = std::chrono::steady_clock::now() - killed_at;
    MESSAGE("recovery after SIGKILL: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(recovery).count() << " ms");
    CHECK(recovery < 10s);  // generous liveness bound; the figure goes to docs/reliability.md
    auto done = lines(dir + "/done");
    CHECK(std::set<std::string>(done.begin(), done.end()) ==
          std::set<std::string>{"t1", "t2", "t3"});
    int redelivered = 0;
    for (const auto& l : lines(dir + "/started")) redelivered += l.ends_with(" 2");
    CHECK(redelivered == 3);  // each ran again, with its delivery count showing it
    // The dead consumer leaves the group and the registry once it owns nothing.
    TestConn c(rs.url());
    auto gone = [&] {
        auto consumers =
            c.cmd({"XINFO", "CONSUMERS", "streamfleet:{q}", "streamfleet-server"}).value();
        for (const auto& cons : consumers.elements()) {
            if (cons[1].str() == "victim") return false;
        }
        return c.cmd({"ZSCORE", "streamfleet:{q}:servers", "victim"}).value().is_nil();
    };
    CHECK(eventually(gone, 10s));
    kill_group(b, SIGTERM);
}

TEST_CASE("a task running 4x the lease on a live server runs exactly once") {
    RedisServer rs;
    std::atomic<int> long_runs{0}, short_runs{0};
    auto opts = [&](std::string id) {
        // dead_after is generous: a loaded CI machine must not make a live
        // server look dead, which is a different scenario from this one.
        return ServerOptions{.redis = rs.url(),
                             .id = std::move(id),
                             .concurrency = 2,
                             .read_block = 200ms,
                             .heartbeat_interval = 200ms,
                             .lease = 500ms,
                             .dead_after = 2000ms};
    };
    auto handler = [&](TaskContext& t) {
        if (t.data() == "long") {
            ++long_runs;
            std::this_thread::sleep_for(2000ms);  // 4x the lease
        } else {
            ++short_runs;
        }
    };
    Server a(opts("a")), b(opts("b"));
    a.handle("q", handler);
    b.handle("q", handler);
    a.start();
    b.start();
    Client client({.redis = rs.url()}, {"q"});
    auto h = client.enqueue_tracked("q", "long");
    for (int i = 0; i < 20; ++i) client.enqueue("q", "short");
    auto out = h.wait_for(20s);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::completed);
    REQUIRE(eventually([&] { return short_runs == 20; }, 10s));
    std::this_thread::sleep_for(500ms);  // a wrongful takeover would show up here
    CHECK(long_runs == 1);
    CHECK(short_runs == 20);
}

TEST_CASE(
    "a task that kills its worker ends as a dead letter after max_deliveries; the rest complete") {
    RedisServer rs;
    auto dir = rs.dir();
    // $PPID of the handler's shell is the worker process itself.
    std::string script =
        "read x; if [ \"$x\" = poison ]; then kill -9 $PPID; exit 1; fi; echo \"$x\" >> " + dir +
        "/done";
    REQUIRE(std::system(("printf 'ok1\npoison\nok2\n' | " + streamfleet::test::cli_path() +
                         " enqueue --redis " + rs.url() + " --queue q --lines > /dev/null")
                            .c_str()) == 0);
    TestConn c(rs.url());
    int restarts = 0;
    for (; restarts < 8; ++restarts) {
        pid_t w = spawn_worker("--redis " + rs.url() +
                               " --queue q --id crashy --concurrency 1 "
                               "--max-deliveries 2 --exec '" +
                               script + "'");
        // Wait until it dies, or until the poison task is dead-lettered.
        bool dead_letter = false;
        auto until = std::chrono::steady_clock::now() + 20s;
        int status = 0;
        pid_t got = 0;
        while (std::chrono::steady_clock::now() < until) {
            got = waitpid(w, &status, WNOHANG);
            if (got == w) break;
            dead_letter = c.cmd({"XLEN", "streamfleet:{q}:dead"}).value().integer() == 1;
            if (dead_letter) break;
            std::this_thread::sleep_for(50ms);
        }
        if (got != w) kill_group(w, SIGTERM);
        if (dead_letter) break;
    }
    // The other tasks were never lost: a healthy run finishes whatever is left.
    pid_t last = spawn_worker("--redis " + rs.url() +
                              " --queue q --id crashy --concurrency 1 "
                              "--max-deliveries 2 --exec '" +
                              script + "'");
    auto both = [&] {
        auto d = lines(dir + "/done");
        return std::set<std::string>(d.begin(), d.end()) == std::set<std::string>{"ok1", "ok2"};
    };
    eventually(both, 30s);  // duplicates of ok1/ok2 are allowed (at-least-once), losses are not
    kill_group(last, SIGTERM);
    MESSAGE("worker restarts: " << restarts);
    auto dead = c.cmd({"XRANGE", "streamfleet:{q}:dead", "-", "+"}).value();
    REQUIRE(dead.size() == 1);
    auto f = entry_fields(dead[0]);
    CHECK(f["data"] == "poison");
    CHECK(f["x_error"].find("exceeded 2 deliveries") != std::string::npos);
    auto done = lines(dir + "/done");
    std::string seen;
    for (const auto& l : done) seen += l + " ";
    CAPTURE(seen);
    CHECK(std::set<std::string>(done.begin(), done.end()) == std::set<std::string>{"ok1", "ok2"});
}

TEST_CASE(
    "outcomes finished while Redis is frozen are kept and written when it returns; nothing runs "
    "twice") {
    RedisServer rs;
    TestConn c(rs.url());
    std::atomic<int> runs{0};
    std::atomic<bool> frozen{false};
    Server server(ServerOptions{.redis = rs.url(),
                                .id = "w",
                                .concurrency = 4,
                                .read_block = 200ms,
                                .command_timeout = 300ms});
    server.handle("q", [&](TaskContext&) {
        ++runs;
        while (!frozen) std::this_thread::sleep_for(5ms);  // finish only once Redis is stopped
    });
    server.start();
    Client client({.redis = rs.url(), .command_timeout = 10s}, {"q"});
    std::vector<TaskHandle> handles;
    for (int i = 0; i < 4; ++i)
        handles.push_back(client.enqueue_tracked("q", "t" + std::to_string(i)));
    REQUIRE(eventually([&] { return runs == 4; }, 10s));
    rs.pause();
    frozen = true;
    std::this_thread::sleep_for(1500ms);  // several write timeouts while stopped
    rs.resume();
    for (auto& h : handles) {
        auto out = h.wait_for(20s);
        REQUIRE(out);
        CHECK(out->status == TaskStatus::completed);
    }
    CHECK(eventually(
        [&] { return pending_count(c) == 0; },
        10s));
    CHECK(runs == 4);
    CHECK(server.stats().succeeded == 4);
}

TEST_CASE(
    "a worker SIGKILLed while its failed task waits out a retry backoff: the task still "
    "completes") {
    // The retry lives in P{Q}:delayed, not in the dead worker: a peer's
    // promoter moves it when due (the retry's nudge or its own re-check).
    RedisServer rs;
    auto dir = rs.dir();
    std::string script = "read x; echo \"$x $STREAMFLEET_RETRIES\" >> " + dir +
                         "/runs; if [ \"$STREAMFLEET_RETRIES\" = 0 ]; then exit 1; fi";
    auto common = "--redis " + rs.url() + " --queue q --concurrency 2 --heartbeat-ms 200 --exec '" +
                  script + "'";
    pid_t a = spawn_worker(common + " --id first");
    REQUIRE(std::system(("printf 'r1\\nr2\\n' | " + streamfleet::test::cli_path() +
                         " enqueue --redis " + rs.url() +
                         " --queue q --lines --max-retries 3 --retry-delay-ms 1500 > /dev/null")
                            .c_str()) == 0);
    REQUIRE(eventually([&] { return lines(dir + "/runs").size() == 2; }, 20s));
    TestConn c(rs.url());
    REQUIRE(eventually([&] {
        return c.cmd({"ZCARD", "streamfleet:{q}:delayed"}).value().integer() == 2;
    }));
    kill_group(a, SIGKILL);  // during the 1.5 s backoff
    pid_t b = spawn_worker(common + " --id second");
    REQUIRE(eventually([&] { return lines(dir + "/runs").size() == 4; }, 30s));
    std::set<std::string> runs;
    for (const auto& l : lines(dir + "/runs")) runs.insert(l);
    CHECK(runs == std::set<std::string>{"r1 0", "r2 0", "r1 1", "r2 1"});
    CHECK(eventually([&] {
        return c.cmd({"ZCARD", "streamfleet:{q}:delayed"}).value().integer() == 0;
    }));
    kill_group(b, SIGTERM);
}
