// The Redis layer against a real redis-server.

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <string>
#include <vector>

#include "redis/topology.hpp"
#include "streamfleet/errors.hpp"
#include "support/redis_server.hpp"
#include "support/test_conn.hpp"

using namespace streamfleet;
using namespace streamfleet::detail;
using namespace streamfleet::detail::redis;
using streamfleet::test::RedisServer;
using streamfleet::test::TestConn;

TEST_CASE("every reply type round-trips") {
    RedisServer server;
    TestConn c(server.url());
    CHECK(c.cmd({"SET", "k", "v"}).value().is_status());
    CHECK(c.cmd({"SET", "k", "v"}).value().str() == "OK");
    CHECK(c.cmd({"GET", "k"}).value().str() == "v");
    CHECK(c.cmd({"GET", "missing"}).value().is_nil());
    CHECK(c.cmd({"INCRBY", "n", "-7"}).value().integer() == -7);
    CHECK(c.cmd({"RPUSH", "l", "a", "b", "c"}).value().integer() == 3);
    auto arr = c.cmd({"LRANGE", "l", "0", "-1"}).value();
    REQUIRE(arr.size() == 3);
    CHECK(arr[2].str() == "c");
    CHECK(c.cmd({"LRANGE", "nothing", "0", "-1"}).value().size() == 0);
    // Nested arrays with a nil inside: a stream read.
    auto id = c.cmd({"XADD", "s", "*", "f", "v"}).value();
    auto xr = c.cmd({"XRANGE", "s", "-", "+"}).value();
    CHECK(xr[0][0].str() == id.str());
    CHECK(xr[0][1][1].str() == "v");
    auto mget = c.cmd({"MGET", "k", "missing"}).value();
    CHECK(mget[0].str() == "v");
    CHECK(mget[1].is_nil());
}

TEST_CASE("payloads with NUL bytes and of 4 MiB survive intact") {
    RedisServer server;
    TestConn c(server.url());
    std::string nul("\0a\0\r\n\0", 6);
    REQUIRE(c.cmd({"SET", std::string("k\0ey", 4), nul}).ok());
    CHECK(c.cmd({"GET", std::string("k\0ey", 4)}).value().str() == nul);

    std::string big(4 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + 7);
    REQUIRE(c.cmd({"SET", "big", big}).ok());
    auto back = c.cmd({"GET", "big"}).value();
    CHECK(back.str().size() == big.size());
    CHECK(back.str() == big);
}

TEST_CASE("100,000 pipelined commands complete in order") {
    RedisServer server;
    TestConn c(server.url());
    constexpr int kCount = 100'000;
    std::promise<void> done;
    std::vector<long long> got;
    got.reserve(kCount);
    int errors = 0;
    c.rt().post([&] {
        for (int i = 0; i < kCount; ++i) {
            c.conn()->send({"INCR", "counter"}, [&](Result<Reply> r) {
                if (!r)
                    ++errors;
                else
                    got.push_back(r->integer());
                if (static_cast<int>(got.size()) + errors == kCount) done.set_value();
            });
        }
    });
    REQUIRE(done.get_future().wait_for(std::chrono::seconds(60)) == std::future_status::ready);
    CHECK(errors == 0);
    REQUIRE(got.size() == kCount);
    bool in_order = true;
    for (int i = 0; i < kCount; ++i) in_order = in_order && got[i] == i + 1;
    CHECK(in_order);
}

TEST_CASE("commands of one loop turn leave in one write") {
    RedisServer server;
    TestConn c(server.url());
    REQUIRE(c.cmd({"PING"}).ok());
    auto writes_before = c.rt().call([&] { return c.conn()->writes(); });
    std::promise<std::vector<long long>> p;
    c.rt().post([&] {
        auto results = std::make_shared<std::vector<long long>>();
        for (int i = 0; i < 500; ++i) {
            c.conn()->send({"INCR", "x"}, [results, &p](Result<Reply> r) {
                results->push_back(r ? r->integer() : -1);
                if (results->size() == 500) p.set_value(*results);
            });
        }
    });
    auto v = p.get_future().get();
    CHECK(v.front() == 1);
    CHECK(v.back() == 500);
    auto writes = c.rt().call([&] { return c.conn()->writes(); }) - writes_before;
    CHECK(writes == 1);
}

TEST_CASE("an error reply surfaces as an error and the connection keeps working") {
    RedisServer server;
    TestConn c(server.url());
    REQUIRE(c.cmd({"SET", "str", "x"}).ok());
    auto r = c.cmd({"LPUSH", "str", "y"});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().is(errc::reply_error));
    CHECK(r.error().message().starts_with("WRONGTYPE"));
    CHECK_THROWS_AS(c.cmd({"NOSUCHCOMMAND"}).value(), ReplyError);
    CHECK(c.cmd({"GET", "str"}).value().str() == "x");
}

// Sends `resp` (several commands) as one, asking for `replies` replies.
static Result<Reply> send_block(TestConn& c, std::string resp, unsigned replies) {
    std::promise<Result<Reply>> p;
    c.rt().post([&] {
        CommandOptions o;
        o.replies = replies;
        c.conn()->send_encoded(resp, [&](Result<Reply> r) { p.set_value(std::move(r)); }, o);
    });
    return p.get_future().get();
}

static std::string encode_all(std::initializer_list<std::vector<std::string_view>> cmds) {
    std::string out;
    for (const auto& argv : cmds) append_command(out, argv);
    return out;
}

TEST_CASE("a command of several replies completes once, with the last reply or the first error") {
    RedisServer server;
    TestConn c(server.url());
    // A MULTI block: the callback gets EXEC's array.
    auto ok = send_block(c, encode_all({{"MULTI"}, {"SET", "a", "1"}, {"INCR", "a"}, {"EXEC"}}), 4);
    REQUIRE(ok.ok());
    REQUIRE(ok->is_array());
    REQUIRE(ok->size() == 2);
    CHECK((*ok)[1].as_integer() == 2);
    // An error at queue time (here: an unknown command) is what the caller
    // hears, not EXEC's EXECABORT; nothing ran.
    auto bad = send_block(
        c, encode_all({{"MULTI"}, {"SET", "a", "9"}, {"NOSUCHCOMMAND"}, {"EXEC"}}), 4);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().message().find("unknown command") != std::string::npos);
    // A plain pipeline of replies that matter together: the first error wins.
    auto piped = send_block(c, encode_all({{"LPUSH", "a", "x"}, {"SET", "b", "2"}}), 2);
    REQUIRE_FALSE(piped.ok());
    CHECK(piped.error().message().starts_with("WRONGTYPE"));
    // Replies stayed matched: the connection goes on, with the effects above.
    CHECK(c.cmd({"GET", "a"}).value().str() == "2");
    CHECK(c.cmd({"GET", "b"}).value().str() == "2");
}

TEST_CASE("a refused connection names the address and the cause") {
    auto port = streamfleet::test::free_port();
    TestConn c("redis://127.0.0.1:" + std::to_string(port),
               ConnectionOptions{.command_timeout = std::chrono::milliseconds(300),
                                 .offline_queue = false});
    // The first attempt fails quickly; commands after it fail with its error.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto r = c.cmd({"PING"});
    REQUIRE_FALSE(r.ok());
    CAPTURE(r.error().message());
    CHECK(r.error().is(errc::connect_failed));
    CHECK(r.error().message().find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
    CHECK(r.error().message().find("ECONNREFUSED") != std::string::npos);
    CHECK_THROWS_AS(c.cmd({"PING"}).value(), ConnectionError);
}

TEST_CASE(
    "with the offline queue, a command waiting on a dead address times out naming the cause") {
    auto port = streamfleet::test::free_port();
    TestConn c("redis://127.0.0.1:" + std::to_string(port),
               ConnectionOptions{.command_timeout = std::chrono::milliseconds(300)});
    auto r = c.cmd({"PING"});
    REQUIRE_FALSE(r.ok());
    CAPTURE(r.error().message());
    CHECK(r.error().is(errc::timeout));
    CHECK(r.error().message().find("ECONNREFUSED") != std::string::npos);
}

TEST_CASE("a bad URL is rejected before any I/O") {
    auto r = parse_url("redis://127.0.0.1:notaport");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message().find("port 'notaport'") != std::string::npos);
    CHECK_THROWS_AS(parse_url("tcp://x").value(), InvalidArgument);
    Runtime rt;
    auto t = rt.call([&] { return make_topology(rt, parse_url("rediss://a:1").value()); });
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().is(errc::unsupported));
}

TEST_CASE("a wrong password fails at once with an authentication error") {
    RedisServer server({.password = "right"});
    TestConn bad("redis://:wrong@127.0.0.1:" + std::to_string(server.port()));
    auto r = bad.cmd({"PING"});
    REQUIRE_FALSE(r.ok());
    CAPTURE(r.error().message());
    CHECK(r.error().is(errc::auth_failed));
    CHECK(r.error().message().find("AUTH rejected") != std::string::npos);
    CHECK(r.error().message().find("WRONGPASS") != std::string::npos);
    CHECK(r.error().message().find("wrong") == std::string::npos);  // never echo the secret
    CHECK_THROWS_AS(bad.cmd({"PING"}).value(), AuthError);

    TestConn none(server.url_without_auth());
    auto n = none.cmd({"PING"});
    REQUIRE_FALSE(n.ok());
    CHECK(n.error().is(errc::auth_failed));
    CHECK(n.error().message().find("NOAUTH") != std::string::npos);

    TestConn good(server.url());
    CHECK(good.cmd({"PING"}).value().str() == "PONG");
}

TEST_CASE("an ACL user with a password works, and AUTH + SELECT are replayed") {
    RedisServer server({.acl_user = "worker", .acl_password = "p@ss:word"});
    TestConn c("redis://worker:p%40ss:word@127.0.0.1:" + std::to_string(server.port()) + "/4");
    CHECK(c.cmd({"ACL", "WHOAMI"}).value().str() == "worker");
    REQUIRE(c.cmd({"SET", "in4", "yes"}).ok());
    TestConn db0(server.url());
    CHECK(db0.cmd({"GET", "in4"}).value().is_nil());
    CHECK(db0.cmd({"SELECT", "4"}).ok());
    CHECK(db0.cmd({"GET", "in4"}).value().str() == "yes");
    // Kick the ACL user's connection: the reconnect replays AUTH and SELECT.
    REQUIRE(db0.cmd({"CLIENT", "KILL", "USER", "worker"}).ok());
    std::string seen;
    for (int i = 0; i < 50 && seen != "yes"; ++i) {
        auto r = c.cmd({"GET", "in4"});
        if (r)
            seen = std::string(r->str());
        else
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(seen == "yes");
    CHECK(c.cmd({"ACL", "WHOAMI"}).value().str() == "worker");
    CHECK(c.conn()->connects() >= 2);
}

TEST_CASE("unix socket URLs connect, with ?db=") {
    RedisServer server({.unix_socket = true});
    TestConn c(server.unix_url() + "?db=2");
    REQUIRE(c.cmd({"SET", "via", "unix"}).ok());
    TestConn tcp(server.url() + "/2");
    CHECK(tcp.cmd({"GET", "via"}).value().str() == "unix");
}

TEST_CASE("host names are resolved") {
    RedisServer server;
    TestConn c("redis://localhost:" + std::to_string(server.port()));
    // localhost may resolve to ::1 first, where Redis (bound to 127.0.0.1)
    // refuses: every resolved address is tried in turn.
    auto r = c.cmd({"PING"});
    REQUIRE(r.ok());
    CHECK(r->str() == "PONG");
    TestConn bad("redis://no-such-host.invalid:6379",
                 ConnectionOptions{.command_timeout = std::chrono::milliseconds(2000),
                                   .offline_queue = false});
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto e = bad.cmd({"PING"});
    REQUIRE_FALSE(e.ok());
    CAPTURE(e.error().message());
    CHECK(e.error().message().find("no-such-host.invalid") != std::string::npos);
}

TEST_CASE("closing fails pending commands exactly once with closed") {
    RedisServer server;
    TestConn c(server.url());
    REQUIRE(c.cmd({"PING"}).ok());
    std::atomic<int> closed{0}, other{0};
    std::promise<void> done;
    c.rt().post([&] {
        // A blocking command that would hold for 10 s, then close underneath it.
        c.conn()->send(
            {"BLPOP", "nothing", "10"},
            [&](Result<Reply> r) {
                if (!r && r.error().is(errc::closed))
                    ++closed;
                else
                    ++other;
            },
            CommandOptions{.block = std::chrono::seconds(10)});
        c.conn()->close();
        c.conn()->send({"PING"}, [&](Result<Reply> r) {
            if (!r && r.error().is(errc::closed))
                ++closed;
            else
                ++other;
            done.set_value();
        });
    });
    done.get_future().get();
    c.rt().call([] {});
    CHECK(closed == 2);
    CHECK(other == 0);
}

TEST_CASE("a callback run by close() may drop the last reference to the connection") {
    RedisServer server;
    Runtime rt("sf-test");
    std::promise<std::string> seen;
    rt.call([&] {
        auto address = parse_url(server.url()).value();
        auto holder = std::make_shared<std::shared_ptr<Connection>>(
            Connection::create(rt, ServerConfig{address.endpoints.front()}));
        (*holder)->start();  // still connecting: the command below is queued
        (*holder)->send({"PING"}, [&, holder](Result<Reply> r) {
            seen.set_value(r.ok() ? "ok" : r.error().message());
            holder->reset();  // the owner lets go from inside the callback
        });
        auto raw = holder->get();
        raw->close();  // must keep itself alive until it has finished
    });
    auto fut = seen.get_future();
    REQUIRE(fut.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    CHECK(fut.get().find("closed") != std::string::npos);
}

TEST_CASE("a command sent from a turn-end callback leaves in that turn") {
    // Server acks are sent from such a callback. If the write waited for the
    // next loop turn, the loop could block in poll and the command would sit
    // unsent until its deadline reset the connection.
    RedisServer server;
    TestConn c(server.url(), ConnectionOptions{.command_timeout = std::chrono::milliseconds(3000)});
    REQUIRE(c.cmd({"PING"}).ok());
    std::promise<std::string> reply;
    std::unique_ptr<TurnEnd> turn;
    auto t0 = std::chrono::steady_clock::now();
    c.rt().call([&] {
        turn = std::make_unique<TurnEnd>(c.rt().loop(), [&] {
            c.conn()->send({"PING"}, [&](Result<Reply> r) {
                reply.set_value(r.ok() ? std::string(r->str()) : r.error().message());
            });
        });
        turn->arm();
    });
    auto fut = reply.get_future();
    REQUIRE(fut.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    CHECK(fut.get() == "PONG");
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1500));
    c.rt().call([&] { turn.reset(); });
}

TEST_CASE("blocking commands get their block time on top of the timeout") {
    RedisServer server;
    TestConn c(server.url(), ConnectionOptions{.command_timeout = std::chrono::milliseconds(300)});
    auto r = c.cmd({"BLPOP", "empty", "1"}, CommandOptions{.block = std::chrono::seconds(1)});
    REQUIRE(r.ok());
    CHECK(r->is_nil());
}

TEST_CASE("a topology routes commands and hands out dedicated connections") {
    RedisServer server;
    Runtime rt;
    auto topo = rt.call([&] {
        auto t = make_topology(rt, parse_url(server.url()).value(),
                               ConnectionOptions{.client_name = "sf-test"})
                     .value();
        t->start();
        return t;
    });
    CHECK(topo->describe() == server.url());
    REQUIRE(call(rt, *topo, "a", {"SET", "a", "1"}).ok());
    auto blocking = rt.call([&] { return topo->dedicated(Route{"q"}, "reader"); });
    auto list = call(rt, blocking, {"CLIENT", "GETNAME"}).value();
    CHECK(list.str() == "sf-test:reader");
    // A blocked dedicated connection does not hold up the shared one.
    std::promise<Result<Reply>> blocked;
    rt.post([&] {
        blocking->send(
            {"BLPOP", "wake", "5"}, [&](Result<Reply> r) { blocked.set_value(std::move(r)); },
            CommandOptions{.block = std::chrono::seconds(5)});
    });
    CHECK(call(rt, *topo, "a", {"GET", "a"}).value().str() == "1");
    REQUIRE(call(rt, *topo, "wake", {"RPUSH", "wake", "now"}).ok());
    auto woke = blocked.get_future().get();
    REQUIRE(woke.ok());
    CHECK(woke->elements()[1].str() == "now");
    rt.call([&] {
        blocking->close();
        topo->close();
    });
}
