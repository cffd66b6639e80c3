// Client against a real redis-server. No Server exists yet, so the test plays
// the worker's part by hand: it reads the stream with redis commands and
// writes notifications into the client's stream.

#include "streamfleet/client.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <thread>

#include "core/uuid.hpp"
#include "core/wire.hpp"
#include "support/redis_server.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using streamfleet::test::entry_fields;
using streamfleet::test::eventually;
using streamfleet::test::RedisServer;
using streamfleet::test::TestConn;
namespace d = streamfleet::detail;

namespace {

// Waits until the stream holds `n` entries (the client sends asynchronously).
d::redis::Reply wait_entries(TestConn& c, const std::string& stream, std::size_t n) {
    for (int i = 0; i < 500; ++i) {
        auto r = c.cmd({"XRANGE", stream, "-", "+"}).value();
        if (r.size() >= n) return r;
        std::this_thread::sleep_for(10ms);
    }
    FAIL("stream " << stream << " never reached " << n << " entries");
    return {};
}

void notify(TestConn& c, const Client& client, const std::string& task_id, const char* type,
            const char* err = "") {
    REQUIRE(c.cmd({"XADD", "streamfleet:receiver:{" + client.id() + "}", "*", "enc_version", "1",
                   "task_id", task_id, "type", type, "err_msg", err})
                .ok());
}

}  // namespace

TEST_CASE("enqueue writes a v1 task entry to P{Q}") {
    RedisServer server;
    TestConn c(server.url());
    Client client({.redis = server.url()}, {"emails"});
    auto before = std::chrono::system_clock::now();
    auto id = client.enqueue("emails", std::string("he\0llo", 6),
                             {.max_retries = 3, .retry_delay = 250ms, .expires_in = 60s});
    auto entries = wait_entries(c, "streamfleet:{emails}", 1);
    auto f = entry_fields(entries[0]);
    CHECK(f["enc_version"] == "1");
    CHECK(f["id"] == id);
    CHECK(f["client_id"] == client.id());
    CHECK(f["data"] == std::string("he\0llo", 6));
    CHECK(f["max_retries"] == "3");
    CHECK(f["retry_delay"] == "250");
    CHECK(f["send_notif"] == "0");
    CHECK(f["retries"] == "0");
    auto now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(before.time_since_epoch()).count();
    auto expires = std::stoll(f["expires_ts"]);
    CHECK(expires >= now_ms + 60'000);
    CHECK(expires < now_ms + 70'000);
    CHECK(d::is_uuid_v7(id));
}

TEST_CASE("a burst without state records leaves no ledger notes behind once it is confirmed") {
    RedisServer server;
    TestConn c(server.url());
    Client client({.redis = server.url(), .track_state = false}, {"emails"});
    const auto ledger = "streamfleet:{emails}:sent:" + client.id();
    for (int i = 0; i < 2000; ++i) client.enqueue("emails", "x");
    REQUIRE(eventually([&] { return client.buffered() == 0; }));
    wait_entries(c, "streamfleet:{emails}", 2000);
    // The notes of the last batches, of no more use, go once the client has been idle a moment.
    CHECK(eventually([&] { return c.cmd({"EXISTS", ledger}).value().integer() == 0; }, 5s));
    // A later send starts a new ledger, dropped the same way.
    client.enqueue("emails", "y");
    REQUIRE(eventually([&] { return client.buffered() == 0; }));
    CHECK(eventually([&] { return c.cmd({"EXISTS", ledger}).value().integer() == 0; }, 5s));
    CHECK(c.cmd({"XLEN", "streamfleet:{emails}"}).value().integer() == 2001);
}

TEST_CASE("tracked tasks resolve from notifications; unknown ones are counted") {
    RedisServer server;
    TestConn c(server.url());
    Client client({.redis = server.url()}, {"q"});
    auto ok = client.enqueue_tracked("q", "a");
    auto bad = client.enqueue_tracked("q", "b");
    auto late = client.enqueue_tracked("q", "c");
    CHECK_FALSE(ok.done());
    CHECK(ok.wait_for(50ms) == std::nullopt);

    std::atomic<int> callbacks{0};
    ok.on_done([&](const TaskOutcome& o) {
        CHECK(o.status == TaskStatus::completed);
        ++callbacks;
    });
    // Several threads wait on one handle.
    std::vector<std::thread> waiters;
    std::atomic<int> woke{0};
    for (int i = 0; i < 3; ++i) {
        waiters.emplace_back([&] {
            if (bad.wait().status == TaskStatus::error) ++woke;
        });
    }
    auto entries = wait_entries(c, "streamfleet:{q}", 3);
    CHECK(entry_fields(entries[0])["send_notif"] == "1");
    notify(c, client, ok.id(), "completed");
    notify(c, client, bad.id(), "error", "smtp said no");
    notify(c, client, ok.id(), "completed");  // a duplicate: ignored, counted
    notify(c, client, "0190e3a2-6c4b-7abc-8def-0123456789ab", "completed");

    auto out = bad.wait_for(10s);
    REQUIRE(out);
    CHECK(out->status == TaskStatus::error);
    CHECK(out->error == "smtp said no");
    for (auto& w : waiters) w.join();
    CHECK(woke == 3);
    REQUIRE(ok.wait_for(10s));
    for (int i = 0; i < 200 && client.unknown_notifications() < 2; ++i)
        std::this_thread::sleep_for(10ms);
    CHECK(client.unknown_notifications() == 2);
    CHECK(callbacks == 1);
    int after = 0;
    ok.on_done([&](const TaskOutcome&) { ++after; });  // already done: runs at once
    CHECK(after == 1);

    // Read notifications are trimmed from the stream.
    std::string receiver = "streamfleet:receiver:{" + client.id() + "}";
    long long len = -1;
    for (int i = 0; i < 200 && len != 0; ++i) {
        len = c.cmd({"XLEN", receiver}).value().integer();
        if (len) std::this_thread::sleep_for(10ms);
    }
    CHECK(len == 0);

    // close(): open handles resolve as closed; keys are removed.
    CHECK(client.close(2s));
    auto l = late.wait_for(1s);
    REQUIRE(l);
    CHECK(l->status == TaskStatus::closed);
    CHECK(c.cmd({"EXISTS", receiver}).value().integer() == 0);
    CHECK(c.cmd({"ZSCORE", "streamfleet:{q}:clients", client.id()}).value().is_nil());
    CHECK_THROWS_AS(client.enqueue("q", "x"), ClosedError);
}

TEST_CASE("the listener recreates its stream and group after NOGROUP") {
    RedisServer server;
    TestConn c(server.url());
    Client client({.redis = server.url()}, {"q"});
    std::string receiver = "streamfleet:receiver:{" + client.id() + "}";
    for (int i = 0; i < 200 && c.cmd({"EXISTS", receiver}).value().integer() == 0; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(c.cmd({"DEL", receiver}).ok());
    auto h = client.enqueue_tracked("q", "x");
    // The notification may land before the group exists again; write until seen.
    for (int i = 0; i < 100 && !h.done(); ++i) {
        notify(c, client, h.id(), "expired");
        h.wait_for(100ms);
    }
    REQUIRE(h.done());
    CHECK(h.wait().status == TaskStatus::expired);
}

TEST_CASE("heartbeats register the client in P{Q}:clients for each queue") {
    RedisServer server;
    TestConn c(server.url());
    Client client({.redis = server.url()}, {"a", "b"});
    for (const char* q : {"a", "b"}) {
        std::string key = std::string("streamfleet:{") + q + "}:clients";
        bool seen = false;
        for (int i = 0; i < 300 && !seen; ++i) {
            seen = !c.cmd({"ZSCORE", key, client.id()}).value().is_nil();
            if (!seen) std::this_thread::sleep_for(10ms);
        }
        CHECK(seen);
    }
}

TEST_CASE("enqueue_many sends every task, in order; typed payloads round-trip") {
    RedisServer server;
    TestConn c(server.url());
    Client client({.redis = server.url()}, {"bulk"});
    std::vector<std::string> data;
    for (int i = 0; i < 1000; ++i) data.push_back("task-" + std::to_string(i));
    auto ids = client.enqueue_many("bulk", data);
    REQUIRE(ids.size() == 1000);
    auto entries = wait_entries(c, "streamfleet:{bulk}", 1000);
    bool ordered = true;
    for (int i = 0; i < 1000; ++i) {
        auto f = entry_fields(entries[i]);
        ordered = ordered && f["id"] == ids[i] && f["data"] == data[i];
    }
    CHECK(ordered);

    std::map<std::string, int> order{{"apples", 3}, {"pears", 5}};
    client.enqueue("bulk", order);
    auto all = wait_entries(c, "streamfleet:{bulk}", 1001);
    auto back = decode_msgpack<std::map<std::string, int>>(entry_fields(all[1000])["data"]);
    CHECK(back == order);
    CHECK_THROWS_AS(decode_msgpack<std::vector<int>>("not msgpack \xc1"), InvalidArgument);
}

TEST_CASE("bad input is refused with a typed error naming the problem") {
    RedisServer server;
    CHECK_THROWS_WITH_AS(Client({.redis = server.url()}, {""}), "queue name is empty",
                         InvalidArgument);
    CHECK_THROWS_AS(Client({.redis = server.url()}, {std::string(300, 'x')}), InvalidArgument);
    CHECK_THROWS_AS(Client({.redis = "redis://h:port"}, {"q"}), InvalidArgument);
    CHECK_THROWS_AS(Client({.redis = "rediss://a:1"}, {"q"}), Unsupported);
    Client client({.redis = server.url(), .max_payload_bytes = 10}, {"q"});
    try {
        client.enqueue("other", "x");
        FAIL("expected UnknownQueue");
    } catch (const UnknownQueue& e) {
        CHECK(std::string(e.what()).find("'other'") != std::string::npos);
    }
    CHECK_THROWS_WITH_AS(client.enqueue("q", std::string(11, 'x')),
                         "payload is 11 bytes; max_payload_bytes is 10", InvalidArgument);
}

TEST_CASE("the local buffer is bounded (QueueFull) and drains when Redis returns") {
    RedisServer server;
    TestConn c(server.url());
    Client client({.redis = server.url(), .max_buffered = 50, .command_timeout = 30s}, {"q"});
    client.enqueue("q", "warm-up");
    wait_entries(c, "streamfleet:{q}", 1);
    REQUIRE(eventually([&] { return client.buffered() == 0; }));  // its confirmation is in too
    server.pause();  // nothing confirms now, so the buffer fills
    int accepted = 0;
    bool full = false;
    for (int i = 0; i < 60 && !full; ++i) {
        try {
            client.enqueue("q", "t" + std::to_string(i));
            ++accepted;
        } catch (const QueueFull&) {
            full = true;
        }
    }
    CHECK(full);
    CHECK(accepted == 50);
    server.resume();
    wait_entries(c, "streamfleet:{q}", 51);  // every accepted task arrives
    CHECK(client.close(10s));
}

TEST_CASE("the buffer's byte bound, and waiting for room instead of failing") {
    RedisServer server;
    TestConn c(server.url());
    {
        Client client({.redis = server.url(), .max_buffered_bytes = 4096, .command_timeout = 30s},
                      {"q"});
        client.enqueue("q", "warm-up");
        wait_entries(c, "streamfleet:{q}", 1);
        REQUIRE(eventually([&] { return client.buffered() == 0; }));
        server.pause();
        client.enqueue("q", std::string(3000, 'a'));  // fits
        CHECK_THROWS_AS(client.enqueue("q", std::string(3000, 'b')), QueueFull);
        server.resume();
        wait_entries(c, "streamfleet:{q}", 2);
    }
    Client waiting(
        {.redis = server.url(), .max_buffered = 5, .full_timeout = 20s, .command_timeout = 30s},
        {"q"});
    waiting.enqueue("q", "warm-up");
    wait_entries(c, "streamfleet:{q}", 3);
    // The warm-up must be confirmed too, or it holds one of the five places
    // and the loop below blocks before the thaw thread exists.
    REQUIRE(eventually([&] { return waiting.buffered() == 0; }));
    server.pause();
    for (int i = 0; i < 5; ++i) waiting.enqueue("q", "t" + std::to_string(i));
    std::thread thaw([&] {
        std::this_thread::sleep_for(500ms);
        server.resume();
    });
    auto t0 = std::chrono::steady_clock::now();
    waiting.enqueue("q", "blocked until there is room");  // waits instead of throwing
    CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);
    thaw.join();
    auto entries = wait_entries(c, "streamfleet:{q}", 9);
    // The buffer drained in acceptance order.
    std::vector<std::string> tail;
    for (std::size_t i = 3; i < entries.size(); ++i)
        tail.push_back(entry_fields(entries[i])["data"]);
    CHECK(tail ==
          std::vector<std::string>{"t0", "t1", "t2", "t3", "t4", "blocked until there is room"});
}

TEST_CASE("spool: tasks accepted while Redis is down survive the client; the next one sends them") {
    RedisServer server;
    TestConn c(server.url());
    std::string spool = server.dir() + "/client.spool";
    server.kill();
    std::vector<std::string> ids;
    {
        Client first({.redis = server.url(), .spool_path = spool, .command_timeout = 300ms}, {"q"});
        for (int i = 0; i < 20; ++i) ids.push_back(first.enqueue("q", "s" + std::to_string(i)));
        CHECK_THROWS_WITH_AS(Client({.redis = server.url(), .spool_path = spool}, {"q"}),
                             doctest::Contains("is in use by another client"), InvalidArgument);
        CHECK_FALSE(first.close(300ms));  // Redis is down: nothing could be sent
    }
    server.restart();
    Client second({.redis = server.url(), .spool_path = spool}, {"other"});  // any queue list
    auto entries = wait_entries(c, "streamfleet:{q}", 20);
    REQUIRE(entries.size() == 20);
    for (int i = 0; i < 20; ++i) {
        auto f = entry_fields(entries[i]);
        CHECK(f["data"] == "s" + std::to_string(i));  // in acceptance order
        CHECK(f["id"] == ids[i]);                     // the same tasks, not copies
    }
    CHECK(second.close(5s));
    std::ifstream in(spool, std::ios::binary | std::ios::ate);
    CHECK(in.tellg() == 0);  // everything confirmed: the spool starts over
}

TEST_CASE("spool: a task Redis took whose sender never heard so is not added again by the next") {
    RedisServer server;
    TestConn c(server.url());
    std::string spool = server.dir() + "/client.spool";
    {
        Client first({.redis = server.url(), .spool_path = spool, .command_timeout = 300ms}, {"q"});
        first.enqueue_confirmed("q", "warm-up", {}, 5s);
        // Redis frozen: the enqueues reach its socket, their replies never come
        // back to this client, which closes with them still in its spool.
        server.pause();
        for (int i = 0; i < 10; ++i) first.enqueue("q", "s" + std::to_string(i));
        std::this_thread::sleep_for(100ms);
        CHECK_FALSE(first.close(300ms));
        server.resume();
    }
    // Redis ran them once it woke.
    REQUIRE(eventually([&] { return c.cmd({"XLEN", "streamfleet:{q}"}).value().integer() == 11; }));
    // The next client replays the spool: each task's record shows Redis has
    // it, so none is added twice.
    Client second({.redis = server.url(), .spool_path = spool}, {"q"});
    CHECK(second.close(5s));
    CHECK(c.cmd({"XLEN", "streamfleet:{q}"}).value().integer() == 11);
    std::ifstream in(spool, std::ios::binary | std::ios::ate);
    CHECK(in.tellg() == 0);
}
