// Each server component alone against a real redis-server: seed the keys, run one tick, compare
// with what should be there (asynq's recoverer_test). Time is a ManualClock, jitter a FixedRandom.

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "core/random.hpp"
#include "core/wire.hpp"
#include "redis/streams.hpp"
#include "server/heartbeat.hpp"
#include "server/janitor.hpp"
#include "server/lease_keeper.hpp"
#include "server/outcome_writer.hpp"
#include "server/promoter.hpp"
#include "server/reader.hpp"
#include "server/reclaimer.hpp"
#include "streamfleet/streamfleet.hpp"
#include "support/redis_server.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using namespace streamfleet::detail;
using streamfleet::test::entry_fields;
using streamfleet::test::eventually;
using streamfleet::test::RedisServer;
using streamfleet::test::RedisServerOptions;
using streamfleet::test::TestConn;
namespace r = streamfleet::detail::redis;

namespace {

const std::string kGroup(kServerGroup);

// A loop, a topology and a ServerContext with a ManualClock and a FixedRandom, against one Redis.
// Components built with make<T>() are stopped by the runtime's stop hook and destroyed after the
// loop has ended, as Server does with its own.
class Rig {
public:
    explicit Rig(const RedisServer& rs, ServerOptions o = {},
                 std::vector<std::string> names = {"q"})
        : opts_(std::move(o)) {
        opts_.redis = rs.url();
        if (opts_.id.empty()) opts_.id = "me";
        for (const auto& n : names) {
            queues_.push_back(QueueContext{QueueKeys(opts_.prefix, n),
                                           [](TaskContext&) { return Outcome::success(); },
                                           queues_.size()});
        }
        rt_.call([this] {
            r::ConnectionOptions co{.client_name = "rig"};
            topo_ = r::make_topology(rt_, r::parse_url(opts_.redis).value(), co).value();
            rt_.add_stop_hook([this] {
                for (auto& stop : stops_) stop();
                topo_->close();
            });
            topo_->start();
        });
        ctx_ = std::make_unique<ServerContext>(
            ServerContext{opts_, rt_, *topo_, clock, random, counters, opts_.id});
    }
    ~Rig() { rt_.stop(); }

    Queues queues() { return queues_; }
    QueueContext& queue(std::size_t i = 0) { return queues_[i]; }
    Runtime& rt() { return rt_; }

    /// Builds a T(ctx, args...) on the loop.
    template <class T, class... A>
    T& make(A&&... args) {
        return rt_.call([&]() -> T& {
            auto part = std::make_shared<T>(*ctx_, std::forward<A>(args)...);
            stops_.push_back([p = part.get()] {
                if constexpr (requires { p->close(); }) {
                    p->close();
                } else {
                    p->stop();
                }
            });
            parts_.push_back(part);
            return *part;
        });
    }

    /// Runs `step(done)` on the loop and waits until it calls done.
    template <class F>
    void run(F step) {
        auto finished = std::make_shared<std::promise<void>>();
        auto fut = finished->get_future();
        rt_.post([step, finished] { step([finished] { finished->set_value(); }); });
        REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    }

    ManualClock clock;
    FixedRandom random{0};
    ServerCounters counters;

private:
    ServerOptions opts_;
    std::vector<QueueContext> queues_;
    Runtime rt_{"sf-rig"};
    std::unique_ptr<r::Topology> topo_;
    std::unique_ptr<ServerContext> ctx_;
    std::vector<std::function<void()>> stops_;  // loop thread
    std::vector<std::shared_ptr<void>> parts_;  // destroyed after the loop ended
};

// Records what a reader or reclaimer hands over, keeping every slot it is given.
struct Taken : TaskSink {
    // "queue entry-id" -> deliveries (two streams may hold the same id); loop thread
    std::map<std::string, std::uint64_t> entries;
    int accepted = 0;
    bool accept(QueueContext& q, const std::shared_ptr<const r::Reply>&, const r::StreamEntry& e,
                std::uint64_t deliveries) override {
        entries[q.keys.queue() + " " + std::string(e.id)] = deliveries;
        ++accepted;
        return true;
    }
    void dispatch() override {}
};

struct Pending {
    std::string owner;
    long long idle_ms;
};

std::map<std::string, Pending> pending_of(TestConn& c, const std::string& stream) {
    std::map<std::string, Pending> out;
    auto rep = c.cmd({"XPENDING", stream, kGroup, "-", "+", "100"}).value();
    for (std::size_t i = 0; i < rep.size(); ++i) {
        out[std::string(rep[i][0].str())] = {std::string(rep[i][1].str()), rep[i][2].integer()};
    }
    return out;
}

// Adds `n` entries and has `consumer` read them, so they are pending for it; returns their ids.
std::vector<std::string> deliver(TestConn& c, const std::string& stream,
                                 const std::string& consumer, int n) {
    (void)c.cmd(
        {"XGROUP", "CREATE", stream, kGroup, "$", "MKSTREAM"});  // BUSYGROUP after the first
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
        ids.emplace_back(c.cmd({"XADD", stream, "*", "f", "v"}).value().str());
    }
    auto count = std::to_string(n);
    REQUIRE(c.cmd({"XREADGROUP", "GROUP", kGroup, consumer, "COUNT", count, "STREAMS", stream, ">"})
                .ok());
    return ids;
}

long long integer(TestConn& c, std::vector<std::string> argv) {
    return c.cmd(std::move(argv)).value().integer();
}

// Redis's clock, which every beat and liveness check reads.
std::int64_t redis_now_ms(TestConn& c) {
    auto t = c.cmd({"TIME"}).value();
    return std::stoll(std::string(t[0].str())) * 1000 + std::stoll(std::string(t[1].str())) / 1000;
}

// Makes entries look untouched for `ms` (their owner stays).
void age(TestConn& c, const std::string& stream, const std::string& owner,
         const std::vector<std::string>& ids, long long ms) {
    for (const auto& id : ids) {
        REQUIRE(c.cmd({"XCLAIM", stream, kGroup, owner, "0", id, "IDLE", std::to_string(ms),
                       "JUSTID"})
                    .ok());
    }
}

// A one-node Redis Cluster holding every slot (the harness assigns them and
// gives the bus a free port): each queue is a shard of its own.
RedisServerOptions cluster_node() { return {.cluster = true}; }

long long connections_named(TestConn& c, std::string_view name) {
    auto list = std::string(c.cmd({"CLIENT", "LIST"}).value().str());
    long long n = 0;
    for (auto at = list.find(name); at != std::string::npos; at = list.find(name, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("promoter: one tick moves the tasks the clock says are due, and only those") {
    RedisServer rs;
    TestConn c(rs.url());
    Rig rig(rs);
    auto now = rig.clock.now_ms();
    auto member = [](std::string id) {
        return encode_msgpack(std::vector<std::string>{"id", std::move(id), "data", "x"});
    };
    REQUIRE(c.cmd({"ZADD", "streamfleet:{q}:delayed", std::to_string(now - 1000), member("due"),
                   std::to_string(now + 60'000), member("later")})
                .ok());
    auto& promoter = rig.make<Promoter>(rig.queues());

    rig.run([&](Done done) { promoter.tick(done); });
    auto entries = c.cmd({"XRANGE", "streamfleet:{q}", "-", "+"}).value();
    REQUIRE(entries.size() == 1);
    CHECK(entry_fields(entries[0])["id"] == "due");
    CHECK(integer(c, {"ZCARD", "streamfleet:{q}:delayed"}) == 1);

    rig.clock.advance(60'001);
    rig.run([&](Done done) { promoter.tick(done); });
    CHECK(integer(c, {"XLEN", "streamfleet:{q}"}) == 2);
    CHECK(integer(c, {"ZCARD", "streamfleet:{q}:delayed"}) == 0);
}

TEST_CASE("heartbeat: beats carry Redis's clock, not the host's, and hold the server's id") {
    RedisServer rs;
    TestConn c(rs.url());
    Rig rig(rs, {}, {"a", "b"});
    rig.clock.advance(-3'600'000);  // an hour behind: nothing may read it
    auto& heartbeat = rig.make<Heartbeat>(rig.queues());
    auto before = redis_now_ms(c);
    Heartbeat::Beat beat;
    rig.run([&](Done done) {
        heartbeat.tick([&beat, done](const Heartbeat::Beat& b) {
            beat = b;
            done();
        });
    });
    auto after = redis_now_ms(c);
    CHECK_FALSE(beat.held);
    CHECK_FALSE(beat.failed);
    for (const auto* key : {"streamfleet:{a}:servers", "streamfleet:{b}:servers"}) {
        auto score = std::stoll(std::string(c.cmd({"ZSCORE", key, "me"}).value().str()));
        CHECK(score >= before);
        CHECK(score <= after);
    }

    // A second life with the same id finds it held; the first keeps it.
    Rig twin(rs, {}, {"a", "b"});
    auto& other = twin.make<Heartbeat>(twin.queues());
    twin.run([&](Done done) {
        other.tick([&beat, done](const Heartbeat::Beat& b) {
            beat = b;
            done();
        });
    });
    CHECK(beat.held);
    CHECK(beat.held_for_ms > 0);
    rig.run([&](Done done) {
        heartbeat.tick([&beat, done](const Heartbeat::Beat& b) {
            beat = b;
            done();
        });
    });
    CHECK_FALSE(beat.held);

    // Leaving with an entry pending in {a}: departed there (score 0), gone from {b}.
    deliver(c, "streamfleet:{a}", "me", 1);
    rig.run([&](Done done) { heartbeat.remove(done); });
    CHECK(c.cmd({"ZSCORE", "streamfleet:{a}:servers", "me"}).value().str() == "0");
    CHECK(c.cmd({"ZSCORE", "streamfleet:{b}:servers", "me"}).value().is_nil());
    // The hold is released: the twin may beat now.
    twin.run([&](Done done) {
        other.tick([&beat, done](const Heartbeat::Beat& b) {
            beat = b;
            done();
        });
    });
    CHECK_FALSE(beat.held);
}

TEST_CASE("janitor: one tick removes clients silent past orphan_timeout and trims dead letters") {
    // Small stream nodes, so the approximate trim (whole nodes) comes close to its bound.
    RedisServer rs({.extra_config = {"stream-node-max-entries 10"}});
    TestConn c(rs.url());
    Rig rig(rs, {.orphan_timeout = 60s, .dead_max = 10, .dead_max_age = 0ms});
    auto now = rig.clock.now_ms();
    const std::string ghost = "ghost", live = "live";
    const auto ghost_key = receiver_key("streamfleet:", ghost);
    const auto live_key = receiver_key("streamfleet:", live);
    REQUIRE(c.cmd({"ZADD", "streamfleet:{q}:clients", std::to_string(now - 60'001), ghost,
                   std::to_string(now - 1000), live})
                .ok());
    REQUIRE(c.cmd({"XADD", ghost_key, "*", "f", "v"}).ok());
    REQUIRE(c.cmd({"XADD", live_key, "*", "f", "v"}).ok());
    for (int i = 0; i < 200; ++i)
        REQUIRE(c.cmd({"XADD", "streamfleet:{q}:dead", "*", "f", "v"}).ok());
    auto& janitor = rig.make<Janitor>(rig.queues());

    rig.run([&](Done done) { janitor.tick(done); });
    CHECK(integer(c, {"EXISTS", ghost_key}) == 0);
    CHECK(c.cmd({"ZSCORE", "streamfleet:{q}:clients", ghost}).value().is_nil());
    CHECK(integer(c, {"EXISTS", live_key}) == 1);
    CHECK_FALSE(c.cmd({"ZSCORE", "streamfleet:{q}:clients", live}).value().is_nil());
    auto left = integer(c, {"XLEN", "streamfleet:{q}:dead"});
    CHECK(left >= 10);
    CHECK(left < 20);  // within one node of dead_max
}

TEST_CASE("janitor: dead letters older than dead_max_age by the clock go") {
    RedisServer rs({.extra_config = {"stream-node-max-entries 10"}});
    TestConn c(rs.url());
    Rig rig(rs, {.dead_max = 0, .dead_max_age = 1h});
    auto now = rig.clock.now_ms();
    auto old_ms = std::to_string(now - 2 * 3'600'000);
    for (int i = 0; i < 50; ++i) {
        auto id = old_ms + "-" + std::to_string(i);
        REQUIRE(c.cmd({"XADD", "streamfleet:{q}:dead", id, "f", "v"}).ok());
    }
    for (int i = 0; i < 50; ++i) {
        auto id = std::to_string(now) + "-" + std::to_string(i);
        REQUIRE(c.cmd({"XADD", "streamfleet:{q}:dead", id, "f", "v"}).ok());
    }
    auto& janitor = rig.make<Janitor>(rig.queues());
    rig.run([&](Done done) { janitor.tick(done); });
    auto left = integer(c, {"XLEN", "streamfleet:{q}:dead"});
    CHECK(left >= 50);
    CHECK(left < 60);
    auto recent = c.cmd({"XRANGE", "streamfleet:{q}:dead", std::to_string(now), "+"}).value();
    CHECK(recent.size() == 50);
}

TEST_CASE("janitor: an expired family of finished-state buckets loses its buckets, TTL or not") {
    RedisServer rs;
    TestConn c(rs.url());
    Rig rig(rs, {});
    auto now = rig.clock.now_ms();
    const std::string done = "streamfleet:{q}:done";
    // Two families past their expiry, one of them with buckets Redis lost and a late write
    // re-created without a TTL; one still live; one member that names no family.
    REQUIRE(c.cmd({"ZADD", done, std::to_string(now - 10), "w1.0.2.1000", std::to_string(now - 5),
                   "w2.3.1.60000", std::to_string(now + 60'000), "w1.1.1.1000",
                   std::to_string(now - 1), "junk"})
                .ok());
    for (const char* b : {"w1.0.2.1000:0", "w1.0.2.1000:1", "w2.3.1.60000:0", "w1.1.1.1000:0"})
        REQUIRE(c.cmd({"HSET", done + ":" + b, "t", "c1,1"}).ok());
    auto& janitor = rig.make<Janitor>(rig.queues());

    rig.run([&](Done d) { janitor.tick(d); });
    for (const char* b : {"w1.0.2.1000:0", "w1.0.2.1000:1", "w2.3.1.60000:0"})
        CHECK(integer(c, {"EXISTS", done + ":" + b}) == 0);
    CHECK(integer(c, {"EXISTS", done + ":w1.1.1.1000:0"}) == 1);
    auto left = c.cmd({"ZRANGE", done, "0", "-1"}).value();
    REQUIRE(left.size() == 1);
    CHECK(left[0].str() == "w1.1.1.1000");
}

// A reclaimer that sees no task of its own running and needs no wake-ups.
Reclaimer& make_reclaimer(Rig& rig, Slots& slots, Taken& taken) {
    return rig.make<Reclaimer>(
        rig.queues(), slots, taken,
        Reclaimer::Hooks{.is_running = [](const QueueContext&, std::string_view) { return false; },
                         .need_slots = {},
                         .claimed = {},
                         .changed = {}});
}

TEST_CASE("reclaimer: one tick takes a dead server's pending entries and leaves a live one's") {
    RedisServer rs;
    TestConn c(rs.url());
    Taken taken;
    Slots slots(8);
    Rig rig(rs,
            {.read_block = 100ms, .heartbeat_interval = 500ms, .lease = 30s, .dead_after = 1s});
    const std::string s = "streamfleet:{q}";
    auto now = redis_now_ms(c);
    rig.clock.advance(60'000);  // the host's clock is not the one that counts
    auto of_dead = deliver(c, s, "dead", 2);
    auto of_live = deliver(c, s, "live", 2);
    age(c, s, "dead", of_dead, 10'000);
    age(c, s, "live", of_live, 10'000);
    std::this_thread::sleep_for(1100ms);  // the dead consumer untouched for dead_after too
    now = redis_now_ms(c);
    REQUIRE(c.cmd({"ZADD", "streamfleet:{q}:servers", std::to_string(now - 10'000), "dead",
                   std::to_string(now), "live"})
                .ok());
    auto& reclaimer = make_reclaimer(rig, slots, taken);

    rig.run([&](Done done) { reclaimer.tick(done); });
    auto pending = pending_of(c, s);
    for (const auto& id : of_dead) CHECK(pending[id].owner == "me");
    for (const auto& id : of_live) CHECK(pending[id].owner == "live");
    rig.rt().call([&] {
        CHECK(taken.entries.size() == 2);
        for (const auto& id : of_dead) CHECK(taken.entries["q " + id] == 2);  // second delivery
        CHECK(slots.free() == 6);  // the claims hold their slots
    });

    // Owning nothing any more and reading nothing (idle past dead_after + read_block), the dead
    // server is forgotten on the next look.
    std::this_thread::sleep_for(1200ms);
    REQUIRE(c.cmd({"ZADD", "streamfleet:{q}:servers", std::to_string(redis_now_ms(c)), "live"})
                .ok());
    rig.run([&](Done done) { reclaimer.tick(done); });
    CHECK(c.cmd({"ZSCORE", "streamfleet:{q}:servers", "dead"}).value().is_nil());
    auto consumers = c.cmd({"XINFO", "CONSUMERS", s, kGroup}).value();
    std::set<std::string> names;
    for (std::size_t i = 0; i < consumers.size(); ++i) {
        names.insert(std::string(consumers[i][1].str()));
    }
    CHECK(names == std::set<std::string>{"live", "me"});
}

TEST_CASE("reclaimer: claims that overlap take a dead server's entry once") {
    RedisServer rs;
    TestConn c(rs.url());
    Taken taken;
    Slots slots(8);
    Rig rig(rs, {.heartbeat_interval = 500ms, .lease = 30s, .dead_after = 1s});
    auto of_dead = deliver(c, "streamfleet:{q}", "dead", 2);
    age(c, "streamfleet:{q}", "dead", of_dead, 10'000);
    std::this_thread::sleep_for(1100ms);
    REQUIRE(c.cmd({"ZADD", "streamfleet:{q}:servers", std::to_string(redis_now_ms(c) - 10'000),
                   "dead"})
                .ok());
    auto& reclaimer = make_reclaimer(rig, slots, taken);
    // Two looks in one loop turn: both XPENDINGs are answered before either XCLAIM is sent.
    rig.run([&](Done done) {
        auto both = Join::make(done);
        both->add(2);
        reclaimer.tick([both] { both->arrive(); });
        reclaimer.tick([both] { both->arrive(); });
        both->arrive();
    });
    rig.rt().call([&] {
        CHECK(taken.accepted == 2);
        CHECK(slots.free() == 6);
    });
}

TEST_CASE("reclaimer: two servers racing for a dead server's 300 entries take each once") {
    RedisServer rs;
    TestConn c(rs.url());
    const std::string s = "streamfleet:{q}";
    constexpr int kEntries = 300;
    auto of_dead = deliver(c, s, "dead", kEntries);
    age(c, s, "dead", of_dead, 10'000);
    std::this_thread::sleep_for(1100ms);
    REQUIRE(c.cmd({"ZADD", "streamfleet:{q}:servers", std::to_string(redis_now_ms(c) - 10'000),
                   "dead"})
                .ok());
    ServerOptions o{.concurrency = kEntries, .heartbeat_interval = 500ms, .dead_after = 1s};
    o.id = "a";
    Rig ra(rs, o);
    o.id = "b";
    Rig rb(rs, o);
    Taken ta, tb;
    Slots sa(kEntries), sb(kEntries);
    // Both list the same entries before either claims: their slots are busy until both wait.
    std::atomic<int> listed{0};
    auto make = [&](Rig& rig, Slots& slots, Taken& taken) -> Reclaimer& {
        return rig.make<Reclaimer>(
            rig.queues(), slots, taken,
            Reclaimer::Hooks{
                .is_running = [](const QueueContext&, std::string_view) { return false; },
                .need_slots = [&] { ++listed; },
                .claimed = {},
                .changed = {}});
    };
    auto& a = make(ra, sa, ta);
    auto& b = make(rb, sb, tb);
    ra.rt().call([&] { sa.take(kEntries); });
    rb.rt().call([&] { sb.take(kEntries); });
    std::promise<void> ga, gb;
    ra.rt().post([&] { a.tick([&] { ga.set_value(); }); });
    rb.rt().post([&] { b.tick([&] { gb.set_value(); }); });
    REQUIRE(eventually([&] { return listed == 2; }, 10s));
    ra.rt().post([&] {
        sa.give(kEntries);
        sa.run_waiter();
    });
    rb.rt().post([&] {
        sb.give(kEntries);
        sb.run_waiter();
    });
    REQUIRE(ga.get_future().wait_for(20s) == std::future_status::ready);
    REQUIRE(gb.get_future().wait_for(20s) == std::future_status::ready);
    std::map<std::string, int> runs;
    ra.rt().call([&] {
        for (const auto& [k, _] : ta.entries) ++runs[k];
    });
    rb.rt().call([&] {
        for (const auto& [k, _] : tb.entries) ++runs[k];
    });
    int twice = 0, missing = 0;
    for (const auto& id : of_dead) {
        auto n = runs["q " + id];
        twice += n > 1;
        missing += n == 0;
    }
    MESSAGE("taken by a: " << ta.accepted << ", by b: " << tb.accepted);
    CHECK(twice == 0);
    CHECK(missing == 0);
    CHECK(ta.accepted + tb.accepted == kEntries);
}

TEST_CASE("reclaimer: a server whose beat is stale but which still reads keeps its work") {
    RedisServer rs;
    TestConn c(rs.url());
    const std::string s = "streamfleet:{q}";
    auto mine = deliver(c, s, "quiet", 1);
    age(c, s, "quiet", mine, 10'000);
    REQUIRE(c.cmd({"ZADD", "streamfleet:{q}:servers", std::to_string(redis_now_ms(c) - 10'000),
                   "quiet"})
                .ok());
    // It reads (an empty XREADGROUP touches its consumer), so it is not dead, whatever its beat.
    REQUIRE(c.cmd({"XREADGROUP", "GROUP", kGroup, "quiet", "COUNT", "1", "STREAMS", s, ">"}).ok());
    Taken taken;
    Slots slots(8);
    Rig rig(rs, {.read_block = 100ms, .heartbeat_interval = 500ms, .dead_after = 1s});
    auto& reclaimer = make_reclaimer(rig, slots, taken);
    rig.run([&](Done done) { reclaimer.tick(done); });
    rig.rt().call([&] { CHECK(taken.accepted == 0); });
    CHECK(pending_of(c, s)[mine[0]].owner == "quiet");
    // Acked, it owns nothing: still it is not forgotten while it reads.
    REQUIRE(c.cmd({"XACK", s, kGroup, mine[0]}).ok());
    rig.run([&](Done done) { reclaimer.tick(done); });
    CHECK_FALSE(c.cmd({"ZSCORE", "streamfleet:{q}:servers", "quiet"}).value().is_nil());
    auto consumers = c.cmd({"XINFO", "CONSUMERS", s, kGroup}).value();
    bool there = false;
    for (std::size_t i = 0; i < consumers.size(); ++i) there |= consumers[i][1].str() == "quiet";
    CHECK(there);
}

TEST_CASE("lease keeper: one tick renews only the running entries this server still owns") {
    RedisServer rs;
    TestConn c(rs.url());
    Rig rig(rs);
    const std::string s = "streamfleet:{q}";
    auto mine = deliver(c, s, "me", 3);
    auto taken_over = deliver(c, s, "peer", 1);
    // Everything has been idle for a long time.
    for (const auto& [ids, owner] : {std::pair{mine, "me"}, std::pair{taken_over, "peer"}}) {
        for (const auto& id : ids) {
            REQUIRE(c.cmd({"XCLAIM", s, kGroup, owner, "0", id, "IDLE", "100000", "JUSTID"}).ok());
        }
    }
    // This server believes it runs mine[0], mine[1] and the one a peer took over; mine[2] it
    // does not run (finished, its ack on the way).
    std::vector<std::string> running{mine[0], mine[1], taken_over[0]};
    auto& keeper =
        rig.make<LeaseKeeper>(rig.queues(), [&](const QueueContext&) { return running; });

    rig.run([&](Done done) { keeper.tick(done); });
    auto pending = pending_of(c, s);
    CHECK(pending[mine[0]].owner == "me");
    CHECK(pending[mine[0]].idle_ms < 50'000);
    CHECK(pending[mine[1]].idle_ms < 50'000);
    CHECK(pending[mine[2]].idle_ms >= 100'000);
    CHECK(pending[taken_over[0]].owner == "peer");
    CHECK(pending[taken_over[0]].idle_ms >= 100'000);
}

TEST_CASE("outcome writer: an entry whose outcome write was refused is never acked") {
    RedisServer rs;
    TestConn c(rs.url());
    Rig rig(rs);
    const std::string s = "streamfleet:{q}";
    REQUIRE(c.cmd({"XGROUP", "CREATE", s, kGroup, "$", "MKSTREAM"}).ok());
    TaskMessage m;
    m.id = "t1";
    m.data = "x";
    auto fields = encode(m);
    std::vector<std::string> xadd{"XADD", s, "*"};
    xadd.insert(xadd.end(), fields.views().begin(), fields.views().end());
    REQUIRE(c.cmd(xadd).ok());
    auto read = std::make_shared<const r::Reply>(
        c.cmd({"XREADGROUP", "GROUP", kGroup, "me", "STREAMS", s, ">"}).value());
    Job job;
    r::for_each_entry(*read, [&](std::string_view, const r::StreamEntry& e) {
        job.entry_id = std::string(e.id);
        job.raw = e.fields;
    });
    job.source = read;
    job.queue = &rig.queue();
    job.msg = decode_task(job.raw).value();
    // Sabotage: the dead-letter key has the wrong type, so Redis refuses the write.
    REQUIRE(c.cmd({"SET", "streamfleet:{q}:dead", "not a stream"}).ok());
    auto& writer = rig.make<OutcomeWriter>(rig.queues(), OutcomeWriter::Hooks{});
    auto settled = [&] { return rig.rt().call([&] { return writer.pending() == 0; }); };

    rig.rt().call([&] { writer.dead(job, "boom"); });
    REQUIRE(eventually(settled));
    std::this_thread::sleep_for(100ms);  // a stray ack would have arrived by now
    CHECK(c.cmd({"XPENDING", s, kGroup}).value()[0].integer() == 1);
    CHECK(integer(c, {"XLEN", s}) == 1);

    // Once the write can succeed, the same outcome is written and the entry acked and deleted.
    REQUIRE(c.cmd({"DEL", "streamfleet:{q}:dead"}).ok());
    rig.rt().call([&] { writer.dead(job, "boom"); });
    REQUIRE(eventually(settled));
    CHECK(c.cmd({"XPENDING", s, kGroup}).value()[0].integer() == 0);
    CHECK(integer(c, {"XLEN", s}) == 0);
    CHECK(integer(c, {"XLEN", "streamfleet:{q}:dead"}) == 1);
    CHECK(rig.counters.dead == 2);
}

TEST_CASE("reader: one blocking connection per shard group, bounded by the shared slots") {
    auto check = [](const RedisServer& rs, TestConn& c, std::size_t groups) {
        Taken taken;
        Slots slots(4);
        Rig rig(rs, {.read_block = 200ms}, {"a", "b"});
        auto& reader = rig.make<Reader>(rig.queues(), slots, taken, Reader::Hooks{});
        rig.run([&](Done done) { reader.create_groups(done); });
        for (const auto* s : {"streamfleet:{a}", "streamfleet:{b}"}) {
            for (int i = 0; i < 3; ++i) REQUIRE(c.cmd({"XADD", s, "*", "f", "v"}).ok());
        }
        rig.rt().call([&] { reader.start(); });
        auto read = [&] { return rig.rt().call([&] { return taken.entries.size(); }); };
        REQUIRE(eventually([&] { return read() == 4; }));
        std::this_thread::sleep_for(500ms);  // a few BLOCK periods: still no more than 4 slots
        CHECK(read() == 4);
        rig.rt().call([&] {
            CHECK(reader.groups() == groups);
            CHECK(slots.free() == 0);
        });
        CHECK(connections_named(c, "name=rig:reader ") == static_cast<long long>(groups));
        // Both queues were read: every group got slots.
        auto pending =
            pending_of(c, "streamfleet:{a}").size() + pending_of(c, "streamfleet:{b}").size();
        CHECK(pending == 4);
        CHECK(pending_of(c, "streamfleet:{a}").size() >= 1);
        CHECK(pending_of(c, "streamfleet:{b}").size() >= 1);
    };
    SUBCASE("a plain Redis is one shard") {
        RedisServer rs(RedisServerOptions{.cluster = false});  // also in the suite's cluster run
        TestConn c(rs.url());
        check(rs, c, 1);
    }
    SUBCASE("a cluster node shards by slot: {a} and {b} are read on two connections") {
        RedisServer rs(cluster_node());
        TestConn c(rs.url());
        check(rs, c, 2);
    }
}

TEST_CASE("a server on a one-node cluster serves queues of different slots, delayed ones too") {
    RedisServer rs(cluster_node());
    TestConn c(rs.url());
    std::atomic<int> ran_a{0}, ran_b{0};
    Server server({.redis = rs.url(), .id = "w1", .concurrency = 4, .read_block = 300ms});
    server.handle("a", [&](TaskContext&) { ++ran_a; });
    server.handle("b", [&](TaskContext&) { ++ran_b; });
    server.start();
    Client client({.redis = rs.url()}, {"a", "b"});
    std::vector<TaskHandle> handles;
    for (int i = 0; i < 20; ++i) {
        handles.push_back(client.enqueue_tracked(i % 2 ? "a" : "b", "x"));
    }
    handles.push_back(client.enqueue_tracked("a", "later", {.delay = 300ms}));
    for (auto& h : handles) {
        auto out = h.wait_for(20s);
        REQUIRE(out);
        CHECK(out->status == TaskStatus::completed);
    }
    CHECK(ran_a == 11);
    CHECK(ran_b == 10);
    CHECK(connections_named(c, "name=streamfleet-server:w1:reader ") == 2);
    CHECK(connections_named(c, "name=streamfleet-server:w1:nudges ") == 2);
    server.shutdown(2s);
    CHECK(integer(c, {"EXISTS", "streamfleet:{a}:servers"}) == 0);
}
