#pragma once

// Durable writes: responsible for getting each outcome write into Redis, resent while it cannot.
//
// A write is sent at once and, while it fails for a reason that may pass, kept and resent with
// backoff (from 100 ms, doubling to 5 s, jittered; back to the start once a write gets through):
// a link problem (Error::is_transient: Redis restarting, a lost connection, a failover) or a
// refusal for want of memory (OOM under maxmemory + noeviction, which ends once memory is freed).
// `then` runs only once the write is in Redis, so a chain of writes (final state → notification
// → ack) never has a later step go through before an earlier one: Redis refuses an XADD for
// memory but still takes an XACK. Any other refusal (WRONGTYPE, NOPERM, a script error) would be
// refused again: it is given up at once and `failed` runs instead.
//
// Refusals and outages are logged once per kind of error every few seconds, with how many writes
// met it, never once per write: under OOM every finished task meets the same refusal.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/scripts.hpp"
#include "redis/replica_wait.hpp"
#include "redis/block.hpp"
#include "redis/reply.hpp"
#include "server/context.hpp"

namespace streamfleet::detail {

class DurableWrites {
public:
    /// `changed` runs whenever outstanding() drops.
    DurableWrites(ServerContext& ctx, std::function<void()> changed);

    /// A plain command, routed by argv[1] (its key). `what` names it in logs. `then` runs once
    /// Redis has run it, `failed` if it was given up (refused for good); stop() runs neither.
    void write(std::vector<std::string> argv, std::string what, Done then = {}, Done failed = {});
    /// A script call, likewise.
    void write(ScriptCall call, std::string what, Done then = {}, Done failed = {});
    /// A transaction, likewise.
    void write(redis::Block block, std::string what, Done then = {}, Done failed = {});
    /// A script call whose reply matters: `then` gets it once Redis has run it.
    void write(ScriptCall call, std::string what, std::function<void(const redis::Reply&)> then,
               Done failed = {});
    /// Resends every kept write now.
    void resend();
    /// Closes the resend timer; kept writes are given up (neither callback runs). Loop thread;
    /// idempotent.
    void stop();

    /// Writes sent or kept, not answered yet.
    std::size_t outstanding() const noexcept { return outstanding_; }
    /// Writes waiting for their next resend.
    std::size_t kept() const noexcept { return kept_.size(); }

    /// Whether a write that failed with `e` is kept and resent (see above).
    static bool worth_resending(const Error& e) noexcept;

private:
    struct Write {
        std::string route;
        std::vector<std::string> argv;
        std::string what;
        std::optional<ScriptCall> script{};
        Done then{};
        Done failed{};
        std::function<void(const redis::Reply&)> then_reply{};
        std::optional<redis::Block> block{};
    };
    // Log lines of one kind of failure: the first at once, then one every kLogEveryMs that
    // counts what happened in between.
    struct LogWindow {
        std::int64_t last_ms = 0;
        std::size_t quiet = 0;  // failures of this kind not logged since last_ms
    };

    void send(std::shared_ptr<Write> w);
    void keep(std::shared_ptr<Write> w, const Error& e);
    void give_up(const Write& w, const Error& e);
    // True when a line about `e` may be logged now; `quiet` gets the count it stands for.
    bool may_log(const Error& e, std::size_t& quiet);

    ServerContext& ctx_;
    std::function<void()> changed_;
    bool stopped_ = false;
    std::size_t outstanding_ = 0;
    unsigned attempt_ = 0;                     // resend rounds since a write last got through
    std::deque<std::shared_ptr<Write>> kept_;  // waiting for the resend timer
    std::map<std::pair<std::string, int>, LogWindow> log_windows_;  // by error category, value
    Timer resend_timer_;
    redis::ReplicaWait wait_;  // WAIT after each turn's writes (opts.wait_replicas)
};

}  // namespace streamfleet::detail
