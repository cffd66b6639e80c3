// The client under Redis faults and refusals (issue 11, items 3, 11 and 12):
// refused enqueues reach the caller and hold nothing up, OOM is waited out
// for a bounded time, a resend after a lost reply adds no second entry, a
// large payload is not timed out while Redis reads it, close() and a Redis
// restarted empty end every tracked wait. Each against a real redis-server,
// counting tasks one by one.

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "streamfleet/streamfleet.hpp"
#include "support/redis_server.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using streamfleet::test::entry_fields;
using streamfleet::test::eventually;
using streamfleet::test::RedisServer;
using streamfleet::test::RedisServerOptions;
using streamfleet::test::TestConn;

namespace {

// Every refusal reported to ClientOptions::on_refused, by task id.
struct Refusals {
    std::mutex m;
    std::map<std::string, std::string> by_id;  // id → Redis's reply
    std::size_t calls = 0;

    std::function<void(const std::string&, const Refused&)> callback() {
        return [this](const std::string& id, const Refused& why) {
            std::lock_guard lock(m);
            ++calls;
            by_id[id] = why.what();
            CHECK(why.task_id() == id);
        };
    }
    std::size_t count() {
        std::lock_guard lock(m);
        return calls;
    }
    std::set<std::string> ids() {
        std::lock_guard lock(m);
        std::set<std::string> out;
        for (const auto& [id, _] : by_id) out.insert(id);
        return out;
    }
};

// How many entries of `stream` carry each task id.
std::map<std::string, int> entries_by_id(TestConn& c, const std::string& stream) {
    std::map<std::string, int> out;
    auto r = c.cmd({"XRANGE", stream, "-", "+"}).value();
    for (std::size_t i = 0; i < r.size(); ++i) out[entry_fields(r[i])["id"]] += 1;
    return out;
}

bool drained(Client& client, std::chrono::milliseconds limit = 20s) {
    return eventually([&] { return client.buffered() == 0; }, limit);
}

}  // namespace

TEST_CASE("close() resolves open handles as closed, not canceled: the tasks may still run") {
    RedisServer server;
    TestConn c(server.url());
    Client client({.redis = server.url()}, {"q"});
    auto h = client.enqueue_tracked("q", "x");
    REQUIRE(drained(client));
    client.close();
    auto out = h.wait_for(0ms);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::closed);
    CHECK(to_string(out->status) == "closed");
    CHECK(out->error.find("may still run") != std::string::npos);
    // The task itself is untouched: still in the queue for a worker.
    CHECK(entries_by_id(c, "streamfleet:{q}")[h.id()] == 1);
}

TEST_CASE("a refused enqueue (WRONGTYPE) reaches the caller every way, once, and is not resent") {
    // With records the enqueue script refuses; without, the XADDs fail inside
    // an EXEC whose other commands (the ledger's notes) ran.
    bool state = true;
    SUBCASE("with state records") {}
    SUBCASE("without state records") { state = false; }
    CAPTURE(state);
    RedisServer server;
    TestConn c(server.url());
    REQUIRE(c.cmd({"SET", "streamfleet:{bad}", "not a stream"}).ok());
    Refusals refusals;
    Client client({.redis = server.url(), .on_refused = refusals.callback(), .track_state = state},
                  {"bad", "good"});

    auto plain = client.enqueue("bad", "fire-and-forget");
    auto tracked = client.enqueue_tracked("bad", "tracked");
    std::string thrown_for;
    try {
        client.enqueue_confirmed("bad", "waits", {}, 20s);
        FAIL("enqueue_confirmed of a refused task returned");
    } catch (const Refused& e) {
        thrown_for = e.task_id();
        CHECK(std::string(e.what()).find("WRONGTYPE") != std::string::npos);
    }
    auto out = tracked.wait_for(20s);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::refused);
    CHECK(out->error.find("WRONGTYPE") != std::string::npos);
    REQUIRE(eventually([&] { return refusals.count() == 3; }));
    CHECK(refusals.ids() == std::set<std::string>{plain, tracked.id(), thrown_for});
    CHECK(refusals.by_id[plain].find("WRONGTYPE") != std::string::npos);
    CHECK(drained(client));

    // Nothing is held up, and nothing refused comes back.
    auto ok = client.enqueue_confirmed("good", "fine", {}, 20s);
    CHECK(entries_by_id(c, "streamfleet:{good}")[ok] == 1);
    auto calls = [&] {
        auto text = std::string(c.cmd({"INFO", "errorstats"}).value().str());
        auto at = text.find("errorstat_WRONGTYPE:count=");
        return at == std::string::npos ? 0L : std::stol(text.substr(at + 26));
    };
    auto before = calls();
    std::this_thread::sleep_for(1200ms);  // two resend periods: none may happen
    CHECK(calls() == before);
    CHECK(refusals.count() == 3);
}

TEST_CASE("enqueue_async: each callback hears once (stored or refused), and close tells the rest") {
    RedisServer server;
    TestConn c(server.url());
    REQUIRE(c.cmd({"SET", "streamfleet:{bad}", "not a stream"}).ok());
    Refusals refusals;
    Client client({.redis = server.url(), .on_refused = refusals.callback()}, {"bad", "good"});
    std::mutex m;
    std::map<std::string, std::vector<std::string>> heard;  // id -> "" (stored) or the error
    auto note = [&](const TaskId& id, std::exception_ptr why) {
        std::string what;
        if (why) {
            try {
                std::rethrow_exception(why);
            } catch (const Refused& e) {
                what = std::string("Refused: ") + e.what();
            } catch (const ClosedError& e) {
                what = std::string("ClosedError: ") + e.what();
            } catch (const std::exception& e) {
                what = std::string("other: ") + e.what();
            }
        }
        std::lock_guard lock(m);
        heard[id].push_back(what);
    };
    auto count = [&] {
        std::lock_guard lock(m);
        return heard.size();
    };
    std::set<std::string> good;
    for (int i = 0; i < 300; ++i) good.insert(client.enqueue_async("good", "g", {}, note));
    auto bad = client.enqueue_async("bad", "b", {}, note);
    REQUIRE(eventually([&] { return count() == 301; }));
    {
        std::lock_guard lock(m);
        for (const auto& id : good) {
            REQUIRE(heard[id].size() == 1);
            CHECK(heard[id][0].empty());
        }
        REQUIRE(heard[bad].size() == 1);
        CHECK(heard[bad][0].find("Refused") == 0);
        CHECK(heard[bad][0].find("WRONGTYPE") != std::string::npos);
    }
    CHECK(c.cmd({"XLEN", "streamfleet:{good}"}).value().integer() == 300);
    CHECK_THROWS_AS(client.enqueue_async("good", "x", {}, nullptr), InvalidArgument);

    // Redis answers nothing: the callbacks wait with their tasks, and close tells them.
    server.pause();
    std::set<std::string> stuck;
    for (int i = 0; i < 5; ++i) stuck.insert(client.enqueue_async("good", "s", {}, note));
    std::this_thread::sleep_for(300ms);
    CHECK(count() == 301);
    CHECK_FALSE(client.close(300ms));
    server.resume();
    std::lock_guard lock(m);
    CHECK(heard.size() == 306);
    for (const auto& id : stuck) {
        REQUIRE(heard[id].size() == 1);
        CHECK(heard[id][0].find("ClosedError") == 0);
    }
}

TEST_CASE("NOPERM: an ACL user that may not enqueue gets Refused at once, not endless resends") {
    bool state = true;
    SUBCASE("with state records") {}
    SUBCASE("without state records (a MULTI block refused at queue time)") { state = false; }
    CAPTURE(state);
    RedisServer server;
    TestConn c(server.url());
    REQUIRE(c.cmd({"ACL", "SETUSER", "reader", "on", ">pw", "~*", "&*", "+@all", "-xadd", "-eval",
                   "-evalsha"})
                .ok());
    Refusals refusals;
    auto url = "redis://reader:pw@127.0.0.1:" + std::to_string(server.port());
    Client client({.redis = url, .on_refused = refusals.callback(), .track_state = state}, {"q"});
    try {
        client.enqueue_confirmed("q", "x", {}, 20s);
        FAIL("enqueue_confirmed without permission returned");
    } catch (const Refused& e) {
        CHECK(std::string(e.what()).find("NOPERM") != std::string::npos);
    }
    auto id = client.enqueue("q", "y");
    REQUIRE(eventually([&] { return refusals.count() == 2; }));
    CHECK(refusals.ids().count(id) == 1);
    CHECK(drained(client));
    CHECK(c.cmd({"XLEN", "streamfleet:{q}"}).value().integer() == 0);
}

TEST_CASE("a refused task leaves the spool: the next client does not send it again") {
    RedisServer server;
    TestConn c(server.url());
    REQUIRE(c.cmd({"SET", "streamfleet:{bad}", "not a stream"}).ok());
    auto path = server.dir() + "/refused.spool";
    Refusals first, second;
    std::string good;
    {
        Client client({.redis = server.url(), .spool_path = path, .on_refused = first.callback()},
                      {"bad", "good"});
        client.enqueue("bad", "refused");
        good = client.enqueue("good", "fine");
        REQUIRE(eventually([&] { return first.count() == 1; }));
        REQUIRE(drained(client));
    }
    Client again({.redis = server.url(), .spool_path = path, .on_refused = second.callback()},
                 {"bad", "good"});
    REQUIRE(drained(again));
    std::this_thread::sleep_for(300ms);  // a replayed refusal would be reported by now
    CHECK(second.count() == 0);
    CHECK(entries_by_id(c, "streamfleet:{good}")[good] == 1);
}

TEST_CASE("a payload over proto-max-bulk-len is refused alone; the tasks around it go through") {
    RedisServer server(RedisServerOptions{.extra_config = {"proto-max-bulk-len 1mb"}});
    TestConn c(server.url());
    Refusals refusals;
    for (bool state : {true, false}) {
        CAPTURE(state);
        Client client(
            {.redis = server.url(), .on_refused = refusals.callback(), .track_state = state},
            {"q"});
        std::vector<std::string> small;
        for (int i = 0; i < 10; ++i)
            small.push_back(client.enqueue("q", "before" + std::to_string(i)));
        auto big = client.enqueue("q", std::string(2 << 20, 'x'));
        for (int i = 0; i < 10; ++i)
            small.push_back(client.enqueue("q", "after" + std::to_string(i)));
        REQUIRE(drained(client));
        CHECK(refusals.ids().count(big) == 1);
        auto seen = entries_by_id(c, "streamfleet:{q}");
        for (const auto& id : small) CHECK(seen[id] == 1);
        CHECK(seen.count(big) == 0);
    }
    CHECK(refusals.count() == 2);
}

TEST_CASE("OOM: a task is retried with backoff while memory may come back, then refused") {
    RedisServer server;
    TestConn c(server.url());
    Refusals refusals;
    Client client(
        {.redis = server.url(), .on_refused = refusals.callback(), .oom_patience = 1500ms}, {"q"});
    REQUIRE(client.enqueue_confirmed("q", "warm", {}, 20s).size() > 0);
    auto oom_count = [&] {
        auto text = std::string(c.cmd({"INFO", "errorstats"}).value().str());
        auto at = text.find("errorstat_OOM:count=");
        return at == std::string::npos ? 0L : std::stol(text.substr(at + 20));
    };

    // Memory comes back within oom_patience: the task lands, once.
    REQUIRE(c.cmd({"CONFIG", "SET", "maxmemory-policy", "noeviction"}).ok());
    REQUIRE(c.cmd({"CONFIG", "SET", "maxmemory", "1"}).ok());
    auto back = client.enqueue_tracked("q", "memory comes back");
    REQUIRE(eventually([&] { return oom_count() >= 1; }));
    REQUIRE(c.cmd({"CONFIG", "SET", "maxmemory", "0"}).ok());
    REQUIRE(drained(client));
    CHECK(entries_by_id(c, "streamfleet:{q}")[back.id()] == 1);
    CHECK_FALSE(back.done());
    CHECK(refusals.count() == 0);

    // It does not: refused after oom_patience, having been tried several times.
    REQUIRE(c.cmd({"CONFIG", "SET", "maxmemory", "1"}).ok());
    auto before = oom_count();
    auto start = std::chrono::steady_clock::now();
    auto never = client.enqueue_tracked("q", "memory stays short");
    auto out = never.wait_for(20s);
    auto took = std::chrono::steady_clock::now() - start;
    REQUIRE(out);
    CHECK(out->status == TaskStatus::refused);
    CHECK(out->error.find("OOM") != std::string::npos);
    CHECK(took >= 1500ms);
    CHECK(oom_count() - before >= 2);
    // on_refused runs on the client's loop after the handle resolved: wait for it.
    CHECK(eventually([&] { return refusals.ids() == std::set<std::string>{never.id()}; }));
    CHECK(drained(client));
    REQUIRE(c.cmd({"CONFIG", "SET", "maxmemory", "0"}).ok());
    CHECK(entries_by_id(c, "streamfleet:{q}").count(never.id()) == 0);
}

TEST_CASE("a resend after a lost reply adds no second entry (Redis frozen past the timeout)") {
    // With a state record (the default) the record proves the first send;
    // without one (track_state = false) the client's ledger does.
    for (bool track_state : {true, false}) {
        CAPTURE(track_state);
        RedisServer server;
        TestConn c(server.url());
        Client client({.redis = server.url(), .command_timeout = 300ms, .track_state = track_state},
                      {"q"});
        REQUIRE(client.enqueue_confirmed("q", "warm", {}, 20s).size() > 0);
        server.pause();
        // Written to the frozen server's socket, timed out, connection reset.
        // The frozen server still holds the bytes and runs the commands once
        // thawed; the client, which never saw the replies, sends them again.
        std::vector<std::string> ids;
        ids.push_back(client.enqueue("q", "once"));
        for (auto& id : client.enqueue_many("q", {"a", "b", "c"})) ids.push_back(id);
        if (track_state) ids.push_back(client.enqueue_tracked("q", "tracked").id());
        std::this_thread::sleep_for(1s);  // past the timeout; nothing to poll on a frozen server
        server.resume();
        REQUIRE(drained(client));
        std::this_thread::sleep_for(300ms);  // let the thawed server finish the old socket's bytes
        auto entries = entries_by_id(c, "streamfleet:{q}");
        for (const auto& id : ids) CHECK_MESSAGE(entries[id] == 1, id);
        CHECK(entries.size() == ids.size() + 1);
        if (!track_state) {
            // The ledger holds only what is not yet settled; after another
            // send it holds nothing older than that send.
            REQUIRE(client.enqueue_confirmed("q", "after", {}, 20s).size() > 0);
            auto keys = c.cmd({"KEYS", "streamfleet:{q}:sent:*"}).value();
            REQUIRE(keys.size() == 1);
            CHECK(c.cmd({"ZCARD", std::string(keys[0].str())}).value().integer() <= 1);
            CHECK(c.cmd({"PTTL", std::string(keys[0].str())}).value().integer() > 0);
        }
    }
}

TEST_CASE("a 32 MiB payload is not timed out while Redis reads it: one entry, one run") {
    RedisServer server;
    TestConn c(server.url());
    // A timeout far shorter than the time Redis needs to read and store 32
    // MiB (main: timed out, reset and resent until the test gave up).
    Client client({.redis = server.url(), .command_timeout = 50ms}, {"big"});
    const std::string payload(32 << 20, 'p');
    auto id = client.enqueue("big", payload);
    REQUIRE(drained(client, 60s));
    std::this_thread::sleep_for(500ms);  // a duplicate would be in by now
    CHECK(c.cmd({"XLEN", "streamfleet:{big}"}).value().integer() == 1);

    std::atomic<int> runs{0};
    Server worker(ServerOptions{.redis = server.url(), .id = "w1", .read_block = 500ms});
    worker.handle("big", [&](TaskContext& t) {
        if (t.id() == id && t.data().size() == payload.size()) runs += 1;
    });
    worker.start();
    REQUIRE(eventually([&] { return runs.load() >= 1; }, 60s));
    std::this_thread::sleep_for(500ms);
    CHECK(runs.load() == 1);
    worker.shutdown(5s);
}

TEST_CASE("a Redis restarted without persistence ends the tracked waits of the tasks it lost") {
    RedisServer server;
    Client client({.redis = server.url()}, {"q"});
    auto lost = client.enqueue_tracked("q", "stored, then lost");
    REQUIRE(drained(client));
    server.kill();  // no AOF, no snapshot: the restarted server is empty
    // Accepted while Redis is down: not lost, sent to the new server.
    auto later = client.enqueue_tracked("q", "sent after the restart");
    server.restart();

    auto out = lost.wait_for(30s);
    REQUIRE(out);  // today: no outcome ever comes
    CHECK(out->status == TaskStatus::lost);
    REQUIRE(drained(client));
    TestConn c2(server.url());
    REQUIRE(eventually([&] { return entries_by_id(c2, "streamfleet:{q}")[later.id()] == 1; }));
    CHECK_FALSE(later.done());
    // A wait with a timeout honours it whatever happens.
    auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(later.wait_for(200ms));
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
}
TEST_CASE("after Redis restarts empty, a task resent to it still has its outcome heard") {
    RedisServer server;
    Client client({.redis = server.url()}, {"q"});
    // A worker, reconnecting like the client, that finishes each task at once
    // as soon as the resent tasks land. Its connections, the client's shared
    // one (which resends) and the client's listener each come back after
    // their own jittered backoff (0.5-1 s once Redis has been down a while),
    // so the tasks often finish before the listener has recreated its
    // stream: those notifications are dropped, and the records must tell.
    // Three rounds, since the order of the returns is left to chance (without
    // the records' word, 2 of 5 single rounds failed).
    Server worker({.redis = server.url(), .id = "w1"});
    worker.handle("q", [](TaskContext&) {});
    worker.start();
    for (int round = 0; round < 3; ++round) {
        CAPTURE(round);
        REQUIRE(drained(client));
        server.kill();  // no persistence: the notification stream is gone with it
        std::vector<TaskHandle> handles;
        for (int i = 0; i < 20; ++i) handles.push_back(client.enqueue_tracked("q", "resent"));
        std::this_thread::sleep_for(2s);
        server.restart();
        for (auto& h : handles) {
            auto out = h.wait_for(20s);
            REQUIRE(out);
            CHECK(out->status == TaskStatus::completed);
        }
    }
    worker.shutdown();
}

// Figures for the report (skipped by default; run with -tc="measure*" --no-skip):
// a SF_BIG_MIB MiB payload (256) under a SF_TIMEOUT_MS command timeout (5000).
TEST_CASE("measure: entries and runs of one big payload" * doctest::skip()) {
    long mib = std::getenv("SF_BIG_MIB") ? std::atol(std::getenv("SF_BIG_MIB")) : 256;
    long tms = std::getenv("SF_TIMEOUT_MS") ? std::atol(std::getenv("SF_TIMEOUT_MS")) : 5000;
    RedisServer server;
    TestConn c(server.url());
    Client client({.redis = server.url(), .command_timeout = std::chrono::milliseconds(tms)},
                  {"big"});
    const std::string payload(static_cast<std::size_t>(mib) << 20, 'p');
    auto t0 = std::chrono::steady_clock::now();
    auto id = client.enqueue("big", payload);
    bool ok = drained(client, 120s);
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::this_thread::sleep_for(1s);
    auto n = static_cast<int>(c.cmd({"XLEN", "streamfleet:{big}"}).value().integer());
    std::atomic<int> runs{0};
    Server worker(ServerOptions{.redis = server.url(), .id = "w1", .read_block = 500ms});
    worker.handle("big", [&](TaskContext& t) {
        if (t.id() == id) runs += 1;
    });
    worker.start();
    eventually([&] { return runs.load() >= n; }, 120s);
    std::this_thread::sleep_for(2s);
    MESSAGE(mib << " MiB, timeout " << tms << " ms: drained=" << ok << " after " << secs
                << " s; entries=" << n << " runs=" << runs.load());
    worker.shutdown(5s);
    client.close(200ms);
}
