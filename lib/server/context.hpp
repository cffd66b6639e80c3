#pragma once

// Server context: responsible for what every server component shares, and the queues they name.
//
// It holds options, loop, topology, clock, randomness and counters; QueueContext holds a queue's
// keys and handler.
//
// Components receive a ServerContext& and the queues at construction and keep no other link to
// each other than the callbacks they are given, so a test can build any one of them alone with a
// ManualClock and a FixedRandom.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/keys.hpp"
#include "core/metrics.hpp"
#include "core/random.hpp"
#include "core/wire.hpp"
#include "redis/topology.hpp"
#include "runtime/runtime.hpp"
#include "streamfleet/server.hpp"

namespace streamfleet::detail {

/// One queue's part of Server::metrics_text(). Counters written on the loop thread, histograms
/// on handler threads; read from any.
struct QueueMetrics {
    std::atomic<std::uint64_t> completed{0}, failed{0}, retried{0}, dead{0}, expired{0},
        canceled{0};
    Histogram handler_seconds;        // a run, from its start to its outcome
    Histogram start_latency_seconds;  // from enqueue (or the due time) to the run's start
};

/// What Server::stats() reports, and per queue what metrics_text() does. Written on the loop
/// thread, read from any.
struct ServerCounters {
    std::atomic<std::uint64_t> succeeded{0}, failed{0}, retried{0}, dead{0}, expired{0},
        malformed{0}, returned{0}, canceled{0};
    /// By QueueContext::index; sized by Server::start() before any component runs.
    std::vector<std::unique_ptr<QueueMetrics>> queues;
    QueueMetrics* of(std::size_t queue) noexcept {
        return queue < queues.size() ? queues[queue].get() : nullptr;
    }
};

/// Seconds from when a task could first run (enqueued, or due when it was delayed) to now, by the
/// host clocks (the enqueuer's and this one): what the start-latency histogram records.
inline double start_latency(const Clock& clock, const TaskMessage& m) {
    auto from = std::max(m.enqueued_ts, m.run_at_ms);
    return from > 0 ? static_cast<double>(clock.now_ms() - from) / 1000.0 : 0.0;
}

/// Counts one event of `queue` in its metrics, when it has any (component tests run without).
inline void count(ServerCounters& c, std::size_t queue,
                  std::atomic<std::uint64_t> QueueMetrics::*field) noexcept {
    if (auto* m = c.of(queue)) ++(m->*field);
}

struct ServerContext {
    const ServerOptions& opts;
    Runtime& rt;
    redis::Topology& topo;
    /// Every host timestamp a component writes or compares (due times, expiry, records). Never
    /// a liveness or lease decision: those read Redis's TIME inside the script that acts.
    const Clock& clock;
    /// Every jitter and backoff draw.
    Random& random;
    ServerCounters& counters;
    /// This server's consumer name in the group (opts.id).
    const std::string& consumer;
};

/// One queue this server handles. The address is stable for the server's life: components keep
/// pointers to it and index their own per-queue state by `index`.
struct QueueContext {
    QueueKeys keys;
    OutcomeHandler handler;  // empty when pulled
    std::size_t index = 0;
    bool pulled = false;  // Server::pull(): its tasks wait for pop() (server/puller.hpp)
};

using Queues = std::span<QueueContext>;

/// Completion of an asynchronous step (a tick, a claim); may be empty.
using Done = std::function<void()>;

/// Runs `done` once every step it was told about has arrived. The issuer holds one step until it
/// has issued all the others, so `done` cannot run while steps are still being added.
class Join {
public:
    static std::shared_ptr<Join> make(Done done) {
        return std::shared_ptr<Join>(new Join(std::move(done)));
    }
    void add(std::size_t n = 1) { left_ += n; }
    void arrive() {
        if (--left_ == 0 && done_) done_();
    }

private:
    explicit Join(Done done) : done_(std::move(done)) {}
    std::size_t left_ = 1;  // the issuer's own step
    Done done_;
};

/// The queues grouped by the shard of `key(q.keys)`, in queue order: the keys of one group may be
/// named together in one multi-key command (XREADGROUP, XREAD), keys of two groups never are.
/// Final only once Topology::when_ready has fired.
inline std::vector<std::vector<QueueContext*>> shard_groups(const redis::Topology& topo,
                                                            Queues queues,
                                                            const std::string& (QueueKeys::*key)()
                                                                const noexcept) {
    std::vector<int> shards;
    std::vector<std::vector<QueueContext*>> groups;
    for (auto& q : queues) {
        int shard = topo.shard((q.keys.*key)());
        std::size_t at = 0;
        while (at < shards.size() && shards[at] != shard) ++at;
        if (at == shards.size()) {
            shards.push_back(shard);
            groups.emplace_back();
        }
        groups[at].push_back(&q);
    }
    return groups;
}

/// Milliseconds as a uv timer delay: never negative, at least `floor`.
inline std::uint64_t delay_ms(long long ms, long long floor = 0) {
    return static_cast<std::uint64_t>(ms < floor ? floor : ms);
}

}  // namespace streamfleet::detail
