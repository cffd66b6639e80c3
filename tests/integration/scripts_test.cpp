// The Lua scripts (lib/scripts/*.lua) against a real redis-server, one test
// case per script: seed Redis with plain commands, build the call with its
// typed builder (core/script_calls.hpp), run it, then compare the reply and
// the keys afterwards with what the script's contract promises. The same
// checks run once more on a cluster node that serves only the queue's hash
// slot, where a script touching a key of any other slot fails.

#include "core/scripts.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "core/done_format.hpp"
#include "core/keys.hpp"
#include "core/script_calls.hpp"
#include "redis/slot.hpp"
#include "server/final_states.hpp"
#include "redis/notes.hpp"
#include "redis/sync.hpp"
#include "redis/topology.hpp"
#include "redis/url.hpp"
#include "streamfleet/codec.hpp"
#include "support/redis_server.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet::detail;
using streamfleet::encode_msgpack;
using streamfleet::test::eventually;
using streamfleet::test::RedisServer;
using streamfleet::test::RedisServerOptions;
using streamfleet::test::TestConn;
namespace r = streamfleet::detail::redis;
using r::Reply;

template <>
struct doctest::StringMaker<Reply> {
    static doctest::String convert(const Reply& reply) { return reply.debug_string().c_str(); }
};

namespace {

using Fields = std::map<std::string, std::string>;            // a hash, or a record
using Flat = std::vector<std::string>;                        // one entry's field/value strings
using Zset = std::vector<std::pair<std::string, long long>>;  // member, score; by score

// "now" in the scripts' ARGV: fixed, so records compare exactly.
constexpr std::int64_t kNow = 1'700'000'000'000;
constexpr std::string_view kGroup = kServerGroup;

const Script* const kAllScripts[] = {
    &scripts::enqueue, &scripts::schedule, &scripts::unique_claim, &scripts::unique_release,
    &scripts::cancel,  &scripts::get,      &scripts::promote,      &scripts::move,
    &scripts::keep,    &scripts::requeue_dead, &scripts::purge_dead,
    &scripts::forget,  &scripts::beat,     &scripts::leave,        &scripts::dead,
    &scripts::claim,   &scripts::add,      &scripts::ack,
};

Reply S(std::string_view s) { return Reply::string(std::string(s)); }
Reply I(long long v) { return Reply::integer(v); }
Reply A(std::vector<Reply> elements) { return Reply::array(std::move(elements)); }
Reply A(const Flat& strings) {
    std::vector<Reply> out;
    for (const auto& s : strings) out.push_back(S(s));
    return A(std::move(out));
}

std::string escaped(std::string_view s) { return S(s).debug_string(); }
std::string show(const Fields& f) {
    std::string out = "{";
    for (const auto& [k, v] : f) out += (out.size() > 1 ? ", " : "") + k + "=" + escaped(v);
    return out + "}";
}
std::string show(const Flat& f) { return A(f).debug_string(); }
std::string show(const std::vector<Flat>& entries) {
    std::string out;
    for (const auto& e : entries) out += show(e) + "\n";
    return out;
}
std::string show(const Zset& z) {
    std::string out;
    for (const auto& [m, score] : z) out += escaped(m) + "@" + std::to_string(score) + "\n";
    return out;
}

/// A delayed task's member: the msgpack field list the promoter XADDs.
Flat task_fields(std::string_view id, bool tracked) {
    Flat f{"id", std::string(id), "data", "payload-" + std::string(id), "retries", "0"};
    if (tracked) f.insert(f.end(), {"x_state", "1"});
    return f;
}
std::string member(std::string_view id, bool tracked = true) {
    return encode_msgpack(task_fields(id, tracked));
}

/// `f` with `changes` applied; an empty value removes the field.
Fields with(Fields f, const Fields& changes) {
    for (const auto& [k, v] : changes) {
        if (v.empty()) {
            f.erase(k);
        } else {
            f[k] = v;
        }
    }
    return f;
}

/// State records as the scripts write them (core/scripts.hpp), of a tracked
/// task created at kNow.
Fields record(const Fields& own) {
    return with({{"created", std::to_string(kNow)},
                 {"updated", std::to_string(kNow)},
                 {"notify", "client-1"},
                 {"retention", "5000"},
                 {"retries", "0"}},
                own);
}
Fields delayed_record(std::string_view id, std::int64_t due) {
    return record({{"state", "delayed"}, {"member", member(id)}, {"run_at", std::to_string(due)}});
}
/// The record schedule.lua writes: without the fields at their readers'
/// defaults (updated = created, retries 0).
Fields scheduled_record(std::string_view id, std::int64_t due) {
    auto f = delayed_record(id, due);
    f.erase("updated");
    f.erase("retries");
    return f;
}
Fields ready_record(std::string_view entry) {
    return record({{"state", "ready"}, {"entry", std::string(entry)}});
}

RedisServerOptions cluster_options() {
    // A cluster node also listens on port + 10000 unless told otherwise: give
    // it a free port of its own, and its nodes.conf in the server's dir (the
    // `dir` line before these makes the relative name land there). It serves
    // one slot and is still "ok" without full coverage.
    // Set up here, not by the harness's one-node cluster (which would assign
    // every slot), also in the suite's cluster run.
    return RedisServerOptions{
        .extra_config = {"cluster-enabled yes",
                         "cluster-port " + std::to_string(streamfleet::test::free_port()),
                         "cluster-config-file nodes.conf", "cluster-require-full-coverage no"},
        .cluster = false};
}

/// One redis-server, a connection for seeding and reading, and a topology
/// that runs the scripts. `cluster`: a cluster node serving only the queue's
/// slot. (A node serving every slot would not do: Redis lets a script without
/// a #! line reach keys of any slot the node serves, declared or not.)
class Env {
public:
    explicit Env(bool cluster = false, std::string_view queue = "q")
        : server(cluster ? cluster_options() : RedisServerOptions{}),
          conn(server.url()),
          k(kDefaultPrefix, queue) {
        if (cluster) {
            auto slot = std::to_string(r::key_slot(k.stream()));
            cmd({"CLUSTER", "ADDSLOTSRANGE", slot, slot});
            REQUIRE(eventually([&] {
                auto info = cmd({"CLUSTER", "INFO"});
                return info.str().find("cluster_state:ok") != std::string_view::npos;
            }));
        }
        topo = conn.rt().call([&] {
            auto t = r::make_topology(conn.rt(), r::parse_url(server.url()).value()).value();
            t->start();
            return t;
        });
    }
    ~Env() {
        conn.rt().call([this] {
            topo->close();
            topo.reset();
        });
    }

    /// A plain command that must succeed.
    Reply cmd(std::vector<std::string> argv) {
        auto res = conn.cmd(argv);
        REQUIRE_MESSAGE(res.ok(), argv.front(), ": ", res.error().message());
        return std::move(res).value();
    }
    /// A script call through run_script (EVALSHA, EVAL on NOSCRIPT).
    Result<Reply> run(ScriptCall call) { return r::call(conn.rt(), *topo, std::move(call)); }
    /// A transaction.
    Result<Reply> run(const r::Block& block) { return r::call(conn.rt(), *topo, block); }
    /// A transaction that must succeed: EXEC's reply.
    Reply block(const r::Block& b) {
        auto res = run(b);
        REQUIRE_MESSAGE(res.ok(), "block: ", res.error().message());
        return std::move(res).value();
    }
    /// A script call that must succeed.
    Reply ok(ScriptCall call) {
        std::string name(call.script().name);
        auto res = run(std::move(call));
        REQUIRE_MESSAGE(res.ok(), name, ": ", res.error().message());
        return std::move(res).value();
    }

    void flush() { cmd({"FLUSHALL"}); }
    bool exists(const std::string& key) { return cmd({"EXISTS", key}).integer() == 1; }
    long long pttl(const std::string& key) { return cmd({"PTTL", key}).integer(); }
    Fields hash(const std::string& key) {
        auto h = cmd({"HGETALL", key});
        Fields out;
        for (std::size_t i = 0; i + 1 < h.size(); i += 2)
            out[std::string(h[i].str())] = h[i + 1].str();
        return out;
    }
    void hset(const std::string& key, const Fields& f) {
        Flat argv{"HSET", key};
        for (const auto& [name, value] : f) argv.insert(argv.end(), {name, value});
        cmd(argv);
    }
    std::string xadd(const std::string& key, const Flat& fields) {
        Flat argv{"XADD", key, "*"};
        argv.insert(argv.end(), fields.begin(), fields.end());
        return std::string(cmd(argv).str());
    }
    /// The entries of a stream, oldest first: ids and field lists.
    std::pair<Flat, std::vector<Flat>> xrange(const std::string& key) {
        auto rows = cmd({"XRANGE", key, "-", "+"});
        Flat ids;
        std::vector<Flat> fields;
        for (const auto& row : rows.elements()) {
            ids.emplace_back(row[0].str());
            Flat f;
            for (const auto& v : row[1].elements()) f.emplace_back(v.str());
            fields.push_back(std::move(f));
        }
        return {ids, fields};
    }
    std::vector<Flat> stream(const std::string& key) { return xrange(key).second; }
    Zset zset(const std::string& key) {
        auto z = cmd({"ZRANGE", key, "0", "-1", "WITHSCORES"});
        Zset out;
        for (std::size_t i = 0; i + 1 < z.size(); i += 2) {
            out.emplace_back(z[i].str(), std::stoll(std::string(z[i + 1].str())));
        }
        return out;
    }
    /// The `due` of every nudge sent, oldest first.
    Flat nudges() {
        Flat out;
        for (const auto& f : stream(k.nudge())) out.push_back(f.at(1));
        return out;
    }

    void create_group() {
        cmd({"XGROUP", "CREATE", k.stream(), std::string(kGroup), "0", "MKSTREAM"});
    }
    /// Delivers up to `n` new entries to `consumer`; their ids.
    Flat deliver(const std::string& consumer, int n = 1) {
        auto res = cmd({"XREADGROUP", "GROUP", std::string(kGroup), consumer, "COUNT",
                        std::to_string(n), "STREAMS", k.stream(), ">"});
        Flat ids;
        if (!res.is_nil()) {
            for (const auto& row : res[0][1].elements()) ids.emplace_back(row[0].str());
        }
        return ids;
    }
    /// The group's PEL: entry id → consumer.
    Fields pel() {
        Fields out;
        for (const auto& p : pending()) out[std::string(p[0].str())] = p[1].str();
        return out;
    }
    /// XPENDING's extended form: [id, consumer, idle ms, deliveries] each;
    /// none without a stream or group.
    std::vector<Reply> pending() {
        auto res = conn.cmd({"XPENDING", k.stream(), std::string(kGroup), "-", "+", "100"});
        return res.ok() ? res->elements() : std::vector<Reply>{};
    }

    RedisServer server;
    TestConn conn;
    QueueKeys k;
    std::unique_ptr<r::Topology> topo;
};

// ---------------------------------------------------------------- scenarios
// Each takes an Env with an empty data set and leaves it to the caller; the
// per-script test cases run them on a plain server, the cluster case on a
// cluster node.

// Buckets of finished states expire by Redis's clock (PEXPIREAT), so tests writing them stamp the
// states by the wall clock, not kNow.
std::int64_t wall_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void check_enqueue(Env& e) {
    struct Task {
        std::string id;
        Flat fields;
    };
    const std::vector<Task> tasks = {
        {"t1",
         {"id", "t1", "data", "a", "retries", "0", "client_id", "client-1", "send_notif", "1",
          "x_enqueued_ts", std::to_string(kNow), "x_retention", "5000", "x_state", "1"}},
        {"t2", {"id", "t2", "data", ""}},  // an empty value
        {"t3", task_fields("t3", true)},
    };
    auto call = [&](bool check) {
        ScriptCall c(scripts::enqueue);
        c.key(e.k.stream()).key(e.k.index()).key(e.k.done()).key(e.k.task_prefix());
        c.arg(check ? "1" : "0");
        for (const auto& t : tasks) {
            c.arg(t.id).arg(static_cast<std::int64_t>(t.fields.size())).args(t.fields);
        }
        return c;
    };
    // Loaded first, so the batch goes by EVALSHA as the client sends it.
    CHECK(e.cmd({"SCRIPT", "LOAD", std::string(scripts::enqueue.body)}).str() ==
          scripts::enqueue.sha1);
    auto reply = e.ok(call(false));

    auto [ids, entries] = e.xrange(e.k.stream());
    REQUIRE(ids.size() == tasks.size());
    CHECK(reply == A(ids));
    Fields index;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        CAPTURE(tasks[i].id);
        CHECK(show(entries[i]) == show(tasks[i].fields));
        CHECK_FALSE(e.exists(e.k.task(tasks[i].id)));  // no record on this path
        index[tasks[i].id] = ids[i];
    }
    CHECK(show(e.hash(e.k.index())) == show(index));
    // get() finds each by the index, created from its entry.
    CHECK(e.ok(calls::get(e.k, "t1", kNow)) ==
          A(Flat{"state", "ready", "entry", ids[0], "created", std::to_string(kNow)}));

    // A resend (checked): every task is found, nothing is added, and each
    // task's entry comes back.
    CHECK(e.ok(call(true)) == A(ids));
    CHECK(e.xrange(e.k.stream()).first == ids);
    // A task with a record instead (asked to stop while running, here: with no entry) answers
    // the record's entry.
    e.cmd({"HDEL", e.k.index(), "t2"});
    e.hset(e.k.task("t2"), {{"state", "ready"}, {"created", "1"}});
    CHECK(e.ok(call(true)) == A(Flat{ids[0], "", ids[2]}));
    CHECK(e.xrange(e.k.stream()).first == ids);
    // A task finished since (out of the index, its state in a bucket) answers '' too, and is
    // not added again.
    FinalStates fin(e.k, "tag");
    fin.add("t3", "completed", kNow + 2, 0, kDefaultRetentionMs);
    REQUIRE(e.block(fin.take(wall_now())).is_array());
    CHECK_FALSE(e.cmd({"HEXISTS", e.k.index(), "t3"}).integer());
    CHECK(e.ok(call(true)) == A(Flat{ids[0], "", ""}));
    CHECK(e.xrange(e.k.stream()).first == ids);

    // An index key of the wrong type refuses the batch with no entry left behind, checked or
    // not (unchecked, the index's write finds it, and the entries are taken back).
    for (bool check : {true, false}) {
        CAPTURE(check);
        e.flush();
        e.cmd({"SET", e.k.index(), "in the way"});
        auto res = e.run(call(check));
        REQUIRE_FALSE(res.ok());
        CHECK(res.error().message().starts_with("WRONGTYPE"));
        CHECK(e.xrange(e.k.stream()).first.empty());
    }
}

void check_schedule(Env& e) {
    // Steps on one set, in order.
    struct Step {
        const char* what;
        std::int64_t due;
        std::string id;
        bool record;
        long long want;  // 1 = nudged
        Zset want_set;
        Flat want_nudges;
    };
    const auto a = member("a"), b = member("b", false), c = member("c");
    const std::string t1 = std::to_string(kNow + 1000), t5 = std::to_string(kNow + 500);
    const Zset one = {{a, kNow + 1000}};
    const Zset two = {{a, kNow + 1000}, {b, kNow + 2000}};
    const Zset three = {{c, kNow + 500}, {a, kNow + 1000}, {b, kNow + 2000}};
    const std::string ledger = e.k.sent("client-1");
    const Step steps[] = {
        {"the first task of an empty set nudges", kNow + 1000, "a", true, 1, one, {t1}},
        {"a later one does not", kNow + 2000, "b", false, 0, two, {t1}},
        {"a new earliest one nudges", kNow + 500, "c", true, 1, three, {t1, t5}},
        // Resends after a lost reply: the record (or the ledger's note) of the
        // first send is found, nothing changes, no second nudge.
        {"a resend of the head", kNow + 500, "c", true, 0, three, {t1, t5}},
        {"a resend of a later one", kNow + 2000, "b", false, 0, three, {t1, t5}},
    };
    for (const auto& s : steps) {
        CAPTURE(s.what);
        calls::Record rec{s.id, kNow, "client-1", 5000};
        auto m = member(s.id, s.record);
        auto call = calls::schedule(e.k, s.due, m, s.record ? &rec : nullptr, ledger);
        if (!s.record) call.arg(std::int64_t{2}).arg(std::int64_t{1}).arg(std::int64_t{60'000});
        CHECK(e.ok(std::move(call)) == I(s.want));
        CHECK(show(e.zset(e.k.delayed())) == show(s.want_set));
        CHECK(show(e.nudges()) == show(s.want_nudges));
    }
    CHECK(show(e.hash(e.k.task("a"))) == show(scheduled_record("a", kNow + 1000)));
    CHECK(show(e.hash(e.k.task("c"))) == show(scheduled_record("c", kNow + 500)));
    CHECK_FALSE(e.exists(e.k.task("b")));  // no record without one asked for
    CHECK(e.pttl(e.k.task("a")) == -1);
    CHECK(show(e.zset(ledger)) == show(Zset{{"2", 2}}));
    CHECK(e.pttl(ledger) > 0);

    // Once promoted (the member gone), a resend still adds nothing: with a
    // record, and with a ledger note.
    e.cmd({"DEL", e.k.delayed()});
    calls::Record rec_a{"a", kNow, "client-1", 5000};
    CHECK(e.ok(calls::schedule(e.k, kNow + 1000, a, &rec_a, ledger)) == I(0));
    // And once finished (the record gone, the state in a bucket).
    FinalStates fin(e.k, "tag");
    fin.add("a", "completed", kNow, 0, 5000);
    REQUIRE(e.block(fin.take(wall_now())).is_array());
    REQUIRE_FALSE(e.exists(e.k.task("a")));
    CHECK(e.ok(calls::schedule(e.k, kNow + 1000, a, &rec_a, ledger)) == I(0));
    CHECK_FALSE(e.exists(e.k.task("a")));
    auto again = calls::schedule(e.k, kNow + 2000, b, nullptr, ledger);
    again.arg(std::int64_t{2}).arg(std::int64_t{1}).arg(std::int64_t{60'000});
    CHECK(e.ok(std::move(again)) == I(0));
    CHECK_FALSE(e.exists(e.k.delayed()));
    // A floor above a task's number drops its note (the client settled it).
    auto next = calls::schedule(e.k, kNow + 3000, member("d", false), nullptr, ledger);
    next.arg(std::int64_t{3}).arg(std::int64_t{3}).arg(std::int64_t{60'000});
    CHECK(e.ok(std::move(next)) == I(1));
    CHECK(show(e.zset(ledger)) == show(Zset{{"3", 3}}));
}

void check_add(Env& e) {
    const std::string ledger = e.k.sent("client-1");
    auto call = [&](std::int64_t floor, std::vector<std::pair<std::int64_t, Flat>> tasks) {
        ScriptCall c(scripts::add);
        c.key(e.k.stream()).key(ledger).arg(floor).arg(std::int64_t{60'000});
        for (auto& [seq, fields] : tasks) {
            c.arg(seq).arg(static_cast<std::int64_t>(fields.size())).args(fields);
        }
        return e.ok(std::move(c));
    };
    const Flat f1 = {"id", "t1", "data", "a"}, f2 = {"id", "t2", "data", ""},
               f3 = task_fields("t3", false);
    auto first = call(1, {{1, f1}, {2, f2}});
    auto [ids, entries] = e.xrange(e.k.stream());
    REQUIRE(ids.size() == 2);
    CHECK(first == A(ids));
    CHECK(show(entries[0]) == show(f1));
    CHECK(show(entries[1]) == show(f2));
    CHECK(show(e.zset(ledger)) == show(Zset{{"1", 1}, {"2", 2}}));
    CHECK(e.pttl(ledger) > 0);

    // The reply was lost: the resend, split with a new task between, adds
    // only the new one.
    auto resend = call(1, {{1, f1}, {3, f3}, {2, f2}});
    auto [ids2, entries2] = e.xrange(e.k.stream());
    REQUIRE(ids2.size() == 3);
    CHECK(resend == A({S(""), S(ids2[2]), S("")}));
    CHECK(show(entries2[2]) == show(f3));

    // The client saw 1 and 2 confirmed: the floor moves past them, their
    // notes go; a task numbered below the floor is not looked for again.
    call(3, {{4, f1}});
    CHECK(show(e.zset(ledger)) == show(Zset{{"3", 3}, {"4", 4}}));
    CHECK(e.xrange(e.k.stream()).first.size() == 4);

    // A refused XADD (the stream key of the wrong type) writes no note, so
    // the task's resend is not mistaken for one already added.
    e.cmd({"DEL", e.k.stream()});
    e.cmd({"SET", e.k.stream(), "x"});
    ScriptCall bad(scripts::add);
    bad.key(e.k.stream()).key(ledger).arg(std::int64_t{3}).arg(std::int64_t{60'000});
    bad.arg(std::int64_t{5}).arg(std::int64_t{2}).args(Flat{"id", "t5"});
    auto refused = e.run(std::move(bad));
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message().find("WRONGTYPE") != std::string::npos);
    CHECK(show(e.zset(ledger)) == show(Zset{{"3", 3}, {"4", 4}}));
}

void check_unique_claim(Env& e) {
    const auto key = e.k.unique("order:1");
    CHECK(e.ok(calls::unique_claim(e.k, "order:1", "t1", 60'000)) == A({I(1)}));
    CHECK(e.cmd({"GET", key}).str() == "t1");
    auto ttl = e.pttl(key);
    CHECK(ttl > 50'000);
    CHECK(ttl <= 60'000);

    // Taken: the holder is named, and neither the holder nor its window changes.
    CHECK(e.ok(calls::unique_claim(e.k, "order:1", "t2", 600'000)) == A({I(0), S("t1")}));
    CHECK(e.cmd({"GET", key}).str() == "t1");
    CHECK(e.pttl(key) <= 60'000);
    // The holder claiming again (a resend after a lost reply) succeeds, and changes nothing.
    CHECK(e.ok(calls::unique_claim(e.k, "order:1", "t1", 600'000)) == A({I(1)}));
    CHECK(e.cmd({"GET", key}).str() == "t1");
    CHECK(e.pttl(key) <= 60'000);
    // Another key is free on its own.
    CHECK(e.ok(calls::unique_claim(e.k, "order:2", "t3", 60'000)) == A({I(1)}));

    // Once the window ends, the next task claims it.
    CHECK(e.ok(calls::unique_claim(e.k, "order:3", "t4", 20)) == A({I(1)}));
    REQUIRE(eventually([&] { return !e.exists(e.k.unique("order:3")); }, 5s));
    CHECK(e.ok(calls::unique_claim(e.k, "order:3", "t5", 60'000)) == A({I(1)}));
    CHECK(e.cmd({"GET", e.k.unique("order:3")}).str() == "t5");
}

void check_unique_release(Env& e) {
    const auto key = e.k.unique("order:1");
    CHECK(e.ok(calls::unique_release(e.k, "order:1", "t1")) == I(0));  // nobody holds it

    e.cmd({"SET", key, "t1", "PX", "60000"});
    CHECK(e.ok(calls::unique_release(e.k, "order:1", "t2")) == I(0));  // not the holder
    CHECK(e.cmd({"GET", key}).str() == "t1");
    CHECK(e.pttl(key) > 0);
    CHECK(e.ok(calls::unique_release(e.k, "order:1", "t1")) == I(1));
    CHECK_FALSE(e.exists(key));

    // t1's window ended and t2 claimed the key meanwhile: t1 must not take it.
    e.cmd({"SET", key, "t2", "PX", "60000"});
    CHECK(e.ok(calls::unique_release(e.k, "order:1", "t1")) == I(0));
    CHECK(e.cmd({"GET", key}).str() == "t2");
}

void check_cancel(Env& e) {
    const std::string id = "t1";
    const auto now = kNow + 7;
    // What cancel() leaves of a record it canceled.
    auto canceled = [&](const Fields& before) {
        return with(before, {{"state", "canceled"},
                             {"updated", std::to_string(now)},
                             {"finished", std::to_string(now)},
                             {"member", ""},
                             {"entry", ""},
                             {"run_at", ""}});
    };
    auto seed_delayed = [&](Env& env, const Fields& record) {
        env.cmd({"ZADD", env.k.delayed(), std::to_string(kNow + 1000), member(id)});
        env.hset(env.k.task(id), record);
        return record;
    };
    // Seeds a ready task (its entry in the stream); `deliver`: a server read it.
    auto seed_ready = [&](Env& env, bool group, bool deliver, std::string_view notify) {
        if (group) env.create_group();
        auto eid = env.xadd(env.k.stream(), task_fields(id, true));
        if (deliver) REQUIRE(env.deliver("w1") == Flat{eid});
        auto record = with(ready_record(eid), {{"notify", std::string(notify)}});
        env.hset(env.k.task(id), record);
        return record;
    };
    struct Row {
        const char* what;
        std::function<Fields(Env&)> seed;  // returns the record it wrote
        Reply want;
        bool canceled;       // the record becomes 'canceled' (else unchanged)
        long long want_ttl;  // its TTL's upper bound; 0: deleted; -1: none
        std::size_t want_delayed, want_stream, want_cancels;
    };
    const Row rows[] = {
        {"unknown", [](Env&) { return Fields{}; }, A({S("unknown")}), false, -2, 0, 0, 0},
        {"delayed", [&](Env& env) { return seed_delayed(env, delayed_record(id, kNow + 1000)); },
         A({S("delayed"), S("client-1")}), true, 5000, 0, 0, 0},
        {"delayed, retention 0: the record goes",
         [&](Env& env) {
             return seed_delayed(env, with(delayed_record(id, kNow + 1000), {{"retention", "0"}}));
         },
         A({S("delayed"), S("client-1")}), true, 0, 0, 0, 0},
        {"delayed, no retention: the default",
         [&](Env& env) {
             return seed_delayed(env, with(delayed_record(id, kNow + 1000), {{"retention", ""}}));
         },
         A({S("delayed"), S("client-1")}), true, kDefaultRetentionMs, 0, 0, 0},
        {"failed, waiting for its retry",
         [&](Env& env) {
             return seed_delayed(env,
                                 with(delayed_record(id, kNow + 1000),
                                      {{"state", "failed"}, {"error", "boom"}, {"notify", ""}}));
         },
         A({S("delayed"), S("")}), true, 5000, 0, 0, 0},
        {"ready, not delivered", [&](Env& env) { return seed_ready(env, true, false, "client-1"); },
         A({S("ready"), S("client-1")}), true, 5000, 0, 0, 0},
        {"ready, no server group yet", [&](Env& env) { return seed_ready(env, false, false, ""); },
         A({S("ready"), S("")}), true, 5000, 0, 0, 0},
        {"active: delivered to a server",
         [&](Env& env) { return seed_ready(env, true, true, "c"); }, A({S("active"), S("")}), false,
         -1, 0, 1, 1},
        {"finished",
         [&](Env& env) {
             auto record = with(ready_record("1-1"), {{"state", "completed"}, {"finished", "1"}});
             env.hset(env.k.task(id), record);
             return record;
         },
         A({S("finished"), S("completed")}), false, -1, 0, 0, 0},
        {"dead",
         [&](Env& env) {
             auto record =
                 with(ready_record("1-1"), {{"state", "dead"}, {"error", "boom"}, {"entry", ""}});
             env.hset(env.k.task(id), record);
             return record;
         },
         A({S("finished"), S("dead")}), false, -1, 0, 0, 0},
    };
    for (const auto& row : rows) {
        CAPTURE(row.what);
        e.flush();
        auto before = row.seed(e);
        auto pel_before = e.pel();
        CHECK(e.ok(calls::cancel(e.k, id, now)) == row.want);
        auto want_record = row.canceled && row.want_ttl != 0 ? canceled(before) : before;
        if (row.want_ttl == 0) want_record.clear();
        // A cancel of a running task sticks: the record keeps when it was asked.
        if (row.want_cancels == 1) want_record["cancel"] = std::to_string(now);
        CHECK(show(e.hash(e.k.task(id))) == show(want_record));
        auto ttl = e.pttl(e.k.task(id));
        if (row.want_ttl > 0) {
            CHECK(ttl > 0);
            CHECK(ttl <= row.want_ttl);
        } else {
            CHECK(ttl == (row.want_ttl == 0 ? -2 : row.want_ttl));
        }
        CHECK(e.zset(e.k.delayed()).size() == row.want_delayed);
        CHECK(e.stream(e.k.stream()).size() == row.want_stream);
        auto cancels = e.stream(e.k.cancels());
        REQUIRE(cancels.size() == row.want_cancels);
        if (!cancels.empty()) CHECK(show(cancels[0]) == show(Flat{"id", id}));
        // The PEL is never touched: a running task is stopped by its server.
        CHECK(show(e.pel()) == show(pel_before));
    }

    // A task on the hot path has no record: the index names its entry, the entry the rest.
    const Flat fields = {"id", id, "data", "x", "client_id", "client-1", "send_notif", "1",
                         "x_enqueued_ts", std::to_string(kNow), "x_retention", "5000",
                         "x_state", "1"};
    auto seed_indexed = [&](bool deliver) {
        e.flush();
        e.create_group();
        auto eid = e.xadd(e.k.stream(), fields);
        if (deliver) REQUIRE(e.deliver("w1") == Flat{eid});
        e.cmd({"HSET", e.k.index(), id, eid});
        return eid;
    };
    {
        CAPTURE("indexed, not delivered: removed, canceled with a record of its own");
        seed_indexed(false);
        CHECK(e.ok(calls::cancel(e.k, id, now)) == A({S("ready"), S("client-1")}));
        CHECK_FALSE(e.exists(e.k.index()));
        CHECK(e.stream(e.k.stream()).empty());
        CHECK(show(e.hash(e.k.task(id))) == show(Fields{{"state", "canceled"},
                                                        {"created", std::to_string(kNow)},
                                                        {"updated", std::to_string(now)},
                                                        {"finished", std::to_string(now)}}));
        auto ttl = e.pttl(e.k.task(id));
        CHECK(ttl > 0);
        CHECK(ttl <= 5000);
        CHECK(e.ok(calls::get(e.k, id, now))[1].str() == "canceled");
    }
    {
        CAPTURE("indexed, running: asked to stop; the record takes over from the index");
        auto eid = seed_indexed(true);
        CHECK(e.ok(calls::cancel(e.k, id, now)) == A({S("active"), S("")}));
        CHECK_FALSE(e.exists(e.k.index()));
        CHECK(show(e.hash(e.k.task(id))) == show(Fields{{"state", "ready"},
                                                        {"entry", eid},
                                                        {"created", std::to_string(kNow)},
                                                        {"notify", "client-1"},
                                                        {"retention", "5000"},
                                                        {"cancel", std::to_string(now)}}));
        CHECK(e.pttl(e.k.task(id)) == -1);
        CHECK(e.stream(e.k.cancels()).size() == 1);
        CHECK(e.stream(e.k.stream()).size() == 1);
    }
}

void check_get(Env& e) {
    const std::string id = "t1";
    struct Row {
        const char* what;
        std::function<void(Env&)> seed;
        bool active;
    };
    auto seed_record = [&](Env& env, bool group, bool deliver, std::string_view state) {
        if (group) env.create_group();
        auto eid = env.xadd(env.k.stream(), task_fields(id, true));
        if (deliver) REQUIRE(env.deliver("w1") == Flat{eid});
        env.hset(env.k.task(id), with(ready_record(eid), {{"state", std::string(state)}}));
    };
    const Row rows[] = {
        {"ready, not delivered", [&](Env& env) { seed_record(env, true, false, "ready"); }, false},
        {"ready, delivered: active", [&](Env& env) { seed_record(env, true, true, "ready"); },
         true},
        {"ready, no server group yet", [&](Env& env) { seed_record(env, false, false, "ready"); },
         false},
        // finish() records the state before its batch's XACK: the entry is
        // still pending for a moment, and the task is not active any more.
        {"completed, its entry still pending",
         [&](Env& env) { seed_record(env, true, true, "completed"); }, false},
        {"delayed", [&](Env& env) { env.hset(env.k.task(id), delayed_record(id, kNow + 1000)); },
         false},
    };
    CHECK(e.ok(calls::get(e.k, "unknown", kNow)) == Reply::nil());
    for (const auto& row : rows) {
        CAPTURE(row.what);
        e.flush();
        row.seed(e);
        // The record as HGETALL gives it, with 'active' '1' appended.
        auto want = e.cmd({"HGETALL", e.k.task(id)});
        if (row.active) {
            want.mutable_elements().push_back(S("active"));
            want.mutable_elements().push_back(S("1"));
        }
        CHECK(e.ok(calls::get(e.k, id, kNow)) == want);
        CHECK_FALSE(e.hash(e.k.task(id)).contains("active"));  // derived, never stored
    }

    // A task on the hot path: found through the index, "active" derived the same way.
    for (bool deliver : {false, true}) {
        CAPTURE(deliver);
        e.flush();
        e.create_group();
        auto eid = e.xadd(e.k.stream(), {"id", id, "x_enqueued_ts", "123", "x_state", "1"});
        if (deliver) REQUIRE(e.deliver("w1") == Flat{eid});
        e.cmd({"HSET", e.k.index(), id, eid});
        Flat want{"state", "ready", "entry", eid, "created", "123"};
        if (deliver) want.insert(want.end(), {"active", "1"});
        CHECK(e.ok(calls::get(e.k, id, kNow)) == A(want));
    }
}

void check_promote(Env& e) {
    // a (tracked) 100, b (untracked) 200, c (tracked) 300, d (tracked) 5000.
    struct Task {
        std::string id;
        std::int64_t due;
        bool tracked;
    };
    const Task tasks[] = {{"a", kNow + 100, true},
                          {"b", kNow + 200, false},
                          {"c", kNow + 300, true},
                          {"d", kNow + 5000, true}};
    struct Row {
        const char* what;
        bool seed;
        std::int64_t now;
        std::int64_t limit;
        Flat moved, left;
        long long next;  // the reply's next due score
    };
    const Row rows[] = {
        {"the due ones, oldest first", true, kNow + 300, 100, {"a", "b", "c"}, {"d"}, kNow + 5000},
        {"at most `limit` of them", true, kNow + 300, 1, {"a"}, {"b", "c", "d"}, kNow + 200},
        {"none due", true, kNow + 99, 100, {}, {"a", "b", "c", "d"}, kNow + 100},
        {"an empty set", false, kNow, 100, {}, {}, -1},
    };
    for (const auto& row : rows) {
        CAPTURE(row.what);
        e.flush();
        std::map<std::string, const Task*> by_id;
        for (const auto& t : tasks) {
            by_id[t.id] = &t;
            if (!row.seed) continue;
            e.cmd({"ZADD", e.k.delayed(), std::to_string(t.due), member(t.id, t.tracked)});
            if (t.tracked) e.hset(e.k.task(t.id), delayed_record(t.id, t.due));
        }
        auto moved = static_cast<long long>(row.moved.size());
        CHECK(e.ok(calls::promote(e.k, row.now, row.limit)) ==
              A({I(moved), I(row.next), I(0), A(Flat{})}));

        auto [ids, entries] = e.xrange(e.k.stream());
        REQUIRE(ids.size() == row.moved.size());
        for (std::size_t i = 0; i < ids.size(); ++i) {
            const Task& t = *by_id[row.moved[i]];
            CAPTURE(t.id);
            CHECK(show(entries[i]) == show(task_fields(t.id, t.tracked)));
            auto want =
                t.tracked ? with(delayed_record(t.id, t.due), {{"state", "ready"},
                                                               {"entry", ids[i]},
                                                               {"updated", std::to_string(row.now)},
                                                               {"member", ""},
                                                               {"run_at", ""}})
                          : Fields{};  // an untracked task gets no record
            CHECK(show(e.hash(e.k.task(t.id))) == show(want));
        }
        Zset want_left;
        for (const auto& id : row.left) {
            const Task& t = *by_id[id];
            want_left.emplace_back(member(t.id, t.tracked), t.due);
            if (t.tracked) CHECK(show(e.hash(e.k.task(id))) == show(delayed_record(id, t.due)));
        }
        CHECK(show(e.zset(e.k.delayed())) == show(want_left));
    }
}

void check_move(Env& e) {
    const std::string id = "t1";
    const auto now = kNow + 50;
    const std::string due = std::to_string(kNow + 1500);
    const auto m = member(id);
    const Flat payload = {"id", id, "data", "payload-t1", "retries", "1"};
    const std::vector<std::string_view> fields(payload.begin(), payload.end());
    const std::vector<std::string_view> retry = {due, m};
    enum class Dest { stream, dead, delayed };
    // What the keys hold afterwards.
    struct After {
        Zset delayed;
        std::vector<Flat> dead, stream;
        Flat nudges;
    };
    struct Row {
        const char* what;
        Dest dest;
        std::string_view state;  // '' = no record
        std::int64_t retention;
        std::function<void(Env&, const std::string& entry)> seed;
        long long want;  // 1, 0 (no longer pending), -1 (an error reply)
        Fields record;   // the record's changes (see with())
        After after;
    };
    auto none = [](Env&, const std::string&) {};
    auto earlier = [](Env& env, const std::string&) {
        env.cmd({"ZADD", env.k.delayed(), std::to_string(kNow + 10), "earlier"});
    };
    auto acked = [](Env& env, const std::string& entry) {
        env.cmd({"XACK", env.k.stream(), std::string(kGroup), entry});
    };
    auto refuse = [](const std::string& key) {
        return [key](Env& env, const std::string&) { env.cmd({"SET", key, "not a stream"}); };
    };
    const Fields as_retry = {{"state", "failed"}, {"member", m}, {"run_at", due}, {"entry", ""}};
    const Fields as_ready = {{"state", "ready"}};  // and the new entry's id
    const Fields as_dead = {{"state", "dead"}, {"finished", std::to_string(now)}, {"entry", ""}};
    const After retried{{{m, kNow + 1500}}, {}, {}, {due}};
    const After retried_later{{{"earlier", kNow + 10}, {m, kNow + 1500}}, {}, {}, {}};
    const After requeued{{}, {}, {payload}, {}};
    const After dead_letter{{}, {payload}, {}, {}};
    const After nothing{};
    const std::string dead = e.k.dead(), delayed = e.k.delayed();
    const Row rows[] = {
        {"a retry, the earliest", Dest::delayed, "failed", 5000, none, 1, as_retry, retried},
        {"a retry behind an earlier one", Dest::delayed, "failed", 5000, earlier, 1, as_retry,
         retried_later},
        {"back to the stream", Dest::stream, "ready", 5000, none, 1, as_ready, requeued},
        {"a dead letter", Dest::dead, "dead", 5000, none, 1, as_dead, dead_letter},
        {"a dead letter, retention 0: no record", Dest::dead, "dead", 0, none, 1, {}, dead_letter},
        {"no record", Dest::dead, "", 5000, none, 1, {}, dead_letter},
        {"a resend, no longer pending: nothing", Dest::dead, "dead", 5000, acked, 0, {}, nothing},
        // The destination holds another type: WRONGTYPE.
        {"XADD refused", Dest::dead, "dead", 5000, refuse(dead), -1, {}, nothing},
        {"ZADD refused", Dest::delayed, "failed", 5000, refuse(delayed), -1, {}, nothing},
    };
    for (const auto& row : rows) {
        CAPTURE(row.what);
        e.flush();
        e.create_group();
        const auto entry = e.xadd(e.k.stream(), task_fields(id, true));
        REQUIRE(e.deliver("w1") == Flat{entry});
        const auto before = ready_record(entry);
        e.hset(e.k.task(id), before);
        row.seed(e, entry);

        calls::Move mv{
            .dest = row.dest == Dest::stream ? e.k.stream()
                    : row.dest == Dest::dead ? e.k.dead()
                                             : e.k.delayed(),
            .to = row.dest == Dest::delayed ? calls::Move::To::delayed : calls::Move::To::stream,
            .entry_id = entry,
            .payload = row.dest == Dest::delayed ? std::span(retry) : std::span(fields),
            .task_id = row.state.empty() ? std::string_view() : std::string_view(id),
            .state = row.state,
            .now_ms = now,
            .error = "boom",
            .retries = 1,
            .retention_ms = row.retention};
        auto res = e.run(calls::move(e.k, mv));
        if (row.want < 0) {
            REQUIRE_FALSE(res.ok());
            CHECK(res.error().message().find("WRONGTYPE") != std::string::npos);
            // Not acked, not deleted: a later retry of the move can still act.
            CHECK(show(e.pel()) == show(Fields{{entry, "w1"}}));
            CHECK(e.xrange(e.k.stream()).first == Flat{entry});
            CHECK(show(e.hash(e.k.task(id))) == show(before));
            continue;
        }
        REQUIRE_MESSAGE(res.ok(), res.error().message());
        CHECK(*res == I(row.want));

        auto [ids, entries] = e.xrange(e.k.stream());
        if (row.want == 1) {
            // Written first, then acked and deleted.
            CHECK(e.pel().empty());
            CHECK(std::find(ids.begin(), ids.end(), entry) == ids.end());
            CHECK(show(entries) == show(row.after.stream));
        }
        CHECK(show(e.zset(e.k.delayed())) == show(row.after.delayed));
        CHECK(show(e.stream(e.k.dead())) == show(row.after.dead));
        CHECK(show(e.nudges()) == show(row.after.nudges));

        Fields want = before;
        if (row.want == 1 && !row.state.empty()) {
            want = with(before,
                        {{"updated", std::to_string(now)}, {"error", "boom"}, {"retries", "1"}});
            want = with(want, row.record);
            if (row.state == "ready") want["entry"] = ids.at(0);  // the new entry
            if (row.state == "dead" && row.retention == 0) want.clear();
        }
        CHECK(show(e.hash(e.k.task(id))) == show(want));
        auto ttl = e.pttl(e.k.task(id));
        if (want.empty()) {
            CHECK(ttl == -2);
        } else if (row.want == 1 && row.state == "dead") {
            CHECK(ttl > 0);
            CHECK(ttl <= row.retention);
        } else {
            CHECK(ttl == -1);
        }
        CHECK_FALSE(e.exists(e.k.task_prefix()));  // KEYS[4] without a record: never written
    }

    // A task on the hot path (no record, in the index) leaves the index for a record, which
    // takes what its entry says of it.
    e.flush();
    e.create_group();
    const auto entry = e.xadd(e.k.stream(), {"id", id, "data", "x", "client_id", "client-1",
                                             "send_notif", "1", "x_enqueued_ts",
                                             std::to_string(kNow), "x_retention", "5000",
                                             "x_state", "1"});
    REQUIRE(e.deliver("w1") == Flat{entry});
    e.cmd({"HSET", e.k.index(), id, entry, "other", "1-1"});
    calls::Move mv{.dest = e.k.delayed(),
                   .to = calls::Move::To::delayed,
                   .entry_id = entry,
                   .payload = std::span(retry),
                   .task_id = id,
                   .state = "failed",
                   .now_ms = now,
                   .error = "boom",
                   .retries = 1,
                   .retention_ms = 5000};
    CHECK(e.ok(calls::move(e.k, mv)) == I(1));
    CHECK(show(e.hash(e.k.index())) == show(Fields{{"other", "1-1"}}));
    CHECK(show(e.hash(e.k.task(id))) == show(Fields{{"state", "failed"},
                                                    {"created", std::to_string(kNow)},
                                                    {"notify", "client-1"},
                                                    {"retention", "5000"},
                                                    {"updated", std::to_string(now)},
                                                    {"error", "boom"},
                                                    {"retries", "1"},
                                                    {"member", m},
                                                    {"run_at", due}}));
    CHECK(e.pttl(e.k.task(id)) == -1);
}

// Members that are not a task are dead-lettered with their bytes; a task whose record carries a
// cancel is finalised canceled (its id and client returned); the rest are promoted as usual.
void check_promote_bad_and_canceled(Env& e) {
    const std::string not_msgpack("\xc1 not msgpack", 13);
    const std::string odd = encode_msgpack(Flat{"id", "x", "data"});
    const std::string trailing = encode_msgpack(Flat{"id", "y"}) + "zz";
    const std::string not_strings("\x92\x01\x02", 3);
    Flat wide;
    for (int i = 0; i < 1001; ++i) wide.insert(wide.end(), {"f" + std::to_string(i), "v"});
    const std::string too_wide = encode_msgpack(wide);
    const std::string bad[] = {not_msgpack, odd, trailing, not_strings, too_wide};
    for (const auto& b : bad) e.cmd({"ZADD", e.k.delayed(), std::to_string(kNow + 1), b});
    e.cmd({"ZADD", e.k.delayed(), std::to_string(kNow + 2), member("good")});
    e.hset(e.k.task("good"), delayed_record("good", kNow + 2));
    e.cmd({"ZADD", e.k.delayed(), std::to_string(kNow + 3), member("gone")});
    e.hset(e.k.task("gone"),
           with(delayed_record("gone", kNow + 3), {{"cancel", std::to_string(kNow)}}));
    e.cmd({"ZADD", e.k.delayed(), std::to_string(kNow + 9000), member("later")});

    CHECK(e.ok(calls::promote(e.k, kNow + 100, 100)) ==
          A({I(7), I(kNow + 9000), I(5), A(Flat{"gone", "client-1"})}));
    auto [ids, entries] = e.xrange(e.k.stream());
    REQUIRE(ids.size() == 1);
    CHECK(show(entries[0]) == show(task_fields("good", true)));
    auto dead = e.stream(e.k.dead());
    REQUIRE(dead.size() == 5);
    std::map<std::string, std::string> errors;  // raw bytes → x_error
    for (const auto& d : dead) {
        REQUIRE(d.size() == 4);
        CHECK(d[0] == "x_raw");
        CHECK(d[2] == "x_error");
        errors[d[1]] = d[3];
    }
    for (const auto& b : bad) {
        CAPTURE(escaped(b));
        REQUIRE(errors.count(b));
        CHECK(errors[b].starts_with("malformed delayed member: "));
    }
    CHECK(errors[too_wide].find("2002 values") != std::string::npos);
    CHECK(e.hash(e.k.task("gone"))["state"] == "canceled");
    CHECK(e.hash(e.k.task("gone"))["finished"] == std::to_string(kNow + 100));
    CHECK(e.pttl(e.k.task("gone")) > 0);
    CHECK(show(e.zset(e.k.delayed())) == show(Zset{{member("later"), kNow + 9000}}));
    // Both ended here, and are counted so.
    CHECK(e.cmd({"HMGET", e.k.finished(), "dead", "canceled"}) == A({S("5"), S("1")}));
}

// A task canceled while it ran: its retry or return ends canceled (reply 2) and its entry is
// acked; a dead letter is written as usual.
void check_move_canceled(Env& e) {
    const std::string id = "t1";
    const auto now = kNow + 50;
    const Flat payload = {"id", id, "data", "payload-t1", "retries", "1"};
    const std::vector<std::string_view> fields(payload.begin(), payload.end());
    const std::string due = std::to_string(kNow + 1500);
    const auto m = member(id);
    const std::vector<std::string_view> retry = {due, m};
    struct Row {
        const char* what;
        bool delayed;
        std::string_view state;
        long long want;
    };
    const Row rows[] = {{"a delayed retry", true, "failed", 2},
                        {"a retry or return to the stream", false, "ready", 2},
                        {"a dead letter", false, "dead", 1}};
    for (const auto& row : rows) {
        CAPTURE(row.what);
        e.flush();
        e.create_group();
        const auto entry = e.xadd(e.k.stream(), task_fields(id, true));
        REQUIRE(e.deliver("w1") == Flat{entry});
        e.hset(e.k.task(id), with(ready_record(entry), {{"cancel", std::to_string(kNow)}}));
        calls::Move mv{.dest = row.delayed           ? e.k.delayed()
                               : row.state == "dead" ? e.k.dead()
                                                     : e.k.stream(),
                       .to = row.delayed ? calls::Move::To::delayed : calls::Move::To::stream,
                       .entry_id = entry,
                       .payload = row.delayed ? std::span(retry) : std::span(fields),
                       .task_id = id,
                       .state = row.state,
                       .now_ms = now,
                       .error = "boom",
                       .retries = 1,
                       .retention_ms = 5000};
        CHECK(e.ok(calls::move(e.k, mv)) == I(row.want));
        // The same call resent after its reply was lost: a cancel is answered again (its client
        // must still hear of it), anything else is not written twice.
        CHECK(e.ok(calls::move(e.k, mv)) == I(row.want == 2 ? 2 : 0));
        CHECK(e.pel().empty());
        auto rec = e.hash(e.k.task(id));
        CHECK(rec["state"] == (row.want == 2 ? "canceled" : "dead"));
        CHECK(e.zset(e.k.delayed()).empty());
        CHECK(e.stream(e.k.stream()).empty());
        CHECK(e.stream(e.k.dead()).size() == (row.want == 2 ? 0u : 1u));
        CHECK(e.pttl(e.k.task(id)) > 0);
    }
}

// An entry wider than a Lua call can unpack is written as a bounded prefix plus an x_error that
// counts what was dropped (the x_error it had is kept in front).
void check_move_wide(Env& e) {
    e.create_group();
    Flat wide;
    for (int i = 0; i < 10'000; ++i) wide.insert(wide.end(), {"f" + std::to_string(i), "v"});
    const auto entry = e.xadd(e.k.stream(), wide);
    REQUIRE(e.deliver("w1") == Flat{entry});
    Flat payload = wide;
    payload.insert(payload.end(), {"x_error", "malformed entry: missing field 'id'"});
    const std::vector<std::string_view> fields(payload.begin(), payload.end());
    calls::Move mv{.dest = e.k.dead(), .entry_id = entry, .payload = fields, .now_ms = kNow};
    CHECK(e.ok(calls::move(e.k, mv)) == I(1));
    CHECK(e.pel().empty());
    auto dead = e.stream(e.k.dead());
    REQUIRE(dead.size() == 1);
    const auto& d = dead[0];
    REQUIRE(d.size() == 2000);
    CHECK(d[0] == "f0");
    CHECK(d[1996] == "f998");
    CHECK(d[1998] == "x_error");
    CHECK(d[1999] ==
          "malformed entry: missing field 'id' (entry had 10000 fields; only the first 999 are "
          "kept)");
}

void check_ack(Env& e) {
    e.create_group();
    Flat ids;
    for (int i = 0; i < 5; ++i) ids.push_back(e.xadd(e.k.stream(), task_fields("t", false)));
    REQUIRE(e.deliver("w1", 5) == ids);
    auto stream_ids = [&] { return e.xrange(e.k.stream()).first; };
    // ids[2] still runs: below it everything is acked and trimmed; ids[3], acked above it, is
    // deleted on its own; the pending ones stay.
    CHECK(e.ok(calls::ack(e.k, std::vector<std::string>{ids[0], ids[1], ids[3]},
                          "completed 2 expired 1")) == I(3));
    auto counts = [&] {
        return e.cmd({"HMGET", e.k.finished(), "completed", "expired", "canceled"});
    };
    CHECK(counts() == A({S("2"), S("1"), Reply::nil()}));
    CHECK(stream_ids() == Flat{ids[2], ids[4]});
    CHECK(show(e.pel()) == show(Fields{{ids[2], "w1"}, {ids[4], "w1"}}));
    // Nothing pending: every entry up to the highest acked goes; one not yet delivered stays.
    const auto later = e.xadd(e.k.stream(), task_fields("u", false));
    // Out of memory, the acks are still taken (they free memory).
    e.cmd({"CONFIG", "SET", "maxmemory", "1"});
    CHECK(e.ok(calls::ack(e.k, std::vector<std::string>{ids[4], ids[2]}, "completed 2")) ==
          I(2));
    e.cmd({"CONFIG", "SET", "maxmemory", "0"});
    CHECK(counts() == A({S("4"), S("1"), Reply::nil()}));
    CHECK(stream_ids() == Flat{later});
    CHECK(e.pel().empty());
    // A resend (its reply lost) acks nothing more and keeps the undelivered entry.
    CHECK(e.ok(calls::ack(e.k, std::vector<std::string>{ids[4], ids[2]}, "completed 2")) ==
          I(0));
    CHECK(counts() == A({S("4"), S("1"), Reply::nil()}));  // counted once
    CHECK(stream_ids() == Flat{later});
    REQUIRE(e.deliver("w2") == Flat{later});
    // One of two still pending (the other was acked before): one counted, the kinds in order.
    CHECK(e.ok(calls::ack(e.k, std::vector<std::string>{ids[0], later},
                          "canceled 1 completed 1")) == I(1));
    CHECK(counts() == A({S("4"), S("1"), S("1")}));
    CHECK(e.cmd({"XLEN", e.k.stream()}).integer() == 0);
}

void check_keep(Env& e) {
    e.create_group();
    Flat entries;
    for (int i = 0; i < 4; ++i) entries.push_back(e.xadd(e.k.stream(), task_fields("t", false)));
    REQUIRE(e.deliver("w1", 2) == Flat{entries[0], entries[1]});
    REQUIRE(e.deliver("w2", 1) == Flat{entries[2]});
    REQUIRE(e.deliver("w1", 1) == Flat{entries[3]});
    e.cmd({"XACK", e.k.stream(), std::string(kGroup), entries[3]});  // done meanwhile
    std::this_thread::sleep_for(200ms);

    // Only w1's own entries are renewed: not w2's, not an acked one, not one never read.
    const Flat ask = {entries[0], entries[1], entries[2], entries[3], "1-1"};
    CHECK(e.ok(calls::keep(e.k, "w1", ask)) == A(Flat{entries[0], entries[1]}));
    auto pending = e.pending();
    REQUIRE(pending.size() == 3);
    std::map<std::string, long long> idle;
    for (const auto& p : pending) {
        std::string entry(p[0].str());
        CAPTURE(entry);
        CHECK(p[1].str() == (entry == entries[2] ? "w2" : "w1"));
        CHECK(p[3].integer() == 1);  // JUSTID: the delivery count stays
        idle[entry] = p[2].integer();
    }
    // Renewed: idle since the keep, not since the read 200 ms before it.
    CHECK(idle[entries[2]] >= 200);
    CHECK(idle[entries[0]] + 150 < idle[entries[2]]);
    CHECK(idle[entries[1]] + 150 < idle[entries[2]]);

    // A peer took entries[1] over after w1's lease lapsed: w1 must not take it back.
    e.cmd({"XCLAIM", e.k.stream(), std::string(kGroup), "w2", "0", entries[1], "JUSTID"});
    CHECK(e.ok(calls::keep(e.k, "w1", Flat{entries[0], entries[1]})) == A(Flat{entries[0]}));
    CHECK(show(e.pel()) ==
          show(Fields{{entries[0], "w1"}, {entries[1], "w2"}, {entries[2], "w2"}}));
    CHECK(e.ok(calls::keep(e.k, "w1", Flat{})) == A(Flat{}));
}

void check_finish(Env& e) {
    // Buckets expire by the wall clock (PEXPIREAT), so the states are stamped by it.
    const std::int64_t base = wall_now(), now = base + 10;
    const Fields t1 = ready_record("1-1"), t2 = ready_record("1-2"), t3 = ready_record("1-3");
    const Fields untouched = ready_record("1-4");
    e.hset(e.k.task("t1"), t1);
    e.hset(e.k.task("t2"), t2);
    e.hset(e.k.task("t3"), t3);
    e.hset(e.k.task("t4"), untouched);
    e.cmd({"HSET", e.k.index(), "t1", "1-1", "t2", "1-2", "other", "1-9"});

    FinalStates batch(e.k, "w1");
    CHECK(batch.empty());
    batch.add("t1", "completed", base - 100, 0, 5000);
    batch.add("t2", "expired", base, 2, 0);
    batch.add("t3", "canceled", base - 7, 1, kDefaultRetentionMs);
    CHECK(batch.size() == 3);
    auto block = batch.take(now);
    CHECK(batch.empty());
    // One HDEL (the index) and one DEL (the records) for all; a retention's first family opens
    // (ZADD), then the state's HSET and its bucket's first PEXPIREAT. t2 keeps nothing.
    CHECK(block.size() == 8);
    auto reply = e.block(block);
    REQUIRE(reply.is_array());
    CHECK(reply.size() == 8);

    for (const char* id : {"t1", "t2", "t3"}) CHECK_FALSE(e.exists(e.k.task(id)));
    CHECK(show(e.hash(e.k.task("t4"))) == show(untouched));
    CHECK(show(e.hash(e.k.index())) == show(Fields{{"other", "1-9"}}));
    auto got = [&](std::string_view id, std::int64_t at) { return e.ok(calls::get(e.k, id, at)); };
    auto state = [](std::string_view st, std::int64_t fin, std::int64_t created, int retries) {
        return A(Flat{"state", std::string(st), "finished", std::to_string(fin), "created",
                      std::to_string(created), "retries", std::to_string(retries)});
    };
    CHECK(got("t1", now) == state("completed", now, base - 100, 0));
    CHECK(got("t2", now) == Reply::nil());
    CHECK(got("t3", now) == state("canceled", now, base - 7, 1));
    // Past its own retention a state is gone, whatever its bucket's lifetime.
    CHECK(got("t1", now + 5000) == state("completed", now, base - 100, 0));
    CHECK(got("t1", now + 5001) == Reply::nil());
    CHECK(got("t3", now + 5001) == state("canceled", now, base - 7, 1));
    CHECK(e.ok(calls::cancel(e.k, "t3", now)) == A(Flat{"finished", "canceled"}));
    CHECK(e.ok(calls::cancel(e.k, "t2", now)) == A(Flat{"unknown"}));

    // Two families, one per retention, each expiring after its width (retention / 24, at least
    // a second) and retention: every bucket with them.
    auto families = e.cmd({"ZRANGE", e.k.done(), "0", "-1", "WITHSCORES"});
    REQUIRE(families.size() == 4);
    for (std::size_t i = 0; i < families.size(); i += 2) {
        std::string m(families[i].str());
        CAPTURE(m);
        const std::int64_t ret = m.ends_with(".5000") ? 5000 : kDefaultRetentionMs;
        const std::int64_t expires = now + std::max<std::int64_t>(1000, ret / 24) + ret + 1000;
        CHECK(std::stoll(std::string(families[i + 1].str())) == expires);
        const auto bucket = done::bucket_key(e.k.done(), m, 0);
        CHECK(e.cmd({"PEXPIRETIME", bucket}).integer() == expires);
        CHECK(e.cmd({"OBJECT", "ENCODING", bucket}).str() == "listpack");
    }

    // A resend (its reply lost) writes the same again.
    CHECK(e.block(block).size() == 8);
    CHECK(got("t1", now) == state("completed", now, base - 100, 0));
    CHECK(e.cmd({"ZCARD", e.k.done()}).integer() == 2);
    // The family and its bucket are set up: the next state is an HDEL, a DEL and an HSET, with
    // the family's ZADD again (once per block: after Redis restarted empty, readers find the
    // states of the next block through it).
    batch.add("t4", "completed", base, 0, 5000);
    auto next = batch.take(now + 1);
    CHECK(next.size() == 4);
    // Refused at queue time (here: out of memory), nothing of it runs.
    e.cmd({"CONFIG", "SET", "maxmemory", "1"});
    auto refused = e.run(std::move(next));
    e.cmd({"CONFIG", "SET", "maxmemory", "0"});
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().is(reply_errc::oom));
    CHECK(show(e.hash(e.k.task("t4"))) == show(untouched));
    CHECK(got("t4", now) == e.cmd({"HGETALL", e.k.task("t4")}));

    // A family filled to kFill states per bucket is followed by one with twice the buckets;
    // every state is found in its own (the servers' shard hash is the scripts').
    e.flush();
    FinalStates many(e.k, "w2");
    const std::uint32_t n = DoneBuckets::kFill * 3 + 1;  // families of 1, 2 and 4 buckets
    for (std::uint32_t i = 0; i < n; ++i) {
        many.add("task-" + std::to_string(i), "completed", base, 0, kDefaultRetentionMs);
    }
    REQUIRE(e.block(many.take(now)).is_array());
    CHECK(e.cmd({"ZCARD", e.k.done()}).integer() == 3);
    for (std::uint32_t i = 0; i < n; ++i) {
        CAPTURE(i);
        CHECK(got("task-" + std::to_string(i), now) == state("completed", now, base, 0));
    }
    CHECK(got("task-" + std::to_string(n), now) == Reply::nil());
    auto members = e.cmd({"ZRANGE", e.k.done(), "0", "-1"});
    for (std::size_t f = 0; f < members.size(); ++f) {
        const std::uint32_t shards = 1u << f;
        for (std::uint32_t b = 0; b < shards; ++b) {
            auto key = done::bucket_key(e.k.done(), members[f].str(), b);
            CAPTURE(key);
            if (f + 1 == members.size() && !e.exists(key)) continue;  // the last holds one state
            CHECK(e.cmd({"OBJECT", "ENCODING", key}).str() == "listpack");
            CHECK(e.cmd({"PTTL", key}).integer() > 0);
        }
    }
}

void check_requeue_dead(Env& e) {
    const Flat a = {"id", "a", "data", "x", "retries", "3", "x_error", "boom"};
    const Flat b = {"id", "b", "retries", "5"};
    const Flat c = {"id", "c", "data", "z"};  // no retries field
    const Flat dead = {e.xadd(e.k.dead(), a), e.xadd(e.k.dead(), b), e.xadd(e.k.dead(), c)};

    // Ids no longer there are skipped.
    CHECK(e.ok(calls::requeue_dead(e.k, Flat{dead[0], dead[2], "1-1"}, kNow)) == I(2));
    const Flat a0 = {"id", "a", "data", "x", "retries", "0", "x_error", "boom"};
    CHECK(show(e.stream(e.k.stream())) == show(std::vector<Flat>{a0, c}));
    CHECK(e.xrange(e.k.dead()).first == Flat{dead[1]});

    // Requeued ones are gone from the dead letters: a second requeue does nothing.
    CHECK(e.ok(calls::requeue_dead(e.k, Flat{dead[0]}, kNow)) == I(0));
    CHECK(e.stream(e.k.stream()).size() == 2);
    CHECK(e.ok(calls::requeue_dead(e.k, Flat{}, kNow)) == I(0));

    // A tracked task's record is "ready" again, on its new entry, kept until
    // it finishes; one whose record is gone (retention 0) gets none back.
    e.hset(e.k.task("t"), {{"state", "dead"},
                           {"retries", "4"},
                           {"error", "boom"},
                           {"finished", "5"},
                           {"created", "1"},
                           {"updated", "5"}});
    e.cmd({"PEXPIRE", e.k.task("t"), "100000"});
    const Flat tracked = {"id", "t", "retries", "4", "x_state", "1"};
    const Flat gone = {"id", "g", "retries", "1", "x_state", "1"};
    const Flat again = {e.xadd(e.k.dead(), tracked), e.xadd(e.k.dead(), gone)};
    CHECK(e.ok(calls::requeue_dead(e.k, again, kNow + 7)) == I(2));
    auto entries = e.xrange(e.k.stream());
    REQUIRE(entries.first.size() == 4);
    CHECK(e.hash(e.k.task("t")) == Fields{{"state", "ready"},
                                          {"retries", "0"},
                                          {"error", "boom"},
                                          {"created", "1"},
                                          {"updated", std::to_string(kNow + 7)},
                                          {"entry", entries.first[2]}});
    CHECK(e.pttl(e.k.task("t")) == -1);
    CHECK_FALSE(e.exists(e.k.task("g")));
}

void check_purge_dead(Env& e) {
    for (int i = 0; i < 3; ++i) e.xadd(e.k.dead(), {"id", "d" + std::to_string(i)});
    e.xadd(e.k.stream(), {"id", "live"});
    CHECK(e.ok(calls::purge_dead(e.k)) == I(3));
    CHECK_FALSE(e.exists(e.k.dead()));
    CHECK(e.stream(e.k.stream()).size() == 1);  // only the dead letters go
    CHECK(e.ok(calls::purge_dead(e.k)) == I(0));
}

struct Scenario {
    const char* name;
    void (*check)(Env&);
};
const Scenario kScenarios[] = {
    {"enqueue", check_enqueue},
    {"schedule", check_schedule},
    {"add", check_add},
    {"unique_claim", check_unique_claim},
    {"unique_release", check_unique_release},
    {"cancel", check_cancel},
    {"get", check_get},
    {"promote", check_promote},
    {"move", check_move},
    {"promote: bad members, canceled tasks", check_promote_bad_and_canceled},
    {"move: canceled tasks", check_move_canceled},
    {"move: wide entries", check_move_wide},
    {"keep", check_keep},
    {"ack", check_ack},
    {"final states", check_finish},
    {"requeue_dead", check_requeue_dead},
    {"purge_dead", check_purge_dead},
};

/// Runs one scenario on a fresh plain server.
void run_alone(void (*check)(Env&)) {
    Env e;
    check(e);
}

/// One counter of INFO commandstats ("cmdstat_evalsha", "failed_calls").
long long command_stat(Env& e, std::string_view command, std::string_view counter) {
    auto info = std::string(e.cmd({"INFO", "commandstats"}).str());
    auto line = info.find("cmdstat_" + std::string(command) + ":");
    if (line == std::string::npos) return 0;
    auto at = info.find(std::string(counter) + "=", line);
    REQUIRE(at != std::string::npos);
    return std::stoll(info.substr(at + counter.size() + 1));
}

}  // namespace

TEST_CASE("enqueue writes each task's entry and indexes it by task id") { run_alone(check_enqueue); }
TEST_CASE("schedule adds to the delayed set and nudges only for a new earliest task") {
    run_alone(check_schedule);
}
TEST_CASE("unique_claim claims a free key, else names its holder") {
    run_alone(check_unique_claim);
}
TEST_CASE("unique_release releases only for the holder") { run_alone(check_unique_release); }
TEST_CASE("cancel in every state") { run_alone(check_cancel); }
TEST_CASE("get derives 'active' from the PEL") { run_alone(check_get); }
TEST_CASE("promote moves only due members and updates tracked records") {
    run_alone(check_promote);
}
TEST_CASE("move writes first, acks after, and does nothing on a resend") { run_alone(check_move); }
TEST_CASE("promote dead-letters members that are not tasks and finalises canceled ones") {
    run_alone(check_promote_bad_and_canceled);
}
TEST_CASE("move finalises a retry of a task canceled while it ran") {
    run_alone(check_move_canceled);
}
TEST_CASE("move keeps a bounded prefix of an entry too wide for Lua") {
    run_alone(check_move_wide);
}
TEST_CASE("keep renews only the entries the consumer owns") { run_alone(check_keep); }
TEST_CASE("ack acks, trims what nobody needs, deletes acked entries above a pending one") {
    run_alone(check_ack);
}
// An entry still in the PEL but deleted from the stream (XDEL by hand;
// streamfleet itself acks before it deletes) is dropped from the PEL by
// keep's XCLAIM (Redis >= 7); keep must not list it as renewed.
TEST_CASE("keep does not report an entry gone from the stream as renewed") {
    Env e;
    e.create_group();
    auto entry = e.xadd(e.k.stream(), task_fields("t", false));
    REQUIRE(e.deliver("w1") == Flat{entry});
    e.cmd({"XDEL", e.k.stream(), entry});
    REQUIRE(show(e.pel()) == show(Fields{{entry, "w1"}}));
    auto kept = e.ok(calls::keep(e.k, "w1", Flat{entry}));
    CHECK(e.pel().empty());  // XCLAIM let go of it
    CHECK(kept == A(Flat{}));
}
TEST_CASE("final states: one transaction drops each record and keeps the state in a bucket") {
    run_alone(check_finish);
}

// XGROUP DELCONSUMER drops the consumer's pending entries with it, so a server
// found dead is forgotten only while its beat is still old by Redis's clock, it
// owns nothing and its consumer has stopped reading: one restarted under the
// same name, or one whose beat only looks old, may have read since.
TEST_CASE("forget drops a dead server only while it is dead, owns nothing and reads nothing") {
    Env e;
    CHECK(e.ok(calls::forget(e.k, "w1", 1000, 0)) == I(0));  // no group yet: nothing to drop
    e.create_group();
    auto t = e.cmd({"TIME"});
    auto now =
        std::stoll(std::string(t[0].str())) * 1000 + std::stoll(std::string(t[1].str())) / 1000;
    e.cmd({"ZADD", e.k.servers(), std::to_string(now), "w1"});
    auto entry = e.xadd(e.k.stream(), task_fields("t", false));
    REQUIRE(e.deliver("w1") == Flat{entry});
    CHECK(e.ok(calls::forget(e.k, "w1", 60'000, 0)) == I(0));  // it beat within dead_after
    e.cmd({"ZADD", e.k.servers(), std::to_string(now - 10'000), "w1"});
    CHECK(e.ok(calls::forget(e.k, "w1", 1000, 0)) == I(0));  // dead, but owns an entry
    CHECK(e.pel() == Fields{{entry, "w1"}});
    e.cmd({"XACK", e.k.stream(), std::string(kGroup), entry});
    CHECK(e.ok(calls::forget(e.k, "w1", 1000, 60'000)) == I(0));  // it read within a minute
    CHECK(e.cmd({"ZSCORE", e.k.servers(), "w1"}).is_string());
    CHECK(e.ok(calls::forget(e.k, "w1", 1000, 0)) == I(1));  // dead, owns nothing, reads nothing
    CHECK(e.cmd({"ZSCORE", e.k.servers(), "w1"}).is_nil());
    CHECK(e.cmd({"XINFO", "CONSUMERS", e.k.stream(), std::string(kGroup)}).size() == 0);
}
// Not among the slot scenarios: its key is a client's stream, outside any queue's slot.
TEST_CASE("notifications go only into an existing stream, unless told to write regardless") {
    Env e;
    const std::string rx = receiver_key(kDefaultPrefix, "c1");
    const Flat note{"enc_version", "1", "task_id", "t1", "type", "completed", "err_msg", ""};
    std::vector<std::string_view> views(note.begin(), note.end());

    // The client closed (deleted its stream): nothing written, nothing created.
    CHECK(e.block(note_block(rx, views, false)).size() == 1);
    CHECK_FALSE(e.exists(rx));
    // Open: one entry with the fields as given.
    e.cmd({"XGROUP", "CREATE", rx, "streamfleet-client", "0", "MKSTREAM"});
    auto id = e.block(note_block(rx, views, false));
    REQUIRE(id.size() == 1);
    auto [ids, entries] = e.xrange(rx);
    CHECK(ids == Flat{std::string(id[0].str())});
    CHECK(entries == std::vector<Flat>{note});
    // A turn's notes, grouped by client: one block per client, each note its
    // own entry, in order.
    const Flat second{"enc_version", "1", "task_id", "t2", "type", "error", "err_msg", "boom"};
    std::vector<std::string_view> views2(second.begin(), second.end());
    const std::string other = receiver_key(kDefaultPrefix, "c4");
    e.cmd({"XGROUP", "CREATE", other, "streamfleet-client", "0", "MKSTREAM"});
    Notes turn(false);
    turn.add(rx, views2);
    turn.add(other, views);
    turn.add(rx, views);
    auto blocks = turn.take();
    CHECK(turn.empty());
    REQUIRE(blocks.size() == 2);
    CHECK(blocks[0].size() == 2);
    for (const auto& b : blocks) e.block(b);
    CHECK(e.stream(rx) == std::vector<Flat>{note, second, note});
    CHECK(e.stream(other) == std::vector<Flat>{note});
    // Another type under the name: no client reads it, and it is left alone.
    const std::string odd = receiver_key(kDefaultPrefix, "c2");
    e.cmd({"SET", odd, "x"});
    auto refused = e.block(note_block(odd, views, false));
    REQUIRE(refused.size() == 1);
    CHECK(refused[0].is_error());
    CHECK(e.cmd({"GET", odd}).str() == "x");
    // Regardless (a Go client creates its stream on first read): written and created.
    const std::string go = receiver_key(kDefaultPrefix, "c3");
    CHECK(e.block(note_block(go, views, true))[0].is_string());
    CHECK(e.stream(go) == std::vector<Flat>{note});
}

TEST_CASE("requeue_dead resets retries and skips ids that are gone") {
    run_alone(check_requeue_dead);
}
TEST_CASE("purge_dead deletes the dead letters and counts them") { run_alone(check_purge_dead); }

TEST_CASE("after SCRIPT FLUSH, run_script falls back to EVAL once, then EVALSHA works") {
    Env e;
    e.cmd({"SCRIPT", "FLUSH"});
    e.cmd({"CONFIG", "RESETSTAT"});
    const std::string sha(scripts::purge_dead.sha1);
    CHECK(e.cmd({"SCRIPT", "EXISTS", sha}) == A({I(0)}));

    CHECK(e.ok(calls::purge_dead(e.k)) == I(0));
    CHECK(command_stat(e, "evalsha", "failed_calls") == 1);  // NOSCRIPT
    CHECK(command_stat(e, "eval", "calls") == 1);            // the fallback, which caches it
    CHECK(e.cmd({"SCRIPT", "EXISTS", sha}) == A({I(1)}));

    e.xadd(e.k.dead(), {"id", "d"});
    CHECK(e.ok(calls::purge_dead(e.k)) == I(1));
    CHECK(command_stat(e, "evalsha", "calls") == 2);
    CHECK(command_stat(e, "evalsha", "failed_calls") == 1);
    CHECK(command_stat(e, "eval", "calls") == 1);  // no second EVAL
}

TEST_CASE("every embedded script's sha1 is what SCRIPT LOAD answers for its body") {
    Env e;
    for (const Script* s : kAllScripts) {
        CAPTURE(s->name);
        auto body = s->body;  // after a shebang line (flags), if any
        if (body.starts_with("#!")) body.remove_prefix(body.find('\n') + 1);
        CHECK(body.starts_with("-- " + std::string(s->name) + ":"));  // its contract
        CHECK(e.cmd({"SCRIPT", "LOAD", std::string(s->body)}).str() == s->sha1);
    }
}

TEST_CASE("on a cluster node, no script touches a key outside its queue's slot") {
    Env e(true, "elsewhere");
    const QueueKeys default_queue(kDefaultPrefix, "default");
    REQUIRE(r::key_slot(e.k.stream()) != r::key_slot(default_queue.stream()));
    CHECK(e.cmd({"CLUSTER", "KEYSLOT", e.k.stream()}).integer() == r::key_slot(e.k.stream()));

    // The trap works: a script reaching a key of another slot, named in its
    // KEYS or not, fails.
    auto stray =
        e.conn.cmd({"EVAL", "redis.call('EXISTS', KEYS[1]) return redis.call('EXISTS', ARGV[1])",
                    "1", e.k.stream(), default_queue.stream()});
    REQUIRE_FALSE(stray.ok());
    CHECK(stray.error().message().find("non local key") != std::string::npos);
    auto cross = e.conn.cmd({"EVAL", "return 1", "2", e.k.stream(), default_queue.stream()});
    REQUIRE_FALSE(cross.ok());
    CHECK(cross.error().is(reply_errc::crossslot));

    // Every path of every script, as above, on this node.
    for (const auto& s : kScenarios) {
        CAPTURE(s.name);
        e.flush();
        s.check(e);
    }
}
