#include "redis/resp.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "redis/streams.hpp"
#include "streamfleet/errors.hpp"

using namespace std::string_literals;
using namespace streamfleet::detail;
using namespace streamfleet::detail::redis;

namespace {
std::string fmt(std::vector<std::string_view> argv) {
    std::string out;
    append_command(out, argv);
    return out;
}

std::vector<Reply> parse_all(std::string_view bytes, std::size_t chunk) {
    ReplyParser p;
    std::vector<Reply> out;
    for (std::size_t off = 0; off < bytes.size(); off += chunk) {
        REQUIRE(p.feed(bytes.data() + off, std::min(chunk, bytes.size() - off)).ok());
        while (true) {
            auto r = p.next();
            REQUIRE(r.ok());
            if (!*r) break;
            out.push_back(std::move(**r));
        }
    }
    return out;
}
}  // namespace

TEST_CASE("commands are encoded as RESP multi-bulk, binary-safe") {
    CHECK(fmt({"PING"}) == "*1\r\n$4\r\nPING\r\n");
    CHECK(fmt({"SET", "k", ""}) == "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    std::string nul("a\0b\r\n", 5);
    CHECK(fmt({"SET", nul}) == "*2\r\n$3\r\nSET\r\n$5\r\na\0b\r\n\r\n"s);
}

TEST_CASE("every RESP2 reply type parses, whole or byte by byte") {
    const std::string wire =
        "+OK\r\n"
        "-ERR bad thing\r\n"
        ":-42\r\n"
        "$5\r\nhe\0lo\r\n"
        "$-1\r\n"
        "*-1\r\n"
        "*0\r\n"
        "*3\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n+x\r\n"s;
    for (std::size_t chunk : {std::size_t{1}, std::size_t{7}, wire.size()}) {
        CAPTURE(chunk);
        auto rs = parse_all(wire, chunk);
        REQUIRE(rs.size() == 8);
        CHECK(rs[0].is_status());
        CHECK(rs[0].str() == "OK");
        CHECK(rs[1].is_error());
        CHECK(rs[1].error_text() == "ERR bad thing");
        CHECK(rs[2].integer() == -42);
        CHECK(rs[3].str() == std::string_view("he\0lo", 5));
        CHECK(rs[4].is_nil());
        CHECK(rs[5].is_nil());
        CHECK(rs[6].is_array());
        CHECK(rs[6].size() == 0);
        REQUIRE(rs[7].size() == 3);
        CHECK(rs[7][0].integer() == 1);
        CHECK(rs[7][1][0].str() == "a");
        CHECK(rs[7][1][1].is_nil());
        CHECK(rs[7][2].str() == "x");
    }
}

TEST_CASE("garbage is a protocol error, not a crash") {
    ReplyParser p;
    REQUIRE(p.feed("?what\r\n", 7).ok());
    auto r = p.next();
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().is(errc::protocol));
    p.reset();
    REQUIRE(p.feed("+OK\r\n", 5).ok());
    auto ok = p.next();
    REQUIRE(ok.ok());
    REQUIRE(*ok);
    CHECK((*ok)->str() == "OK");
}

TEST_CASE("typed accessors refuse the wrong type with ProtoError") {
    auto r = Reply::integer(5);
    CHECK_THROWS_AS(r.str(), streamfleet::ProtoError);
    CHECK_THROWS_AS(r.elements(), streamfleet::ProtoError);
    CHECK(r.as_string() == std::nullopt);
    auto s = Reply::string("17");
    CHECK(s.as_integer() == 17);
    CHECK(Reply::string("x1").as_integer() == std::nullopt);
    auto a = Reply::array({Reply::nil()});
    CHECK_THROWS_AS(a[1], streamfleet::ProtoError);
    CHECK(Reply::string(std::string("a\0\"", 3)).debug_string() == "\"a\\x00\\\"\"");
}

TEST_CASE("stream replies: entries are parsed, odd shapes skipped, counted") {
    // [[stream, [[id, [k, v, k2, v2]], [id2, [k, v]], garbage]], [other, nil]]
    auto entry = [](const char* id, std::vector<Reply> kv) {
        return Reply::array({Reply::string(id), Reply::array(std::move(kv))});
    };
    auto reply = Reply::array({
        Reply::array({Reply::string("s1"),
                      Reply::array({entry("1-0", {Reply::string("a"), Reply::string("1"),
                                                  Reply::string("b"), Reply::string("2")}),
                                    entry("2-0", {Reply::string("c"), Reply::integer(3),
                                                  Reply::string("d"), Reply::string("4")}),
                                    Reply::string("garbage")})}),
        Reply::array({Reply::string("s2"), Reply::nil()}),
    });
    std::vector<std::string> seen;
    auto n = for_each_entry(reply, [&](std::string_view stream, const StreamEntry& e) {
        std::string s = std::string(stream) + "/" + std::string(e.id);
        for (auto& [k, v] : e.fields) s += " " + std::string(k) + "=" + std::string(v);
        seen.push_back(s);
    });
    CHECK(n == 3);
    REQUIRE(seen.size() == 2);
    CHECK(seen[0] == "s1/1-0 a=1 b=2");
    CHECK(seen[1] == "s1/2-0 d=4");  // a non-string value drops its pair, not the entry
    CHECK(for_each_entry(Reply::nil(), [](auto, const auto&) { FAIL("no entries"); }) == 0);
}

TEST_CASE("a huge array header allocates nothing up front and never throws through hiredis") {
    // Two billion elements announced, three delivered: the parser must wait
    // for more instead of allocating (or throwing bad_alloc through C code).
    ReplyParser p;
    std::string bytes = "*2000000000\r\n:1\r\n:2\r\n$1\r\nx\r\n";
    REQUIRE(p.feed(bytes.data(), bytes.size()).ok());
    auto r = p.next();
    REQUIRE(r.ok());
    CHECK_FALSE(*r);  // incomplete, not an error
    // Nested: the inner array grows as its children arrive and completes.
    ReplyParser q;
    std::string nested = "*2\r\n*3\r\n:1\r\n:2\r\n:3\r\n+OK\r\n";
    REQUIRE(q.feed(nested.data(), nested.size()).ok());
    auto n = q.next();
    REQUIRE(n.ok());
    REQUIRE(*n);
    REQUIRE((*n)->elements().size() == 2);
    REQUIRE((*n)->elements()[0].elements().size() == 3);
    CHECK((*n)->elements()[0].elements()[2].integer() == 3);
    CHECK((*n)->elements()[1].str() == "OK");
}

TEST_CASE("next_stream_id steps past an entry id, or says it is not one") {
    CHECK(next_stream_id("1700000000000-0") == "1700000000000-1");
    CHECK(next_stream_id("5-41") == "5-42");
    CHECK(next_stream_id("5-18446744073709551615") == "6-0");
    CHECK_FALSE(next_stream_id("18446744073709551615-18446744073709551615"));
    CHECK_FALSE(next_stream_id("12"));
    CHECK_FALSE(next_stream_id("a-1"));
    CHECK_FALSE(next_stream_id("1-"));
}
