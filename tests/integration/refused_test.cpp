// Commands Redis refuses (an ACL user without the command): a server refuses to start and names
// what it lacks; a server or client refused later backs off instead of spinning, and logs a few
// lines, not thousands.

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "core/keys.hpp"
#include "core/log.hpp"
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

constexpr auto kWindow = 5s;

RedisServer acl_server() { return RedisServer({.acl_user = "w", .acl_password = "pw"}); }

std::string user_url(const RedisServer& rs) {
    return "redis://w:pw@127.0.0.1:" + std::to_string(rs.port());
}

// Counts the library's log lines (info and up) while alive.
class LogCounter {
public:
    LogCounter() {
        auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
        auto logger = std::make_shared<spdlog::logger>("test", sink);
        logger->set_level(spdlog::level::info);
        logger->flush_on(spdlog::level::info);
        detail::set_logger(logger);
    }
    ~LogCounter() { detail::set_logger(nullptr); }
    // Lines logged since the last reset.
    std::size_t lines() {
        auto text = out_.str();
        return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
    }
    std::string text() { return out_.str(); }
    void reset() { out_.str(""); }

private:
    std::ostringstream out_;
};

// calls + rejected_calls of each command since the last CONFIG RESETSTAT.
std::map<std::string, long long> command_counts(TestConn& admin) {
    std::map<std::string, long long> out;
    auto info = std::string(admin.cmd({"INFO", "commandstats"}).value().str());
    std::istringstream in(info);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("cmdstat_", 0) != 0) continue;
        auto colon = line.find(':');
        auto name = line.substr(8, colon - 8);
        auto field = [&](const std::string& key) {
            auto at = line.find(key + "=");
            return at == std::string::npos ? 0LL : std::stoll(line.substr(at + key.size() + 1));
        };
        out[name] = field("calls") + field("rejected_calls");
    }
    return out;
}

// Counts what Redis received and what was logged over kWindow.
struct Window {
    std::map<std::string, long long> commands;
    std::size_t log_lines = 0;
    std::string log_text;
};

Window measure(TestConn& admin, LogCounter& logs) {
    REQUIRE(admin.cmd({"CONFIG", "RESETSTAT"}).ok());
    logs.reset();
    std::this_thread::sleep_for(kWindow);
    Window w;
    w.commands = command_counts(admin);
    w.log_lines = logs.lines();
    w.log_text = logs.text();
    return w;
}

}  // namespace

TEST_CASE("a server whose consumer group cannot be created backs off and logs a few lines") {
    auto rs = acl_server();
    TestConn admin(rs.url());
    Server server({.redis = user_url(rs), .id = "w1", .read_block = 500ms});
    server.handle("q", [](TaskContext&) {});
    server.start();
    REQUIRE(eventually([&] { return admin.cmd({"XINFO", "GROUPS", "streamfleet:{q}"}).ok(); }));
    LogCounter logs;
    // The group goes away (the stream deleted), and the user may no longer create groups.
    REQUIRE(admin.cmd({"ACL", "SETUSER", "w", "-xgroup"}).ok());
    REQUIRE(admin.cmd({"DEL", "streamfleet:{q}"}).ok());
    auto w = measure(admin, logs);
    auto reads = w.commands["xreadgroup"];
    auto creates = w.commands["xgroup|create"];
    MESSAGE("in ", kWindow.count(), " s: XREADGROUP ", reads, ", XGROUP CREATE ", creates,
            ", log lines ", w.log_lines);
    CHECK(reads > 0);  // still trying
    CHECK(reads < 50);
    CHECK(creates < 50);
    CHECK_MESSAGE(w.log_lines < 50, w.log_text.substr(0, 2000));
    // Allowed again: it reads again and runs what is enqueued.
    REQUIRE(admin.cmd({"ACL", "SETUSER", "w", "+xgroup"}).ok());
    Client client({.redis = rs.url()}, {"q"});
    auto h = client.enqueue_tracked("q", "after");
    CHECK(h.wait_for(30s).value().status == TaskStatus::completed);
    server.shutdown(5s);
}

TEST_CASE("a client whose notification group cannot be created backs off and logs a few lines") {
    auto rs = acl_server();
    TestConn admin(rs.url());
    Client client({.redis = user_url(rs)}, {"q"});
    auto receiver = detail::receiver_key(detail::kDefaultPrefix, client.id());
    REQUIRE(eventually([&] { return admin.cmd({"XINFO", "GROUPS", receiver}).ok(); }));
    LogCounter logs;
    REQUIRE(admin.cmd({"ACL", "SETUSER", "w", "-xgroup"}).ok());
    REQUIRE(admin.cmd({"DEL", receiver}).ok());
    auto w = measure(admin, logs);
    auto reads = w.commands["xreadgroup"];
    auto creates = w.commands["xgroup|create"];
    MESSAGE("in ", kWindow.count(), " s: XREADGROUP ", reads, ", XGROUP CREATE ", creates,
            ", log lines ", w.log_lines);
    CHECK(reads > 0);
    CHECK(reads < 50);
    CHECK(creates < 50);
    CHECK_MESSAGE(w.log_lines < 50, w.log_text.substr(0, 2000));
    REQUIRE(admin.cmd({"ACL", "SETUSER", "w", "+xgroup"}).ok());
    CHECK(eventually([&] { return admin.cmd({"XINFO", "GROUPS", receiver}).ok(); }, 30s));
}

TEST_CASE("a server whose user lacks commands it needs fails at start, naming them") {
    auto rs = acl_server();
    TestConn admin(rs.url());
    REQUIRE(admin.cmd({"ACL", "SETUSER", "w", "-xgroup", "-evalsha"}).ok());
    {
        Server server({.redis = user_url(rs), .id = "w1"});
        server.handle("q", [](TaskContext&) {});
        try {
            server.start();
            FAIL("start() did not throw");
        } catch (const ReplyError& e) {
            std::string what = e.what();
            MESSAGE(what);
            CHECK(what.find("XGROUP CREATE") != std::string::npos);
            CHECK(what.find("EVALSHA") != std::string::npos);
            CHECK(what.find("XREADGROUP") == std::string::npos);  // allowed: not named
        }
        CHECK_FALSE(admin.cmd({"EXISTS", "streamfleet:{q}"}).value().integer() == 1);
    }
    // Keys: the user may touch the stream but not the dead letters.
    REQUIRE(
        admin
            .cmd({"ACL", "SETUSER", "w", "+@all", "resetkeys", "~streamfleet:{q}",
                  "~streamfleet:{q}:task:*", "~streamfleet:{q}:servers", "~streamfleet:{q}:delayed",
                  "~streamfleet:{q}:clients", "~streamfleet:{q}:nudge", "~streamfleet:{q}:cancels",
                  "~streamfleet:receiver:*"})
            .ok());
    {
        Server server({.redis = user_url(rs), .id = "w1"});
        server.handle("q", [](TaskContext&) {});
        CHECK_THROWS_WITH_AS(server.start(), doctest::Contains("'streamfleet:{q}:dead'"),
                             ReplyError);
    }
    // Every right back: it starts, and the check itself ran nothing.
    REQUIRE(admin.cmd({"ACL", "SETUSER", "w", "allkeys"}).ok());
    REQUIRE(admin.cmd({"CONFIG", "RESETSTAT"}).ok());
    Server server({.redis = user_url(rs), .id = "w1"});
    server.handle("q", [](TaskContext&) {});
    server.start();
    CHECK(admin.cmd({"XLEN", "streamfleet:{q}:dead"}).value().integer() == 0);
    CHECK(admin.cmd({"EXISTS", "streamfleet:{q}:task:acl-check"}).value().integer() == 0);
    server.shutdown(5s);
}

TEST_CASE("a server started while Redis is unreachable starts without the check") {
    auto url = "redis://127.0.0.1:" + std::to_string(test::free_port());
    Server server({.redis = url, .id = "w1", .command_timeout = 500ms});
    server.handle("q", [](TaskContext&) {});
    auto t0 = std::chrono::steady_clock::now();
    server.start();
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);  // liveness bound, not a timing claim
    server.shutdown(1s);
}

TEST_CASE("a server whose handshake is refused fails at start, naming the step") {
    auto rs = acl_server();
    TestConn admin(rs.url());
    {
        Server server(
            {.redis = "redis://w:wrong@127.0.0.1:" + std::to_string(rs.port()), .id = "w1"});
        server.handle("q", [](TaskContext&) {});
        CHECK_THROWS_WITH_AS(server.start(), doctest::Contains("AUTH rejected"), AuthError);
    }
    REQUIRE(admin.cmd({"ACL", "SETUSER", "w", "-client|setname"}).ok());
    Server server({.redis = user_url(rs), .id = "w1"});
    server.handle("q", [](TaskContext&) {});
    CHECK_THROWS_WITH_AS(server.start(), doctest::Contains("CLIENT SETNAME rejected"), AuthError);
}
