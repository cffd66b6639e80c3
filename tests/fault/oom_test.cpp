// Redis out of memory (maxmemory + noeviction) while tasks finish: Redis refuses every write that
// needs memory (XADD, ZADD, HSET, a script's first such write) but still takes XACK, XCLAIM and
// XDEL. An ack must never go through before the outcome it acknowledges is written, and the
// entries whose outcome waits must stay leased to the server that ran them.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "streamfleet/streamfleet.hpp"
#include "support/redis_server.hpp"
#include "support/tally.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using streamfleet::test::eventually;
using streamfleet::test::RedisServer;
using streamfleet::test::TestConn;

namespace {

// Runs per task payload, counted one by one.
using Runs = streamfleet::test::Tally;

ServerOptions server_opts(const RedisServer& rs, std::string id) {
    // A short lease, so an entry whose lease is not renewed while its outcome waits is taken over
    // (and run again) by a peer within the squeeze; dead_after long enough that the refused
    // heartbeats of a few seconds do not make a live server look dead.
    return ServerOptions{.redis = rs.url(),
                         .id = std::move(id),
                         .concurrency = 4,
                         .read_block = 500ms,
                         .heartbeat_interval = 500ms,
                         .lease = 1500ms,
                         .dead_after = 60s};
}

}  // namespace

TEST_CASE("OOM while tasks finish: every outcome is written before its ack, nothing runs twice") {
    // Completions (with and without state records, tracked or not), retries and dead letters,
    // all finishing while Redis is out of memory.
    RedisServer rs;
    TestConn admin(rs.url());
    REQUIRE(admin.cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction"}).ok());

    Runs runs;
    // Before the clients: a client closing resolves its open handles, which report here.
    std::mutex seen_m;
    std::map<std::string, std::vector<TaskStatus>> resolved;  // by task id
    std::atomic<bool> squeezed{false};
    auto handler = [&](TaskContext& t) -> Outcome {
        // Every run finishes while Redis refuses writes.
        while (!squeezed) std::this_thread::sleep_for(2ms);
        std::this_thread::sleep_for(20ms);
        runs.add(t.data());
        // The flaky ones fail their first run: the retry (move.lua) meets the refusal too.
        if (t.data().starts_with("flaky") && t.retries() == 0) return Outcome::failure("flaky");
        // The doomed ones are dead-lettered (move.lua, then the notification).
        if (t.data().starts_with("doomed")) return Outcome::dead("doomed");
        return Outcome::success();
    };
    Server a(server_opts(rs, "oom-a"));
    Server b(server_opts(rs, "oom-b"));
    a.handle("jobs", handler);
    b.handle("jobs", handler);
    a.start();
    b.start();

    // With state records (tracked and fire-and-forget), and tracked without any record: then the
    // notification is the only trace of the outcome.
    Client with_state({.redis = rs.url()}, {"jobs"});
    Client without_state({.redis = rs.url(), .track_state = false}, {"jobs"});
    constexpr int kTracked = 30, kPlain = 10, kBare = 10, kFlaky = 10, kDoomed = 5;
    std::vector<TaskHandle> handles;
    std::vector<std::string> recorded;  // ids with a state record
    std::map<std::string, std::string> data_of;
    auto track = [&](TaskHandle h) {
        h.on_done([&, id = h.id()](const TaskOutcome& o) {
            std::lock_guard lock(seen_m);
            resolved[id].push_back(o.status);
        });
        handles.push_back(std::move(h));
    };
    for (int i = 0; i < kTracked; ++i) {
        auto d = "tracked-" + std::to_string(i);
        track(with_state.enqueue_tracked("jobs", d));
        recorded.push_back(handles.back().id());
        data_of[handles.back().id()] = d;
    }
    for (int i = 0; i < kPlain; ++i) {
        auto d = "plain-" + std::to_string(i);
        auto id = with_state.enqueue("jobs", d);
        recorded.push_back(id);
        data_of[id] = d;
    }
    for (int i = 0; i < kFlaky; ++i) {
        auto d = "flaky-" + std::to_string(i);
        // An immediate retry: XADD back to the stream in the script that acks the failed run.
        track(with_state.enqueue_tracked("jobs", d, {.backoff = Backoff::fixed}));
        recorded.push_back(handles.back().id());
        data_of[handles.back().id()] = d;
    }
    for (int i = 0; i < kDoomed; ++i) {
        auto d = "doomed-" + std::to_string(i);
        track(with_state.enqueue_tracked("jobs", d));
        recorded.push_back(handles.back().id());
        data_of[handles.back().id()] = d;
    }
    for (int i = 0; i < kBare; ++i) {
        auto d = "bare-" + std::to_string(i);
        track(without_state.enqueue_tracked("jobs", d));
        data_of[handles.back().id()] = d;
    }
    constexpr int kTotal = kTracked + kPlain + kBare + kFlaky + kDoomed;
    REQUIRE(eventually([&] {
        auto n = admin.cmd({"XLEN", "streamfleet:{jobs}"});
        return n.ok() && n->integer() == kTotal;
    }));

    // Squeeze: nothing that needs memory is accepted any more.
    REQUIRE(admin.cmd({"CONFIG", "SET", "maxmemory", "1"}).ok());
    auto refused = admin.cmd({"SET", "probe", "1"});
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message().find("OOM") != std::string::npos);
    squeezed = true;

    // Every task runs while Redis refuses its outcome; then the squeeze lasts well past the lease,
    // so entries left without a renewed lease would be taken over by the peer and run again.
    REQUIRE(eventually([&] { return static_cast<int>(runs.snapshot().size()) == kTotal; }, 30s));
    std::this_thread::sleep_for(4s);
    {
        std::lock_guard lock(seen_m);
        CHECK(resolved.empty());  // no outcome could be written, so none was heard of
    }
    auto pending = admin.cmd({"XPENDING", "streamfleet:{jobs}", "streamfleet-server"});
    if (!pending.ok()) FAIL("XPENDING: ", pending.error().message());
    CHECK((*pending)[0].integer() == kTotal);  // no ack went through without its outcome

    REQUIRE(admin.cmd({"CONFIG", "SET", "maxmemory", "0"}).ok());

    auto until = std::chrono::steady_clock::now() + 30s;
    for (auto& h : handles) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
        auto out = h.wait_for(std::max(left, 0ms));
        CHECK_MESSAGE(out, "task ", h.id(), " (", data_of[h.id()], ") never resolved");
        bool doomed = data_of[h.id()].starts_with("doomed");
        if (out) CHECK(out->status == (doomed ? TaskStatus::error : TaskStatus::completed));
    }
    for (const auto& id : recorded) {
        CAPTURE(data_of[id]);
        auto want = data_of[id].starts_with("doomed") ? TaskState::dead : TaskState::completed;
        CHECK(eventually([&] { return with_state.get("jobs", id).state == want; }, 20s));
    }
    CHECK(eventually([&] {
        auto p = admin.cmd({"XPENDING", "streamfleet:{jobs}", "streamfleet-server"});
        auto n = admin.cmd({"XLEN", "streamfleet:{jobs}"});
        return p.ok() && n.ok() && (*p)[0].integer() == 0 && n->integer() == 0;
    }));
    auto dead = admin.cmd({"XLEN", "streamfleet:{jobs}:dead"});
    REQUIRE(dead.ok());
    CHECK(dead->integer() == kDoomed);   // each dead-lettered once
    std::this_thread::sleep_for(500ms);  // a second run would show up by now
    auto counted = runs.snapshot();
    CHECK(static_cast<int>(counted.size()) == kTotal);
    int twice = 0;
    for (const auto& [d, n] : counted) {
        CAPTURE(d);
        int want = d.starts_with("flaky") ? 2 : 1;  // a failed run and its retry
        CHECK(n == want);
        twice += n > want;
    }
    {
        std::lock_guard lock(seen_m);
        CHECK(resolved.size() == handles.size());
        for (const auto& [id, statuses] : resolved) {
            CAPTURE(data_of[id]);
            CHECK(statuses.size() == 1);
        }
    }
    MESSAGE("tasks ", kTotal, ", runs ", counted.size(), " ids, ", twice, " ran more than due, ",
            resolved.size(), " of ", handles.size(),
            " handles resolved; stats a: ", a.stats().succeeded, " b: ", b.stats().succeeded);
    a.shutdown(5s);
    b.shutdown(5s);
}
