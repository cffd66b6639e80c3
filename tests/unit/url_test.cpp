#include "redis/url.hpp"

#include <doctest/doctest.h>

using namespace streamfleet::detail;
using namespace streamfleet::detail::redis;

TEST_CASE("redis:// with every part") {
    auto a = parse_url("redis://alice:s%40cret@example.com:6380/3").value();
    CHECK(a.scheme == Scheme::redis);
    REQUIRE(a.endpoints.size() == 1);
    CHECK(a.endpoints[0].host == "example.com");
    CHECK(a.endpoints[0].port == 6380);
    CHECK(a.username == "alice");
    CHECK(a.password == "s@cret");
    CHECK(a.db == 3);
    CHECK(a.redacted() == "redis://alice:***@example.com:6380/3");
}

TEST_CASE("redis:// defaults and password-only form") {
    auto a = parse_url("redis://localhost").value();
    CHECK(a.endpoints[0].port == 6379);
    CHECK(a.db == 0);
    CHECK(a.username.empty());
    auto b = parse_url("redis://:pw@127.0.0.1:7000").value();
    CHECK(b.username.empty());
    CHECK(b.password == "pw");
    auto c = parse_url("redis://[::1]:7001/2").value();
    CHECK(c.endpoints[0].host == "::1");
    CHECK(c.endpoints[0].port == 7001);
    CHECK(c.endpoints[0].to_string() == "[::1]:7001");
    CHECK(c.db == 2);
}

TEST_CASE("unix:// with db") {
    auto a = parse_url("unix:///tmp/redis.sock?db=5").value();
    CHECK(a.scheme == Scheme::unix_socket);
    CHECK(a.endpoints[0].path == "/tmp/redis.sock");
    CHECK(a.endpoints[0].is_unix());
    CHECK(a.db == 5);
    auto b = parse_url("unix://u:p@/run/r.sock").value();
    CHECK(b.username == "u");
    CHECK(b.password == "p");
    CHECK(b.endpoints[0].path == "/run/r.sock");
}

TEST_CASE("rediss, sentinel and cluster URLs parse") {
    auto s = parse_url("rediss://h:6390").value();
    CHECK(s.tls());
    auto sen = parse_url("redis-sentinel://:pw@s1:26380,s2/mymaster/1").value();
    CHECK(sen.scheme == Scheme::sentinel);
    REQUIRE(sen.endpoints.size() == 2);
    CHECK(sen.endpoints[0].port == 26380);
    CHECK(sen.endpoints[1].port == 26379);
    CHECK(sen.master_name == "mymaster");
    CHECK(sen.db == 1);
    CHECK(sen.sentinel_username.empty());
    CHECK(sen.sentinel_password.empty());
    auto cl = parse_url("redis-cluster://n1:7000,n2:7001,n3:7002").value();
    CHECK(cl.scheme == Scheme::cluster);
    CHECK(cl.endpoints.size() == 3);
}

TEST_CASE("sentinel URLs take db and the sentinels' own credentials as query") {
    auto a = parse_url(
                 "redis-sentinel://app:data%40pw@127.0.0.1:26380,[::1]:26381/mymaster"
                 "?db=3&sentinel_user=sent&sentinel_password=s%26cret")
                 .value();
    CHECK(a.username == "app");
    CHECK(a.password == "data@pw");
    CHECK(a.master_name == "mymaster");
    CHECK(a.db == 3);
    CHECK(a.sentinel_username == "sent");
    CHECK(a.sentinel_password == "s&cret");
    REQUIRE(a.endpoints.size() == 2);
    CHECK(a.endpoints[1].host == "::1");
    CHECK(a.endpoints[1].port == 26381);
    auto red = a.redacted();
    CHECK(red.find("data@pw") == std::string::npos);
    CHECK(red.find("s&cret") == std::string::npos);
    CHECK(red.find("sentinel_user=sent") != std::string::npos);
    auto b = parse_url("redis-sentinel://s1/m?sentinel_password=x").value();
    CHECK(b.sentinel_password == "x");
    CHECK(b.endpoints[0].port == 26379);
    CHECK(b.db == 0);

    auto bad = parse_url("redis-sentinel://s1/m?sentinel_password=topsecret&timeout=2");
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().message().find("unknown parameter 'timeout'") != std::string::npos);
    CHECK(bad.error().message().find("topsecret") == std::string::npos);
    auto baddb = parse_url("redis-sentinel://s1/m?db=x");
    REQUIRE_FALSE(baddb.ok());
    CHECK(baddb.error().message().find("database 'x'") != std::string::npos);
    CHECK_FALSE(parse_url("redis://h?db=1").ok());
}

TEST_CASE("bad URLs give errors naming the problem, without the password") {
    struct Case {
        const char* url;
        const char* mentions;
    };
    const Case cases[] = {
        {"127.0.0.1:6379", "missing scheme"},
        {"http://h", "unknown scheme 'http'"},
        {"redis://h:abc", "port 'abc'"},
        {"redis://h:70000", "port '70000'"},
        {"redis://h:", "empty port"},
        {"redis://", "missing host"},
        {"redis://h/x", "database 'x'"},
        {"redis://h/-1", "database '-1'"},
        {"redis://a,b", "several hosts"},
        {"unix://relative.sock", "absolute"},
        {"unix:///s.sock?timeout=3", "unknown parameter 'timeout'"},
        {"redis-sentinel://s1,s2", "master name"},
        {"redis-cluster://n1/2", "no database"},
        {"redis://u:p%zz@h", "percent-escape"},
        {"redis://[::1:6379", "unterminated"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.url);
        auto r = parse_url(c.url);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().is(errc::invalid_argument));
        CHECK(r.error().message().find(c.mentions) != std::string::npos);
    }
    auto r = parse_url("redis://user:topsecret@h:bad");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message().find("topsecret") == std::string::npos);
    CHECK(r.error().message().find("***") != std::string::npos);
}
