// The client's loop-side components, each alone against a real redis-server:
// outbox (order across an outage, NOSCRIPT), listener (handles, NOGROUP), heartbeat.

#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "client/context.hpp"
#include "client/encoder.hpp"
#include "client/heartbeat.hpp"
#include "client/listener.hpp"
#include "client/outbox.hpp"
#include "client/task_builder.hpp"
#include "core/clock.hpp"
#include "core/keys.hpp"
#include "redis/topology.hpp"
#include "redis/url.hpp"
#include "runtime/runtime.hpp"
#include "support/redis_server.hpp"
#include "support/test_conn.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using namespace streamfleet::detail;
using namespace streamfleet::detail::client;
using streamfleet::test::entry_fields;
using streamfleet::test::eventually;
using streamfleet::test::RedisServer;
using streamfleet::test::TestConn;

namespace {

constexpr const char* kClientId = "0190e3a2-6c4b-7abc-8def-0123456789ab";

// A loop, a topology and a context for queue "q", as Client builds them,
// without any component: each test adds the one it tests.
struct Harness {
    explicit Harness(const std::string& url, std::chrono::milliseconds command_timeout = 5s) {
        ClientOptions options{.redis = url, .command_timeout = command_timeout};
        auto address = redis::parse_url(url).value();
        topo = rt.call([&] {
            auto t = redis::make_topology(
                         rt, address, {.command_timeout = command_timeout, .client_name = "test"})
                         .value();
            t->start();
            return t;
        });
        QueueMap queues;
        queues.emplace("q", QueueKeys(options.prefix, "q"));
        auto receiver = receiver_key(options.prefix, kClientId);
        ctx = std::make_unique<ClientContext>(ClientContext{std::move(options), kClientId,
                                                            std::move(receiver), clock, rt, *topo,
                                                            std::move(queues)});
    }
    ~Harness() {
        rt.call([this] {
            for (auto& close : closers) close();
            topo->close();
        });
        rt.stop();
    }
    const QueueKeys& keys() const { return ctx->queues.begin()->second; }

    /// A component made on the loop, closed there before the topology, and
    /// freed only after the loop has stopped, as Client does with its own.
    template <class T, class... Args>
    T* make(Args&&... args) {
        auto made = rt.call([&] {
            auto p = std::make_shared<T>(*ctx, std::forward<Args>(args)...);
            closers.push_back([p] { p->close(); });
            return p;
        });
        owned.push_back(made);
        return made.get();
    }

    ManualClock clock{1'700'000'000'000};
    Runtime rt{"sf-test-client"};
    std::unique_ptr<redis::Topology> topo;
    std::unique_ptr<ClientContext> ctx;
    std::vector<std::function<void()>> closers;
    std::vector<std::shared_ptr<void>> owned;
};

// An outbox on the harness's loop, counting what Redis confirmed.
struct OutboxUnderTest {
    explicit OutboxUnderTest(Harness& h) : h(h), builder(h.ctx->options, kClientId, h.clock) {
        // The count is shared: the harness closes the outbox after this object is gone.
        outbox = h.make<Outbox>(
            nullptr, [c = confirmed](std::size_t n, std::size_t) { *c += n; },
            [r = refused](Outgoing& o, const detail::Error& why) {
                r->emplace_back(o.id, why.message());  // loop thread; read after rt.call
            });
        h.rt.call([&] {
            h.topo->on_state([o = outbox](redis::ConnState st, const detail::Error*) {
                if (st == redis::ConnState::ready) o->link_up();
            });
        });
    }

    // Encodes tasks "t<from>".."t<to - 1>" and submits them in one batch.
    void submit(int from, int to, TaskOptions o = {}) {
        std::vector<TaskMessage> msgs;
        for (int i = from; i < to; ++i) msgs.push_back(builder.build("t" + std::to_string(i), o, false));
        submit(msgs);
    }
    void submit(const std::vector<TaskMessage>& msgs) {
        std::vector<Outgoing> batch;
        for (const auto& m : msgs) batch.push_back(encode_outgoing(m, h.keys(), 1));
        h.rt.call([&] { outbox->submit(batch); });
    }
    std::vector<std::pair<std::string, std::string>> refusals() {
        return h.rt.call([&] { return *refused; });
    }
    std::size_t waiting() {
        return h.rt.call([&] { return outbox->size(); });
    }
    bool down() {
        return h.rt.call([&] { return outbox->link_down(); });
    }

    Harness& h;
    TaskBuilder builder;
    std::size_t confirmed_n() const { return confirmed->load(); }

    std::shared_ptr<std::atomic<std::size_t>> confirmed =
        std::make_shared<std::atomic<std::size_t>>(0);
    std::shared_ptr<std::vector<std::pair<std::string, std::string>>> refused =
        std::make_shared<std::vector<std::pair<std::string, std::string>>>();
    Outbox* outbox;
};

// The payloads of P{q}, in stream order.
std::vector<std::string> payloads(TestConn& c) {
    std::vector<std::string> out;
    auto r = c.cmd({"XRANGE", "streamfleet:{q}", "-", "+"}).value();
    for (std::size_t i = 0; i < r.size(); ++i) out.push_back(entry_fields(r[i])["data"]);
    return out;
}

// `calls=N` of one command in INFO commandstats (0 when never called).
long command_calls(TestConn& c, const std::string& command) {
    auto text = std::string(c.cmd({"INFO", "commandstats"}).value().str());
    auto at = text.find("cmdstat_" + command + ":calls=");
    if (at == std::string::npos) return 0;
    return std::stol(text.substr(at + command.size() + 15));
}

void notify(TestConn& c, const std::string& task_id, const char* type, const char* err = "") {
    REQUIRE(c.cmd({"XADD", "streamfleet:receiver:{" + std::string(kClientId) + "}", "*",
                   "enc_version", "1", "task_id", task_id, "type", type, "err_msg", err})
                .ok());
}

}  // namespace

TEST_CASE("outbox: tasks accepted during an outage are sent in order once the link is back") {
    RedisServer server;
    TestConn c(server.url());
    Harness h(server.url(), 300ms);
    OutboxUnderTest ob(h);
    ob.submit(0, 5);
    REQUIRE(eventually([&] { return ob.confirmed_n() == 5; }));
    CHECK(ob.waiting() == 0);

    server.pause();
    ob.submit(5, 10);  // written, never answered: they time out and mark the link down
    REQUIRE(eventually([&] { return ob.down(); }));
    ob.submit(10, 15);  // only queued behind them
    ob.submit(15, 16);
    CHECK(ob.waiting() == 11);
    CHECK(ob.confirmed_n() == 5);
    server.resume();

    REQUIRE(eventually([&] { return ob.confirmed_n() == 16; }));
    CHECK(ob.waiting() == 0);
    CHECK_FALSE(ob.down());
    // A command cut off by the outage may have run as well as its resend
    // (at-least-once), so compare first sightings: every task, in acceptance order.
    std::vector<std::string> first_seen;
    std::set<std::string> seen;
    for (const auto& p : payloads(c)) {
        if (seen.insert(p).second) first_seen.push_back(p);
    }
    std::vector<std::string> want;
    for (int i = 0; i < 16; ++i) want.push_back("t" + std::to_string(i));
    CHECK(first_seen == want);
}

TEST_CASE("outbox: after SCRIPT FLUSH the batch is sent again by body (NOSCRIPT → EVAL)") {
    RedisServer server;
    TestConn c(server.url());
    Harness h(server.url());
    OutboxUnderTest ob(h);
    ob.submit(0, 3);
    REQUIRE(eventually([&] { return ob.confirmed_n() == 3; }));
    CHECK(command_calls(c, "eval") == 1);  // the first use taught Redis the script

    ob.submit(3, 6);
    REQUIRE(eventually([&] { return ob.confirmed_n() == 6; }));
    CHECK(command_calls(c, "eval") == 1);  // known now: EVALSHA alone

    REQUIRE(c.cmd({"SCRIPT", "FLUSH"}).ok());
    ob.submit(6, 9);
    ob.submit(9, 10, {.delay = 60s});  // a schedule call takes the same way back
    REQUIRE(eventually([&] { return ob.confirmed_n() == 10; }, 10s));
    CHECK(command_calls(c, "eval") == 3);
    CHECK_FALSE(ob.down());  // NOSCRIPT is not an outage
    CHECK(payloads(c) ==
          std::vector<std::string>{"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"});
    CHECK(c.cmd({"ZCARD", "streamfleet:{q}:delayed"}).value().integer() == 1);
}

TEST_CASE("outbox: a batch refused as a whole is split; each task is refused once, none runs") {
    RedisServer server;
    TestConn c(server.url());
    Harness h(server.url());
    OutboxUnderTest ob(h);
    std::vector<TaskMessage> msgs;
    for (int i = 0; i < 10; ++i) msgs.push_back(ob.builder.build("t" + std::to_string(i), {}, false));
    // The queue's index holds a string: the enqueue script adds the entries, fails writing the
    // index, and takes them back. Split, each task alone is refused the same way.
    REQUIRE(c.cmd({"SET", h.keys().index(), "in the way"}).ok());
    ob.submit(msgs);
    REQUIRE(eventually([&] { return ob.confirmed_n() == 10; }));
    CHECK(ob.waiting() == 0);
    auto refused = ob.refusals();
    REQUIRE(refused.size() == 10);
    std::set<std::string> ids;
    for (const auto& [id, why] : refused) {
        ids.insert(id);
        CHECK(why.find("WRONGTYPE") != std::string::npos);
    }
    CHECK(ids.size() == 10);
    CHECK(payloads(c).empty());
    CHECK_FALSE(ob.down());
    // Nothing held up afterwards: with the key back to usable, the next tasks go through.
    REQUIRE(c.cmd({"DEL", h.keys().index()}).ok());
    std::vector<TaskMessage> more{ob.builder.build("after", {}, false)};
    ob.submit(more);
    REQUIRE(eventually([&] { return ob.confirmed_n() == 11; }));
    CHECK(payloads(c) == std::vector<std::string>{"after"});
}

TEST_CASE("listener: a notification written by hand resolves its handle; NOGROUP is survived") {
    RedisServer server;
    TestConn c(server.url());
    Harness h(server.url());
    const std::string receiver = h.ctx->receiver;
    auto* listener = h.make<Listener>();
    h.rt.call([&] { listener->start(); });
    REQUIRE(eventually([&] { return c.cmd({"EXISTS", receiver}).value().integer() == 1; }));

    auto done = std::make_shared<HandleState>("task-1");
    auto open = std::make_shared<HandleState>("task-2");
    h.rt.call([&] {
        listener->track(done);
        listener->track(open);
    });
    notify(c, "task-1", "error", "smtp said no");
    notify(c, "someone-else", "completed");
    REQUIRE(eventually([&] { return h.rt.call([&] { return listener->unknown(); }) == 1; }));
    {
        std::lock_guard lock(done->mutex);
        REQUIRE(done->outcome);
        CHECK(done->outcome->status == TaskStatus::error);
        CHECK(done->outcome->error == "smtp said no");
    }
    // Read entries are acknowledged and trimmed.
    CHECK(eventually([&] { return c.cmd({"XLEN", receiver}).value().integer() == 0; }));
    CHECK(c.cmd({"XPENDING", receiver, "streamfleet-client"}).value()[0].integer() == 0);

    // The stream vanishes (deleted, or Redis restarted empty): the listener
    // recreates it and its group, and reads on.
    REQUIRE(c.cmd({"DEL", receiver}).ok());
    auto after = std::make_shared<HandleState>("task-3");
    h.rt.call([&] { listener->track(after); });
    auto resolved = [&] {
        std::lock_guard lock(after->mutex);
        return after->outcome.has_value();
    };
    // The notification may land before the group exists again; write until seen.
    for (int i = 0; i < 200 && !resolved(); ++i) {
        notify(c, "task-3", "expired");
        eventually(resolved, 100ms);
    }
    REQUIRE(resolved());
    CHECK(after->outcome->status == TaskStatus::expired);
    auto groups = c.cmd({"XINFO", "GROUPS", receiver}).value();
    REQUIRE(groups.size() == 1);
    CHECK(groups[0][1].str() == "streamfleet-client");

    // What is still open is handed back once, for close() to cancel.
    auto left = h.rt.call([&] { return listener->take_open(); });
    REQUIRE(left.size() == 1);
    CHECK(left[0] == open);
    CHECK(h.rt.call([&] { return listener->take_open(); }).empty());
}

TEST_CASE("heartbeat: beats carry the context clock's time; clear removes them") {
    RedisServer server;
    TestConn c(server.url());
    Harness h(server.url());
    auto* heartbeat = h.make<Heartbeat>();
    h.rt.call([&] { heartbeat->start(); });
    const std::string key = "streamfleet:{q}:clients";
    auto score = [&] { return c.cmd({"ZSCORE", key, kClientId}).value(); };
    REQUIRE(eventually([&] { return !score().is_nil(); }));
    CHECK(score().str() == "1700000000000");
    h.clock.advance(5000);
    h.rt.call([&] { heartbeat->tick(); });
    CHECK(eventually([&] { return score().str() == "1700000005000"; }));

    std::atomic<bool> cleared{false};
    h.rt.call([&] {
        heartbeat->stop();
        heartbeat->clear({}, [&] { cleared = true; });
    });
    REQUIRE(eventually([&] { return cleared.load(); }));
    CHECK(score().is_nil());
}
