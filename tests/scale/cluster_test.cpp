// Redis Cluster end to end: a real 3-primary / 3-replica cluster (ClusterSetup),
// queues spread over its nodes, a slot moved under load (MOVED and ASK), failovers
// under load (CLUSTER FAILOVER, then SIGKILL of a primary), and the CLI.

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "redis/cluster_topology.hpp"
#include "redis/slot.hpp"
#include "redis/sync.hpp"
#include "redis/topology.hpp"
#include "redis/url.hpp"
#include "runtime/runtime.hpp"
#include "streamfleet/streamfleet.hpp"
#include "support/cluster_setup.hpp"
#include "support/wait.hpp"

using namespace std::chrono_literals;
using namespace streamfleet;
using streamfleet::test::ClusterSetup;
using streamfleet::test::eventually;
namespace r = streamfleet::detail::redis;
using Clk = std::chrono::steady_clock;

namespace {

// A topology of the test's own, driven from the test thread.
struct Topo {
    detail::Runtime rt{"sf-cluster-test"};
    std::unique_ptr<r::Topology> topo;

    explicit Topo(const std::string& url) {
        auto address = r::parse_url(url).value();
        topo = rt.call([&] {
            auto t = r::make_topology(rt, address).value();
            t->start();
            return t;
        });
        std::promise<void> ready;
        rt.post([&] { topo->when_ready([&] { ready.set_value(); }); });
        REQUIRE(ready.get_future().wait_for(20s) == std::future_status::ready);
    }
    ~Topo() {
        rt.call([this] { topo->close(); });
    }
    detail::Result<r::Reply> cmd(const std::string& key, std::vector<std::string> argv) {
        return r::call(rt, *topo, key, std::move(argv));
    }
    std::string node_of(const std::string& key) {
        return rt.call([&] { return topo->node_of(key); });
    }
    r::ClusterCounters counters() {
        return rt.call([&] { return static_cast<r::ClusterTopology&>(*topo).counters(); });
    }
};

std::uint16_t port_of(const std::string& hostport) {
    return static_cast<std::uint16_t>(std::stoi(hostport.substr(hostport.rfind(':') + 1)));
}

// `n` queue names whose slots are served by `n` different primaries (n <= primaries).
std::vector<std::string> spread_queues(ClusterSetup& cs, const std::string& base, std::size_t n) {
    std::vector<std::string> names;
    std::set<std::uint16_t> used;
    for (int i = 0; names.size() < n && i < 1000; ++i) {
        auto name = base + std::to_string(i);
        auto port = cs.owner_port(r::key_slot(name));
        if (used.insert(port).second) names.push_back(name);
    }
    return names;
}

ServerOptions server_opts(const std::string& url, std::string id, unsigned concurrency = 8) {
    return ServerOptions{
        .redis = url, .id = std::move(id), .concurrency = concurrency, .read_block = 500ms};
}

// Runs of one handler, in the order they happened, with their times.
struct Runs {
    std::mutex m;
    std::multiset<std::string> seen;
    std::vector<Clk::time_point> times;

    void add(std::string_view data) {
        std::lock_guard l(m);
        seen.insert(std::string(data));
        times.push_back(Clk::now());
    }
    std::size_t distinct() {
        std::lock_guard l(m);
        return std::set<std::string>(seen.begin(), seen.end()).size();
    }
    std::size_t total() {
        std::lock_guard l(m);
        return seen.size();
    }
    // The longest stretch without a run between `from` and `to`.
    std::chrono::milliseconds longest_gap(Clk::time_point from, Clk::time_point to) {
        std::lock_guard l(m);
        auto prev = from;
        Clk::duration worst{};
        for (auto t : times) {
            if (t < from || t > to) continue;
            worst = std::max(worst, t - prev);
            prev = t;
        }
        return std::chrono::duration_cast<std::chrono::milliseconds>(worst);
    }
};

// Enqueues tracked tasks "P0", "P1", ... at a steady pace on its own thread until stopped (or
// `max` tasks), so the load lasts as long as the failure being tested.
struct Producer {
    std::vector<std::optional<TaskHandle>> handles;
    std::atomic<int> sent{0};
    std::atomic<int> refused{0};
    std::atomic<bool> stop{false};
    std::thread thread;

    Producer(Client& client, std::string queue, std::string prefix, int max,
             std::chrono::microseconds pace) {
        handles.resize(static_cast<std::size_t>(max));
        thread = std::thread([this, &client, queue, prefix, max, pace] {
            for (int i = 0; i < max && !stop.load(); ++i) {
                try {
                    handles[static_cast<std::size_t>(i)] =
                        client.enqueue_tracked(queue, prefix + std::to_string(i));
                } catch (const std::exception&) {
                    refused.fetch_add(1);
                }
                sent.fetch_add(1);
                std::this_thread::sleep_for(pace);
            }
        });
    }
    int accepted() const { return sent.load() - refused.load(); }
    void join() {
        stop = true;
        if (thread.joinable()) thread.join();
    }
    ~Producer() { join(); }

    // Waits for every accepted handle; returns {completed, other outcome, no outcome}.
    std::tuple<int, int, int> outcomes(std::chrono::seconds limit) {
        int completed = 0, other = 0, none = 0;
        auto until = Clk::now() + limit;
        for (auto& h : handles) {
            if (!h) continue;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clk::now());
            auto out = h->wait_for(std::max(left, 1ms));
            if (!out) {
                ++none;
            } else if (out->status == TaskStatus::completed) {
                ++completed;
            } else {
                ++other;
            }
        }
        return {completed, other, none};
    }
};

}  // namespace

TEST_SUITE("scale_cluster") {
    TEST_CASE("seeds that never answer: commands fail at their deadline, naming the reason") {
        detail::Runtime rt{"sf-cluster-test"};
        auto address = r::parse_url("redis-cluster://127.0.0.1:1,127.0.0.1:2").value();
        auto topo = rt.call([&] {
            auto t = r::make_topology(rt, address).value();
            t->start();
            return t;
        });
        auto res = r::call(rt, *topo, "k", {"GET", "k"}, r::CommandOptions{.timeout = 300ms});
        REQUIRE_FALSE(res.ok());
        CHECK(res.error().is(detail::errc::connect_failed));
        CHECK(res.error().message().find("ECONNREFUSED") != std::string::npos);
        rt.call([&] { topo->close(); });
    }

    TEST_CASE("the topology routes keys to their primaries and follows MOVED and ASK") {
        ClusterSetup cs;
        Topo t(cs.url_one_seed());
        // Keys of three tags on three primaries: each served by its slot's owner.
        auto names = spread_queues(cs, "k", 3);
        REQUIRE(names.size() == 3);
        std::set<std::string> nodes;
        for (const auto& n : names) {
            auto key = "{" + n + "}:x";
            auto node = t.node_of(key);
            CHECK(port_of(node) == cs.owner_port(cs.keyslot(key)));
            nodes.insert(node);
            REQUIRE(t.cmd(key, {"SET", key, n}).ok());
            CHECK(t.cmd(key, {"GET", key}).value().str() == n);
        }
        CHECK(nodes.size() == 3);

        // Why readers are planned per slot, not per node: two streams of one node but of two
        // slots cannot be read by one XREAD (CROSSSLOT), so "one reader per node" is impossible.
        {
            std::string a = "{" + names[0] + "}:s", b;
            for (int i = 0; b.empty() && i < 10000; ++i) {
                auto c = "{x" + std::to_string(i) + "}:s";
                if (t.node_of(c) == t.node_of(a) && r::key_slot(c) != r::key_slot(a)) b = c;
            }
            REQUIRE_FALSE(b.empty());
            auto res = t.cmd(a, {"XREAD", "COUNT", "1", "STREAMS", a, b, "0", "0"});
            REQUIRE_FALSE(res.ok());
            CHECK(res.error().is(detail::reply_errc::crossslot));
        }

        // Move the slot of {k…} key by key: keys already moved answer ASK, then MOVED.
        const auto tag = names[0];
        int slot = cs.keyslot(tag);
        auto from = cs.owner_port(slot);
        auto to = port_of(*std::find_if(nodes.begin(), nodes.end(),
                                        [&](const std::string& n) { return port_of(n) != from; }));
        for (int i = 0; i < 20; ++i) {
            auto key = "{" + tag + "}:" + std::to_string(i);
            REQUIRE(t.cmd(key, {"SET", key, std::to_string(i)}).ok());
        }
        cs.begin_migration(slot, from, to);
        CHECK(cs.migrate_keys(slot, from, to, 10) == 10);
        // Half the keys are on the target now: reads of every key still answer.
        for (int i = 0; i < 20; ++i) {
            auto key = "{" + tag + "}:" + std::to_string(i);
            auto res = t.cmd(key, {"GET", key});
            REQUIRE_MESSAGE(res.ok(), res.error().message());
            CHECK(res->str() == std::to_string(i));
        }
        auto asks = t.counters().ask;
        CHECK(asks >= 1);
        while (cs.migrate_keys(slot, from, to) > 0) {
        }
        cs.finish_migration(slot, from, to);
        for (int i = 0; i < 20; ++i) {
            auto key = "{" + tag + "}:" + std::to_string(i);
            auto res = t.cmd(key, {"GET", key});
            REQUIRE_MESSAGE(res.ok(), res.error().message());
            CHECK(res->str() == std::to_string(i));
        }
        CHECK(t.counters().moved >= 1);
        CHECK(port_of(t.node_of("{" + tag + "}:0")) == to);
        MESSAGE("ask=" << t.counters().ask << " moved=" << t.counters().moved
                       << " refreshes=" << t.counters().refreshes);
    }

    TEST_CASE("queues on different primaries: every task runs once; the CLI shows their nodes") {
        ClusterSetup cs;
        auto queues = spread_queues(cs, "q", 3);
        REQUIRE(queues.size() == 3);
        {
            Topo t(cs.url());
            std::set<std::string> nodes;
            for (const auto& q : queues) nodes.insert(t.node_of("streamfleet:{" + q + "}"));
            CHECK(nodes.size() == 3);
        }
        Runs runs;
        Server server(server_opts(cs.url(), "w1"));
        for (const auto& q : queues) server.handle(q, [&](TaskContext& c) { runs.add(c.data()); });
        server.start();
        Client client({.redis = cs.url()}, queues);
        std::vector<TaskHandle> handles;
        const int per_queue = 100;
        for (const auto& q : queues) {
            for (int i = 0; i < per_queue; ++i) {
                handles.push_back(client.enqueue_tracked(q, q + "-" + std::to_string(i)));
            }
        }
        int completed = 0;
        for (auto& h : handles) {
            auto out = h.wait_for(30s);
            if (out && out->status == TaskStatus::completed) ++completed;
        }
        CHECK(completed == per_queue * 3);
        CHECK(runs.distinct() == static_cast<std::size_t>(per_queue * 3));
        CHECK(runs.total() == static_cast<std::size_t>(per_queue * 3));
        server.shutdown(5s);

        // The CLI through the same URL: enqueue on every queue, stats name each queue's node.
        auto cli = streamfleet::test::cli_path();
        for (const auto& q : queues) {
            auto [out, code] = streamfleet::test::shell(cli + " enqueue --redis '" + cs.url() +
                                                        "' --queue " + q + " --data cli-" + q);
            CHECK_MESSAGE(code == 0, out);
            auto owner = "127.0.0.1:" + std::to_string(cs.owner_port(r::key_slot(q)));
            auto [json, jcode] = streamfleet::test::shell(cli + " stats --redis '" + cs.url() +
                                                          "' --queue " + q + " --json");
            CHECK(jcode == 0);
            CHECK_MESSAGE(json.find("\"node\":\"" + owner + "\"") != std::string::npos, json);
            CHECK_MESSAGE(json.find("\"stream_length\":1") != std::string::npos, json);
            auto [text, tcode] = streamfleet::test::shell(cli + " stats --redis '" +
                                                          cs.url_one_seed() + "' --queue " + q);
            CHECK(tcode == 0);
            CHECK_MESSAGE(text.find("node           " + owner) != std::string::npos, text);
            auto [dead, dcode] = streamfleet::test::shell(cli + " dead list --redis '" + cs.url() +
                                                          "' --queue " + q + " --json");
            CHECK_MESSAGE(dcode == 0, dead);
        }
        // Listing the queues finds all three, each on its own primary (the registry the client
        // and the server wrote; a SCAN sees one node's keys).
        auto [list, lcode] =
            streamfleet::test::shell(cli + " queues --redis '" + cs.url() + "' --json");
        CHECK(lcode == 0);
        for (const auto& q : queues)
            CHECK_MESSAGE(list.find("\"" + q + "\"") != std::string::npos, list);
    }

    TEST_CASE("a live queue's slot moves under load: MOVED and ASK followed, nothing lost") {
        ClusterSetup cs;
        const std::string queue = "mig";
        int slot = r::key_slot(queue);
        auto from = cs.owner_port(slot);
        auto primaries = cs.primary_ports();
        auto to =
            *std::find_if(primaries.begin(), primaries.end(), [&](auto p) { return p != from; });
        auto before = r::ClusterTopology::totals();

        Runs runs;
        Server server(server_opts(cs.url(), "w1"));
        server.handle(queue, [&](TaskContext& c) { runs.add(c.data()); });
        server.start();
        Client client({.redis = cs.url()}, {queue});
        Producer producer(client, queue, "m", 30000, 1ms);
        REQUIRE(eventually([&] { return runs.total() >= 100; }));

        // Step by step, a few keys at a time, so commands meet the ASK window.
        cs.begin_migration(slot, from, to);
        auto window = Clk::now();
        int moved_keys = 0;
        for (int k; (k = cs.migrate_keys(slot, from, to, 20)) > 0;) {
            moved_keys += k;
            std::this_thread::sleep_for(10ms);
        }
        std::this_thread::sleep_for(300ms);  // held in the window: new keys go by ASK
        cs.finish_migration(slot, from, to);
        auto handed = Clk::now();
        auto done = runs.total();
        REQUIRE(eventually([&] { return runs.total() >= done + 100; }, 30s));
        producer.join();
        auto [completed, other, none] = producer.outcomes(60s);
        auto after = r::ClusterTopology::totals();
        auto accepted = producer.accepted();
        CHECK(producer.refused.load() == 0);
        CHECK(completed == accepted);
        CHECK(other == 0);
        CHECK(none == 0);
        CHECK(runs.distinct() == static_cast<std::size_t>(accepted));
        auto duplicates = runs.total() - runs.distinct();
        CHECK(after.moved > before.moved);
        CHECK(after.ask > before.ask);
        CHECK(cs.owner_port(slot) == to);
        MESSAGE("slot " << slot << " " << from << "->" << to << ": keys moved " << moved_keys
                        << ", accepted " << accepted << ", completed " << completed
                        << ", duplicates " << duplicates << ", MOVED " << after.moved - before.moved
                        << ", ASK " << after.ask - before.ask << ", TRYAGAIN "
                        << after.tryagain - before.tryagain << ", longest pause around the move "
                        << runs.longest_gap(window, handed + 2s).count() << " ms");
        server.shutdown(5s);
    }

    TEST_CASE("a primary fails over under load (CLUSTER FAILOVER, then SIGKILL): work goes on") {
        ClusterSetup cs;
        const std::string queue = "fo";
        int slot = r::key_slot(queue);
        auto primary = cs.owner_port(slot);
        auto replica = cs.replica_of(primary);
        REQUIRE(replica != 0);

        Runs runs;
        Server server(server_opts(cs.url(), "w1"));
        server.handle(queue, [&](TaskContext& c) { runs.add(c.data()); });
        server.start();
        Client client({.redis = cs.url()}, {queue});
        Producer producer(client, queue, "f", 30000, 1ms);
        REQUIRE(eventually([&] { return runs.total() >= 100; }));

        // 1. A graceful failover: the replica takes over with every write.
        auto t1 = Clk::now();
        cs.failover(replica);
        auto t1_ok = Clk::now();
        // Where a failover's time goes, from the replica's side (for investigating pauses).
        if (std::getenv("SF_SHOW_FAILOVER_LOG")) {
            auto& rn = cs.node(static_cast<std::size_t>(cs.index_of(replica)));
            auto cmd = "grep -iE 'failover|election|offset' " + rn.dir() + "/redis.log";
            if (std::system(cmd.c_str()) != 0) MESSAGE("no failover lines in the replica's log");
        }
        auto done1 = runs.total();
        REQUIRE(eventually([&] { return runs.total() >= done1 + 100; }, 30s));
        auto t1_end = Clk::now();
        CHECK(cs.owner_port(slot) == replica);

        // 2. The new primary dies: its replica (the old primary) is promoted after the node
        // timeout.
        auto t2 = Clk::now();
        cs.kill(replica);
        cs.wait_ok();
        auto t2_ok = Clk::now();
        auto promoted = cs.owner_port(slot);
        CHECK(promoted == primary);
        auto done2 = runs.total();
        bool went_on = eventually([&] { return runs.total() >= done2 + 100; }, 30s);
        if (!went_on) {
            auto owner = cs.owner_port(slot);
            MESSAGE("stalled: sent "
                    << producer.sent.load() << ", runs " << runs.total() << ", XLEN "
                    << cs.cli(owner, "XLEN 'streamfleet:{" + queue + "}'") << ", groups "
                    << cs.cli(owner, "XINFO GROUPS 'streamfleet:{" + queue + "}'") << ", clients "
                    << cs.cli(owner, "CLIENT LIST"));
        }
        REQUIRE(went_on);
        auto t2_end = Clk::now();

        producer.join();
        auto [completed, other, none] = producer.outcomes(60s);
        auto accepted = producer.accepted();
        auto duplicates = runs.total() - runs.distinct();
        auto totals = r::ClusterTopology::totals();
        // Every accepted task completes, except those whose write the killed primary had
        // acknowledged but not yet replicated: counted, not hidden.
        CHECK(completed + other + none == accepted);
        CHECK(other == 0);
        CHECK(none <= 50);
        CHECK(runs.distinct() >= static_cast<std::size_t>(completed));
        MESSAGE(
            "accepted " << accepted << ", completed " << completed << ", no outcome (lost in the "
                        << "SIGKILL replication window) " << none << ", duplicates " << duplicates
                        << "; longest pause: CLUSTER FAILOVER "
                        << runs.longest_gap(t1, t1_end).count() << " ms, SIGKILL "
                        << runs.longest_gap(t2, t2_end).count() << " ms; MOVED " << totals.moved
                        << ", CLUSTERDOWN " << totals.clusterdown << ", rerouted "
                        << totals.rerouted << "; failover returned after "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(t1_ok - t1).count()
                        << " ms, promotion seen after "
                        << std::chrono::duration_cast<std::chrono::milliseconds>(t2_ok - t2).count()
                        << " ms");
        server.shutdown(5s);
    }

}  // TEST_SUITE
