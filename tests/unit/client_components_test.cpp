// The client's components that need no Redis: task builder, admission, encoder.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "client/admission.hpp"
#include "client/encoder.hpp"
#include "client/task_builder.hpp"
#include "core/clock.hpp"
#include "core/keys.hpp"
#include "core/scripts.hpp"
#include "core/uuid.hpp"
#include "redis/resp.hpp"
#include "streamfleet/codec.hpp"
#include "streamfleet/errors.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using namespace streamfleet::detail;
using namespace streamfleet::detail::client;

namespace {

constexpr std::int64_t kNow = 1'700'000'000'000;

std::chrono::system_clock::time_point at_ms(std::int64_t ms) {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

// The arguments of one RESP command, as a server would read them.
// Every command in `resp`, in order.
std::vector<std::vector<std::string>> parse_commands(std::string_view resp) {
    redis::ReplyParser parser;
    REQUIRE(parser.feed(resp.data(), resp.size()));
    std::vector<std::vector<std::string>> out;
    for (;;) {
        auto next = parser.next();
        REQUIRE(next.ok());
        if (*next == nullptr) return out;
        const redis::Reply& cmd = **next;
        REQUIRE(cmd.is_array());
        auto& argv = out.emplace_back();
        for (std::size_t i = 0; i < cmd.size(); ++i) argv.emplace_back(cmd[i].str());
    }
}

std::vector<std::string> parse_command(std::string_view resp) {
    auto all = parse_commands(resp);
    REQUIRE(all.size() == 1);  // exactly one command
    return all.front();
}

// The task's fields in wire order, as the wire codec writes them.
std::vector<std::string> fields_of(const TaskMessage& m) {
    auto f = encode(m);
    return {f.views().begin(), f.views().end()};
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

struct Builder {
    explicit Builder(ClientOptions o = {})
        : options(std::move(o)), builder(options, "client-1", clock) {}
    ManualClock clock{kNow};
    ClientOptions options;
    TaskBuilder builder;
};

}  // namespace

TEST_CASE("task builder: each refusal names its field") {
    Builder b({.max_payload_bytes = 4});
    struct Case {
        const char* text;
        std::function<void(TaskOptions&)> set;
    };
    // unique_key by push_back, not = "k": g++ 12 -O2 sees a -Wrestrict false positive there.
    const std::vector<Case> cases{
        {"retry_delay is negative", [](TaskOptions& o) { o.retry_delay = -1ms; }},
        {"expires_in is negative", [](TaskOptions& o) { o.expires_in = -1ms; }},
        {"delay is negative", [](TaskOptions& o) { o.delay = -1ms; }},
        {"run_timeout is negative", [](TaskOptions& o) { o.run_timeout = -1ms; }},
        {"backoff_max is negative", [](TaskOptions& o) { o.backoff_max = -1ms; }},
        {"run_at is not after the unix epoch", [](TaskOptions& o) { o.run_at = at_ms(0); }},
        {"retention is negative", [](TaskOptions& o) { o.retention = -1ms; }},
        {"unique_ttl must be positive when unique_key is set",
         [](TaskOptions& o) { o.unique_key.push_back('k'); }},
        {"expires_at is not after the unix epoch",
         [](TaskOptions& o) { o.expires_at = at_ms(-5); }},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        TaskOptions o;
        c.set(o);
        CHECK_THROWS_WITH_AS(b.builder.build("ok", o, false), c.text, InvalidArgument);
    }
    CHECK_THROWS_WITH_AS(b.builder.build("12345", {}, false),
                         "payload is 5 bytes; max_payload_bytes is 4", InvalidArgument);
    CHECK_NOTHROW(b.builder.build("1234", {}, false));
    CHECK_THROWS_WITH_AS(
        TaskBuilder::check_many({.unique_key = "k", .unique_ttl = 1s}),
        "unique_key names one task; enqueue_many would make all but the first duplicates",
        InvalidArgument);
    CHECK_NOTHROW(TaskBuilder::check_many({}));
}

TEST_CASE("task builder: times come from the clock; delays and expiry become instants") {
    Builder b;
    auto m = b.builder.build("payload", {.max_retries = 3, .retry_delay = 250ms}, true);
    CHECK(m.enqueued_ts == kNow);
    CHECK(uuid_v7_ms(m.id) == kNow);
    CHECK(m.client_id == "client-1");
    CHECK(m.data == "payload");
    CHECK(m.send_notif);
    CHECK(m.max_retries == 3);
    CHECK(m.retry_delay_ms == 250);
    CHECK(m.run_at_ms == 0);
    CHECK(m.expires_ts == 0);
    CHECK(m.state);
    CHECK(m.retention_ms == kDefaultRetentionMs);

    b.clock.advance(1000);
    const std::int64_t now = kNow + 1000;
    CHECK(b.builder.build("x", {.delay = 5s}, false).run_at_ms == now + 5000);
    // delay and run_at: the later wins; a due time already past runs at once.
    CHECK(b.builder.build("x", {.delay = 5s, .run_at = at_ms(now + 9000)}, false).run_at_ms ==
          now + 9000);
    CHECK(b.builder.build("x", {.delay = 5s, .run_at = at_ms(now + 10)}, false).run_at_ms ==
          now + 5000);
    CHECK(b.builder.build("x", {.run_at = at_ms(now - 10)}, false).run_at_ms == 0);
    CHECK(b.builder.build("x", {.run_at = at_ms(now)}, false).run_at_ms == 0);
    // expires_in and expires_at: the earlier wins.
    CHECK(b.builder.build("x", {.expires_in = 60s}, false).expires_ts == now + 60'000);
    CHECK(
        b.builder.build("x", {.expires_at = at_ms(now + 7), .expires_in = 60s}, false).expires_ts ==
        now + 7);
    CHECK(b.builder.build("x", {.expires_at = at_ms(now + 90'000), .expires_in = 60s}, false)
              .expires_ts == now + 60'000);
    CHECK(b.builder.build("x", {.expires_at = at_ms(now + 90'000)}, false).expires_ts ==
          now + 90'000);

    auto tuned = b.builder.build(
        "x", {.backoff = Backoff::linear, .backoff_max = 3s, .run_timeout = 2s, .retention = 0ms},
        false);
    CHECK(tuned.backoff == BackoffKind::linear);
    CHECK(tuned.backoff_max_ms == 3000);
    CHECK(tuned.timeout_ms == 2000);
    CHECK(tuned.retention_ms == 0);

    Builder stateless({.track_state = false});
    auto plain = stateless.builder.build("x", {.retention = 5s}, false);
    CHECK_FALSE(plain.state);
    CHECK(plain.retention_ms == -1);  // no record, so no x_retention on the wire
}

TEST_CASE("admission: the count bound, the byte bound, and QueueFull's text") {
    int wakes = 0;
    Admission a({.max_tasks = 3, .max_bytes = 1000, .full_timeout = 0ms}, "c1", [&] {
        ++wakes;
        return true;
    });
    a.reserve(2, 100);
    a.reserve(1, 100);
    CHECK(a.buffered() == 3);
    CHECK(a.buffered_bytes() == 200);
    CHECK_THROWS_WITH_AS(a.reserve(1, 1),
                         "client buffer holds 3 tasks (200 bytes) not yet in Redis; max_buffered "
                         "is 3, max_buffered_bytes 1000",
                         QueueFull);
    a.release(3, 200);
    CHECK(a.buffered() == 0);
    // An empty buffer takes any one task, however large: it could never fit otherwise.
    a.reserve(1, 5000);
    CHECK_THROWS_AS(a.reserve(1, 1), QueueFull);  // bytes now
    a.release(1, 5000);
    a.reserve(1, 600);
    CHECK_THROWS_AS(a.reserve(1, 401), QueueFull);
    a.reserve(1, 400);
    CHECK(a.buffered_bytes() == 1000);
    CHECK(wakes == 0);
    TaskMessage m;
    m.data.assign(44, 'x');
    CHECK(Admission::footprint(m) == 300);
}

TEST_CASE("admission: waiting for room, then QueueFull when none comes in time") {
    Admission a({.max_tasks = 1, .max_bytes = 1 << 20, .full_timeout = 5s}, "c1",
                [] { return true; });
    a.reserve(1, 10);
    std::thread releaser([&] {
        std::this_thread::sleep_for(100ms);
        a.release(1, 10);
    });
    auto t0 = std::chrono::steady_clock::now();
    a.reserve(1, 10);  // waits for the release instead of failing
    CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);
    releaser.join();
    CHECK(a.buffered() == 1);

    Admission brief({.max_tasks = 1, .max_bytes = 1 << 20, .full_timeout = 50ms}, "c2",
                    [] { return true; });
    brief.reserve(1, 10);
    t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(brief.reserve(1, 10), QueueFull);
    CHECK(std::chrono::steady_clock::now() - t0 >= 40ms);
}

TEST_CASE("admission: hand-off order, one wake per batch, ClosedError, drain") {
    int wakes = 0;
    bool loop_open = true;
    Admission a({.max_tasks = 10, .max_bytes = 1 << 20, .full_timeout = 0ms}, "c1", [&] {
        ++wakes;
        return loop_open;
    });
    auto task = [](std::string id) {
        Outgoing o;
        o.id = std::move(id);
        o.bytes = 10;
        return o;
    };
    a.hand_off(task("a"), false);
    std::vector<Outgoing> batch;
    batch.push_back(task("b"));
    batch.push_back(task("c"));
    a.hand_off(batch, false);
    CHECK(wakes == 1);  // the loop was woken for "a"; "b" and "c" join that batch
    CHECK(a.buffered() == 3);
    std::vector<Outgoing> taken;
    a.take(taken);
    REQUIRE(taken.size() == 3);
    CHECK(taken[0].id == "a");
    CHECK(taken[1].id == "b");
    CHECK(taken[2].id == "c");
    CHECK(a.buffered() == 3);  // taken is not confirmed

    // Reserved room (the spool path) is not taken twice.
    a.reserve(1, 10);
    a.hand_off(task("d"), true);
    CHECK(wakes == 2);
    CHECK(a.buffered() == 4);

    // A loop that refuses work: nothing is queued and the room comes back.
    std::vector<Outgoing> more;
    a.take(more);
    loop_open = false;
    CHECK_THROWS_WITH_AS(a.hand_off(task("e"), false), "client c1 is closed", ClosedError);
    CHECK(a.buffered() == 4);
    more.clear();
    a.take(more);
    CHECK(more.empty());

    CHECK_FALSE(a.wait_drained(std::chrono::steady_clock::now() + 10ms));
    std::thread confirm([&] {
        std::this_thread::sleep_for(50ms);
        a.release(4, 40);
    });
    CHECK(a.wait_drained(std::chrono::steady_clock::now() + 10s));
    confirm.join();

    CHECK(a.close());
    CHECK_FALSE(a.close());  // once
    CHECK_THROWS_WITH_AS(a.reserve(1, 1), "client c1 is closed", ClosedError);
    CHECK_THROWS_AS(a.hand_off(task("f"), false), ClosedError);
}

TEST_CASE("admission: close wakes a caller waiting for room") {
    Admission a({.max_tasks = 1, .max_bytes = 1 << 20, .full_timeout = 30s}, "c1",
                [] { return true; });
    a.reserve(1, 1);
    std::atomic<bool> closed_error{false};
    std::thread waiter([&] {
        try {
            a.reserve(1, 1);
        } catch (const ClosedError&) {
            closed_error = true;
        }
    });
    std::this_thread::sleep_for(50ms);
    auto t0 = std::chrono::steady_clock::now();
    a.close();
    waiter.join();
    CHECK(closed_error);
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
}

TEST_CASE("encoder: tasks without a record are added and noted in a ledger: plainly, or checked when in doubt") {
    Builder b({.track_state = false});
    QueueKeys keys("sf:", "mail");
    auto m1 = b.builder.build("hello", {.max_retries = 2}, false);
    auto m2 = b.builder.build("again", {}, false);
    auto o1 = encode_outgoing(m1, keys, 123);
    auto o2 = encode_outgoing(m2, keys, 10);
    CHECK(o1.form == Outgoing::Form::noted);
    CHECK(o1.id == m1.id);
    CHECK(o1.bytes == 123);
    CHECK(o1.record_keys == nullptr);
    CHECK(o1.ledger == "sf:{mail}:sent:client-1");
    CHECK(route_key(o1) == "sf:{mail}");
    auto f = fields_of(m1);
    CHECK(std::find(f.begin(), f.end(), "x_state") == f.end());

    auto part = [](std::uint64_t seq, const TaskMessage& m) {
        auto fields = fields_of(m);
        return concat({std::to_string(seq), std::to_string(fields.size())}, fields);
    };
    o1.seq = 7;
    o2.seq = 9;
    std::string scratch;
    CHECK(joins_batch(o1, 1, o1.cmd.size(), o2));
    Outgoing* two[] = {&o1, &o2};
    // A first send: one MULTI block that drops the ledger's notes below the
    // floor, adds both entries, notes both numbers and renews the ledger's ttl.
    CHECK(sent_plain(two));
    CHECK(replies_for(two) == 2 + kPlainExtraReplies);
    const std::string ledger = "sf:{mail}:sent:client-1";
    CHECK(parse_commands(command_for(two, false, 5, scratch)) ==
          std::vector<std::vector<std::string>>{
              {"MULTI"},
              {"ZREMRANGEBYSCORE", ledger, "-inf", "(5"},
              concat({"XADD", "sf:{mail}", "*"}, fields_of(m1)),
              concat({"XADD", "sf:{mail}", "*"}, fields_of(m2)),
              {"ZADD", ledger, "7", "7", "9", "9"},
              {"PEXPIRE", ledger, std::to_string(kLedgerTtlMs)},
              {"EXEC"}});
    // A resend of tasks in doubt (one is enough): one add.lua call, which
    // skips what the ledger holds: the stream and the ledger, the floor, the
    // ledger's ttl, then each task's number and entry.
    o2.in_doubt = true;
    CHECK_FALSE(sent_plain(two));
    CHECK(replies_for(two) == 1);
    CHECK(parse_command(command_for(two, false, 5, scratch)) ==
          concat(concat({"EVALSHA", std::string(scripts::add.sha1), "2", "sf:{mail}", ledger, "5",
                         std::to_string(kLedgerTtlMs)},
                        part(7, m1)),
                 part(9, m2)));
    CHECK(parse_command(command_for(two, true, 5, scratch))[1] == scripts::add.body);

    // Never in one call with a task of another kind or another client.
    Builder tracked;
    auto o3 = encode_outgoing(tracked.builder.build("x", {}, false), keys, 10);
    CHECK_FALSE(joins_batch(o1, 1, 0, o3));
    CHECK_FALSE(joins_batch(o3, 1, 0, o1));
    Outgoing other;
    other.form = Outgoing::Form::noted;
    other.stream = o1.stream;
    other.ledger = "sf:{mail}:sent:client-2";
    CHECK_FALSE(joins_batch(o1, 1, 0, other));
}

TEST_CASE("encoder: a task with state tracking is batched into scripts::enqueue") {
    Builder b;
    QueueKeys keys("sf:", "mail");
    auto m1 = b.builder.build("one", {}, true);
    auto m2 = b.builder.build("two", {.retention = 5s}, false);
    auto o1 = encode_outgoing(m1, keys, 10);
    auto o2 = encode_outgoing(m2, keys, 10);
    CHECK(o1.form == Outgoing::Form::batched);
    CHECK(o1.record_keys == &keys);
    CHECK(route_key(o1) == "sf:{mail}");

    // Its id, the field count, the entry's fields (which hold what a record held: created, the
    // tracking client, retention).
    auto part = [](const TaskMessage& m) {
        auto f = fields_of(m);
        return concat({m.id, std::to_string(f.size())}, f);
    };
    const std::vector<std::string> keys_part = {"4", "sf:{mail}", "sf:{mail}:index",
                                                "sf:{mail}:done", "sf:{mail}:task:"};
    std::string scratch;
    Outgoing* one[] = {&o1};
    // A first send: no check for an earlier one ("0").
    CHECK(parse_command(command_for(one, false, 1, scratch)) ==
          concat(concat({"EVALSHA", std::string(scripts::enqueue.sha1)}, keys_part),
                 concat({"0"}, part(m1))));
    // After NOSCRIPT: the same call by body.
    CHECK(parse_command(command_for(one, true, 1, scratch)) ==
          concat(concat({"EVAL", std::string(scripts::enqueue.body)}, keys_part),
                 concat({"0"}, part(m1))));
    // Two tasks of one stream: one call, keys first, then each task's part;
    // one of them in doubt (its reply was lost): the call checks ("1").
    CHECK(joins_batch(o1, 1, o1.cmd.size(), o2));
    Outgoing* two[] = {&o1, &o2};
    o2.in_doubt = true;
    CHECK(parse_command(command_for(two, false, 1, scratch)) ==
          concat(concat({"EVALSHA", std::string(scripts::enqueue.sha1)}, keys_part),
                 concat(concat({"1"}, part(m1)), part(m2))));
    CHECK_FALSE(sent_plain(two));
    CHECK(replies_for(two) == 1);

    QueueKeys other("sf:", "other");
    auto o3 = encode_outgoing(m2, other, 10);
    CHECK_FALSE(joins_batch(o1, 1, 0, o3));  // another stream
    CHECK_FALSE(joins_batch(o1, kMaxBatch, 0, o2));
    CHECK_FALSE(joins_batch(o1, 1, kMaxBatchBytes, o2));
}

TEST_CASE("encoder: a delayed task is one calls::schedule into P{Q}:delayed") {
    Builder b;
    QueueKeys keys("sf:", "mail");
    auto m = b.builder.build("later", {.delay = 30s}, true);
    auto o = encode_outgoing(m, keys, 10);
    CHECK(o.form == Outgoing::Form::script);
    REQUIRE(o.script);
    CHECK(route_key(o) == "sf:{mail}:delayed");
    std::string scratch;
    Outgoing* one[] = {&o};
    auto argv = parse_command(command_for(one, false, 1, scratch));
    CHECK(argv == std::vector<std::string>{"EVALSHA", std::string(scripts::schedule.sha1), "4",
                                           "sf:{mail}:delayed", "sf:{mail}:nudge",
                                           "sf:{mail}:task:" + m.id, "sf:{mail}:done",
                                           std::to_string(kNow + 30'000),
                                           encode_msgpack(fields_of(m)), "record",
                                           std::to_string(kNow), "client-1", "86400000", m.id});
    CHECK(parse_command(command_for(one, true, 1, scratch))[0] == "EVAL");
    CHECK_FALSE(joins_batch(o, 1, 0, o));

    Builder stateless({.track_state = false});
    auto bare = encode_outgoing(stateless.builder.build("later", {.delay = 30s}, false), keys, 10);
    REQUIRE(bare.script);
    CHECK(bare.record_keys == nullptr);  // no record to write: noted in the ledger instead
    bare.seq = 4;
    Outgoing* alone[] = {&bare};
    auto bare_argv = parse_command(command_for(alone, false, 3, scratch));
    REQUIRE(bare_argv.size() == 12);
    CHECK(bare_argv[5] == "sf:{mail}:sent:client-1");
    CHECK(std::vector<std::string>(bare_argv.begin() + 8, bare_argv.end()) ==
          std::vector<std::string>{"ledger", "4", "3", std::to_string(kLedgerTtlMs)});
}
