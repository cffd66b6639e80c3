// Task state records, Client::get() and Client::cancel() in every state,
// against a real redis-server.

#include <doctest/doctest.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <set>
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

namespace {

ServerOptions server_opts(const RedisServer& rs, std::string id = "w1") {
    return ServerOptions{
        .redis = rs.url(), .id = std::move(id), .concurrency = 4, .read_block = 500ms};
}

}  // namespace

TEST_CASE("get follows a task through delayed, ready, active, failed and completed") {
    RedisServer rs;
    Client client({.redis = rs.url()}, {"jobs"});
    auto id = client.enqueue("jobs", "x", {.max_retries = 3, .retry_delay = 400ms, .delay = 300ms});
    auto info = client.get("jobs", id);
    CHECK(info.state == TaskState::delayed);
    CHECK(info.run_at_ms > 0);
    CHECK(info.created_ms > 0);

    std::atomic<int> runs{0};
    std::atomic<bool> release{false};
    Server server(server_opts(rs));
    server.handle("jobs", [&](TaskContext&) -> Outcome {
        if (++runs == 1) return Outcome::failure("first try fails");
        while (!release) std::this_thread::sleep_for(5ms);
        return Outcome::success();
    });
    server.start();
    REQUIRE(eventually([&] { return client.get("jobs", id).state == TaskState::failed; }));
    info = client.get("jobs", id);
    CHECK(info.retries == 1);
    CHECK(info.error == "first try fails");
    CHECK(info.run_at_ms > 0);
    // Its failed run, with when it ended, as a dead letter would list it.
    REQUIRE(info.history.size() == 1);
    CHECK(info.history[0].ends_with(" first try fails"));
    CHECK(std::stoll(info.history[0]) >= info.created_ms);
    CHECK(std::stoll(info.history[0]) <= info.updated_ms);
    REQUIRE(eventually([&] { return client.get("jobs", id).state == TaskState::active; }));
    CHECK(client.get("jobs", id).history.size() == 1);  // while it runs again
    release = true;
    REQUIRE(eventually([&] { return client.get("jobs", id).state == TaskState::completed; }));
    info = client.get("jobs", id);
    CHECK(info.finished_ms >= info.created_ms);
    CHECK(info.retries == 1);
    TestConn c(rs.url());
    // Finished: the record is gone, the state is in a bucket kept 24 h (the default retention).
    CHECK(c.cmd({"EXISTS", "streamfleet:{jobs}:task:" + id}).value().integer() == 0);
    auto families = c.cmd({"ZRANGE", "streamfleet:{jobs}:done", "0", "-1", "WITHSCORES"}).value();
    REQUIRE(families.size() == 2);
    const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    CHECK(std::stoll(std::string(families[1].str())) > now_ms + 24 * 3600 * 1000);
    auto bucket = "streamfleet:{jobs}:done:" + std::string(families[0].str()) + ":0";
    CHECK(c.cmd({"HEXISTS", bucket, id}).value().integer() == 1);
    CHECK(c.cmd({"PTTL", bucket}).value().integer() > 24 * 3600 * 1000);
    CHECK(client.get("jobs", "no-such-task").state == TaskState::unknown);
    server.shutdown(5s);
}

TEST_CASE(
    "a task with no retries left is dead, an expired one expired, retention 0 leaves nothing") {
    RedisServer rs;
    Server server(server_opts(rs));
    server.handle("jobs", [](TaskContext& t) -> Outcome {
        if (t.data() == "bad") return Outcome::dead("hopeless");
        return Outcome::success();
    });
    Client client({.redis = rs.url()}, {"jobs"});
    auto bad = client.enqueue("jobs", "bad");
    auto old = client.enqueue("jobs", "old", {.expires_in = 1ms});
    auto gone = client.enqueue("jobs", "gone", {.retention = 0ms});
    std::this_thread::sleep_for(20ms);  // "old" expires before any server reads it
    server.start();
    REQUIRE(eventually([&] { return client.get("jobs", bad).state == TaskState::dead; }));
    CHECK(client.get("jobs", bad).error == "hopeless");
    // Dead: its record's history ends with the run that killed it.
    auto dead_history = client.get("jobs", bad).history;
    REQUIRE(dead_history.size() == 1);
    CHECK(dead_history[0].ends_with(" hopeless"));
    REQUIRE(eventually([&] { return client.get("jobs", old).state == TaskState::expired; }));
    REQUIRE(eventually([&] { return server.stats().succeeded == 1; }));
    TestConn c(rs.url());
    CHECK(eventually([&] {
        return c.cmd({"EXISTS", "streamfleet:{jobs}:task:" + gone}).value().integer() == 0;
    }));
    CHECK(client.get("jobs", gone).state == TaskState::unknown);
    server.shutdown(5s);
}

TEST_CASE("a finished state is kept for its retention, then gone; cancel says finished until then") {
    RedisServer rs;
    Server server(server_opts(rs));
    server.handle("jobs", [](TaskContext&) { return Outcome::success(); });
    server.start();
    Client client({.redis = rs.url()}, {"jobs"});
    auto brief = client.enqueue("jobs", "x", {.retention = 1500ms});
    auto kept = client.enqueue("jobs", "y");
    REQUIRE(eventually([&] { return client.get("jobs", brief).state == TaskState::completed; }));
    REQUIRE(eventually([&] { return client.get("jobs", kept).state == TaskState::completed; }));
    auto info = client.get("jobs", brief);
    CHECK(info.finished_ms >= info.created_ms);
    CHECK(info.updated_ms == info.finished_ms);
    CHECK(client.cancel("jobs", brief) == CancelResult::finished);
    // Retention counts from the finish; its bucket lives longer (its family's width), unseen.
    std::this_thread::sleep_for(std::chrono::milliseconds(
        info.finished_ms + 1600 -
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count()));
    CHECK(client.get("jobs", brief).state == TaskState::unknown);
    CHECK_THROWS_AS(client.cancel("jobs", brief), NotFound);
    CHECK(client.get("jobs", kept).state == TaskState::completed);
    server.shutdown(5s);
}

TEST_CASE("cancel: delayed and ready tasks never run, a running one stops, finished ones stay") {
    RedisServer rs;
    Client client({.redis = rs.url()}, {"jobs"});
    auto delayed = client.enqueue_tracked("jobs", "delayed", {.delay = 60s});
    auto ready = client.enqueue_tracked("jobs", "ready");
    CHECK(client.cancel("jobs", delayed.id()) == CancelResult::delayed);
    CHECK(client.cancel("jobs", ready.id()) == CancelResult::ready);
    for (auto* h : {&delayed, &ready}) {
        auto out = h->wait_for(10s);
        REQUIRE(out);
        CHECK(out->status == TaskStatus::canceled);
    }
    CHECK(client.get("jobs", delayed.id()).state == TaskState::canceled);
    CHECK(client.get("jobs", ready.id()).state == TaskState::canceled);

    std::mutex m;
    std::set<std::string> ran;
    std::atomic<bool> saw_cancel{false};
    Server server(server_opts(rs));
    server.handle("jobs", [&](TaskContext& t) {
        {
            std::lock_guard lock(m);
            ran.insert(std::string(t.data()));
        }
        if (t.data() == "long") {
            auto until = std::chrono::steady_clock::now() + 20s;
            while (!t.canceled() && std::chrono::steady_clock::now() < until)
                std::this_thread::sleep_for(5ms);
            saw_cancel = t.canceled();
        }
    });
    server.start();
    auto running = client.enqueue_tracked("jobs", "long");
    REQUIRE(
        eventually([&] { return client.get("jobs", running.id()).state == TaskState::active; }));
    CHECK(client.cancel("jobs", running.id()) == CancelResult::active);
    auto out = running.wait_for(10s);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::canceled);
    CHECK(saw_cancel);
    CHECK(client.get("jobs", running.id()).state == TaskState::canceled);
    CHECK(server.stats().canceled == 1);

    auto quick = client.enqueue_tracked("jobs", "quick");
    REQUIRE(quick.wait_for(10s));
    CHECK(client.cancel("jobs", quick.id()) == CancelResult::finished);
    CHECK(client.get("jobs", quick.id()).state == TaskState::completed);
    CHECK_THROWS_AS(client.cancel("jobs", "no-such-task"), NotFound);

    std::this_thread::sleep_for(300ms);
    std::lock_guard l(m);
    CHECK(ran == std::set<std::string>{"long", "quick"});  // the canceled ones never ran
    server.shutdown(5s);
}

TEST_CASE(
    "a task waiting for its retry can be canceled; with track_state off nothing is recorded") {
    RedisServer rs;
    std::atomic<int> runs{0};
    Server server(server_opts(rs));
    server.handle("jobs", [&](TaskContext&) -> Outcome {
        ++runs;
        return Outcome::failure("again");
    });
    server.start();
    Client client({.redis = rs.url()}, {"jobs"});
    auto h = client.enqueue_tracked("jobs", "x", {.max_retries = 5, .retry_delay = 30s});
    REQUIRE(eventually([&] { return client.get("jobs", h.id()).state == TaskState::failed; }));
    CHECK(client.cancel("jobs", h.id()) == CancelResult::delayed);
    auto out = h.wait_for(10s);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::canceled);
    TestConn c(rs.url());
    CHECK(c.cmd({"ZCARD", "streamfleet:{jobs}:delayed"}).value().integer() == 0);
    CHECK(runs == 1);

    Client plain({.redis = rs.url(), .track_state = false}, {"jobs"});
    auto id = plain.enqueue("jobs", "untracked", {.max_retries = 1});
    REQUIRE(eventually([&] { return runs == 3; }));
    CHECK(plain.get("jobs", id).state == TaskState::unknown);
    CHECK_THROWS_AS(plain.cancel("jobs", id), NotFound);
    auto keys = c.cmd({"KEYS", "streamfleet:{jobs}:task:*"}).value();
    CHECK(keys.size() == 1);  // only the tracked task's record
    server.shutdown(5s);
}

TEST_CASE("unique tasks: a second enqueue inside the window is a Duplicate naming the first") {
    RedisServer rs;
    Client client({.redis = rs.url()}, {"jobs"});
    TaskOptions o{.unique_key = "report:42", .unique_ttl = 400ms};
    auto first = client.enqueue("jobs", "a", o);
    try {
        client.enqueue("jobs", "b", o);
        FAIL("expected Duplicate");
    } catch (const Duplicate& e) {
        CHECK(e.existing_id() == first);
        CHECK(std::string(e.what()).find("report:42") != std::string::npos);
    }
    CHECK_THROWS_AS(client.enqueue_tracked("jobs", "c", o), Duplicate);
    // Another key is independent; so is the same key after the window.
    auto other = client.enqueue("jobs", "d", {.unique_key = "report:43", .unique_ttl = 400ms});
    CHECK(other != first);
    std::this_thread::sleep_for(500ms);
    auto again = client.enqueue("jobs", "e", o);
    CHECK(again != first);
    CHECK_THROWS_WITH_AS(client.enqueue("jobs", "x", {.unique_key = "k"}),
                         doctest::Contains("unique_ttl"), InvalidArgument);
    CHECK_THROWS_AS(client.enqueue_many("jobs", {"1", "2"}, o), InvalidArgument);
    client.close(5s);  // every accepted task is in Redis now
    TestConn c(rs.url());
    CHECK(c.cmd({"XLEN", "streamfleet:{jobs}"}).value().integer() == 3);  // a, d, e
}

TEST_CASE("CLI: get --json names the state, cancel reports what it did, unknown ids fail") {
    RedisServer rs;
    auto cli = streamfleet::test::cli_path();
    auto sh = streamfleet::test::shell;
    auto [id_line, rc] =
        sh(cli + " enqueue --redis " + rs.url() + " --queue q --data hi --delay-ms 60000");
    REQUIRE(rc == 0);
    auto id = id_line.substr(0, id_line.find('\n'));
    auto [json, rc2] = sh(cli + " get --redis " + rs.url() + " --queue q --id " + id + " --json");
    CHECK(rc2 == 0);
    CHECK(json.find("\"state\":\"delayed\"") != std::string::npos);
    auto [what, rc3] = sh(cli + " cancel --redis " + rs.url() + " --queue q --id " + id);
    CHECK(rc3 == 0);
    CHECK(what == "delayed\n");
    auto [json2, rc4] = sh(cli + " get --redis " + rs.url() + " --queue q --id " + id + " --json");
    CHECK(json2.find("\"state\":\"canceled\"") != std::string::npos);
    auto [none, rc5] = sh(cli + " cancel --redis " + rs.url() + " --queue q --id nope 2>&1");
    CHECK(rc5 == 1);
    CHECK(none.find("no task 'nope'") != std::string::npos);
    auto [unk, rc6] = sh(cli + " get --redis " + rs.url() + " --queue q --id nope --json");
    CHECK(rc6 == 1);
    CHECK(unk.find("\"state\":\"unknown\"") != std::string::npos);
    auto [dup, rc7] = sh("printf 'a\\nb\\n' | " + cli + " enqueue --redis " + rs.url() +
                         " --queue q --lines --unique-key k --unique-ttl-ms 60000 2>&1");
    CHECK(rc7 == 1);
    CHECK(dup.find("duplicate of task") != std::string::npos);
}

TEST_CASE("the Inspector lists delayed tasks and retries, and tasks in flight") {
    RedisServer rs;
    Client client({.redis = rs.url()}, {"jobs"});
    Inspector inspector(rs.url());
    CHECK(inspector.pending("jobs").empty());  // no server ever read: no group, nothing pending
    auto later = client.enqueue("jobs", "later", {.delay = 60s});
    auto sooner = client.enqueue("jobs", "sooner", {.delay = 30s});
    client.close(5s);
    auto d = inspector.delayed("jobs");
    REQUIRE(d.size() == 2);
    CHECK(d[0].id == sooner);  // earliest first
    CHECK(d[0].data == "sooner");
    CHECK(d[1].id == later);
    CHECK(d[0].due_ms < d[1].due_ms);
    CHECK(d[0].retries == 0);
    CHECK(inspector.delayed("jobs", 1).size() == 1);
    auto second = inspector.delayed("jobs", 1, 1);  // the second page of one
    REQUIRE(second.size() == 1);
    CHECK(second[0].id == later);
    CHECK(inspector.delayed("jobs", 10, 2).empty());

    std::atomic<bool> release{false};
    Server server(server_opts(rs, "holder"));
    server.handle("jobs", [&](TaskContext&) {
        while (!release) std::this_thread::sleep_for(5ms);
    });
    server.start();
    Client c2({.redis = rs.url()}, {"jobs"});
    auto busy = c2.enqueue("jobs", "busy");
    auto busy2 = c2.enqueue("jobs", "busy too");
    REQUIRE(eventually([&] { return inspector.pending("jobs").size() == 2; }));
    auto p = inspector.pending("jobs");
    CHECK(p[0].id == busy);
    CHECK(p[0].server == "holder");
    CHECK(p[0].deliveries == 1);
    // Paged by entry id: the page after the first one holds the second task only.
    auto page1 = inspector.pending("jobs", 1);
    REQUIRE(page1.size() == 1);
    CHECK(page1[0].id == busy);
    auto page2 = inspector.pending("jobs", 1, page1[0].entry_id);
    REQUIRE(page2.size() == 1);
    CHECK(page2[0].id == busy2);
    CHECK(inspector.pending("jobs", 1, page2[0].entry_id).empty());
    release = true;
    REQUIRE(eventually([&] { return inspector.pending("jobs").empty(); }));
    server.shutdown(5s);
}

TEST_CASE(
    "get and cancel from an on_done callback fail with a clear error instead of deadlocking") {
    RedisServer rs;
    Server server(server_opts(rs));
    server.handle("jobs", [](TaskContext&) {});
    Client client({.redis = rs.url()}, {"jobs"});
    auto h = client.enqueue_tracked("jobs", "x");
    std::promise<std::string> seen;
    // Registered before any server runs, so it is called on the loop thread.
    h.on_done([&](const TaskOutcome&) {
        try {
            client.get("jobs", h.id());
            seen.set_value("no error");
        } catch (const InvalidArgument& e) {
            seen.set_value(e.what());
        }
    });
    server.start();
    auto fut = seen.get_future();
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    CHECK(fut.get().find("event-loop thread") != std::string::npos);
    CHECK(client.get("jobs", h.id()).state == TaskState::completed);  // fine from this thread
    server.shutdown(5s);
}
