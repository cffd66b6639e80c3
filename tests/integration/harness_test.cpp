// The RedisServer fixture itself: the other tests trust it, so it is tested too.

#include <doctest/doctest.h>
#include <signal.h>

#include <fstream>

#include "support/redis_server.hpp"
#include "support/test_conn.hpp"

using namespace std::chrono_literals;
using streamfleet::test::RedisServer;
using streamfleet::test::TestConn;

namespace {
bool alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }
}  // namespace

TEST_CASE("a server is started on a free port and killed on destruction") {
    pid_t pid;
    std::string dir;
    {
        RedisServer a;
        RedisServer b;
        CHECK(a.port() != b.port());
        pid = a.pid();
        dir = a.dir();
        CHECK(alive(pid));
        TestConn c(a.url());
        CHECK(c.cmd({"PING"}).value().str() == "PONG");
    }
    CHECK_FALSE(alive(pid));
    CHECK_FALSE(std::ifstream(dir + "/redis.conf").good());
}

TEST_CASE("stop + restart keeps data (RDB on SIGTERM)") {
    RedisServer s;
    {
        TestConn c(s.url());
        REQUIRE(c.cmd({"SET", "k", "v"}).ok());
    }
    auto port = s.port();
    s.stop();
    CHECK_FALSE(s.running());
    s.restart();
    CHECK(s.port() == port);
    TestConn c(s.url());
    CHECK(c.cmd({"GET", "k"}).value().str() == "v");
}

TEST_CASE("kill + restart keeps acknowledged writes with AOF always") {
    RedisServer s({.aof = true});
    {
        TestConn c(s.url());
        REQUIRE(c.cmd({"CONFIG", "GET", "appendfsync"}).value()[1].str() == "always");
        for (int i = 0; i < 100; ++i) REQUIRE(c.cmd({"RPUSH", "l", std::to_string(i)}).ok());
    }
    s.kill();
    s.restart();
    TestConn c(s.url());
    CHECK(c.cmd({"LLEN", "l"}).value().integer() == 100);
}

TEST_CASE("pause freezes the server and resume thaws it") {
    RedisServer s;
    TestConn c(s.url(),
               {.command_timeout = 300ms, .connect_timeout = 300ms, .reconnect_max = 100ms});
    REQUIRE(c.cmd({"PING"}).ok());
    s.pause();
    CHECK_FALSE(c.cmd({"PING"}).ok());
    s.resume();
    bool ok = false;
    for (int i = 0; i < 100 && !ok; ++i) {
        ok = c.cmd({"PING"}).ok();
        if (!ok) std::this_thread::sleep_for(50ms);
    }
    CHECK(ok);
}

TEST_CASE("password, ACL user and unix socket options") {
    RedisServer s({.password = "pw", .acl_user = "u", .acl_password = "up", .unix_socket = true});
    CHECK(s.url().find(":pw@") != std::string::npos);
    TestConn def(s.url());
    CHECK(def.cmd({"ACL", "WHOAMI"}).value().str() == "default");
    TestConn user("redis://u:up@127.0.0.1:" + std::to_string(s.port()));
    CHECK(user.cmd({"ACL", "WHOAMI"}).value().str() == "u");
    TestConn unix_conn("unix://:pw@" + s.dir() + "/redis.sock");
    CHECK(unix_conn.cmd({"PING"}).value().str() == "PONG");
}

TEST_CASE(
    "a one-node cluster holds every slot, refuses cross-slot commands, and keeps them across a "
    "restart") {
    RedisServer rs(streamfleet::test::RedisServerOptions{.password = "pw", .cluster = true});
    TestConn c(rs.url());
    auto info = std::string(c.cmd({"CLUSTER", "INFO"}).value().str());
    CHECK(info.find("cluster_state:ok") != std::string::npos);
    CHECK(info.find("cluster_slots_assigned:16384") != std::string::npos);
    // {a} and {b} hash to different slots: one command may not name both.
    CHECK(c.cmd({"MSET", "{a}x", "1", "{a}y", "2"}).ok());
    auto cross = c.cmd({"MSET", "{a}x", "1", "{b}y", "2"});
    REQUIRE_FALSE(cross.ok());
    CHECK(cross.error().message().starts_with("CROSSSLOT"));
    rs.restart();
    TestConn again(rs.url());
    CHECK(std::string(again.cmd({"CLUSTER", "INFO"}).value().str()).find("cluster_state:ok") !=
          std::string::npos);
    CHECK(again.cmd({"GET", "{a}y"}).value().str() == "2");
}
