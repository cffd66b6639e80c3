#pragma once

// Reclaimer: responsible for taking over pending entries whose consumer will not finish them.
//
// Those are the entries of servers dead by Redis's clock (beat older than dead_after, or departed
// at shutdown with entries left; looked for at the heartbeat's pace), any entry idle longer than
// the lease (a safety net, every lease/2 with jitter), and this server's own leftovers from a
// previous life (on start, before the first read). Dead consumers that own nothing any more and
// have stopped reading are forgotten.
//
// A claim is XPENDING (candidate ids, taking nothing) then lib/scripts/claim.lua, which checks
// each candidate again in the step that takes it -- still the dead server's and that server still
// dead, still this server's own, still idle past the lease -- and XCLAIMs with the idle it
// required as min-idle, so two servers racing for one entry cannot both win and a server that
// beat again keeps its work. Then the normal accept path, where a delivery count past
// max_deliveries dead-letters the entry. Claims take free slots like reads; when none is free the
// claim waits in Slots and the reader is woken so that the claim goes first.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/script_calls.hpp"
#include "server/job.hpp"

namespace streamfleet::detail {

class Reclaimer {
public:
    struct Hooks {
        /// Whether this server runs `entry_id` of the queue right now (never claimed from itself).
        std::function<bool(const QueueContext&, std::string_view entry_id)> is_running;
        /// A claim waits for slots held by blocked reads: wake them.
        std::function<void()> need_slots;
        /// A claim is done and gave back the slots it did not use: read on.
        std::function<void()> claimed;
        std::function<void()> changed;
    };

    Reclaimer(ServerContext& ctx, Queues queues, Slots& slots, TaskSink& sink, Hooks hooks);

    /// Looks for dead servers now and every heartbeat_interval; scans for idle entries every
    /// lease/2 with jitter.
    void start();
    void stop();
    /// One look for dead servers and one scan for idle entries; `done` once every claim is in.
    void tick(Done done = {});
    /// Claims what this server's previous life left pending, queue by queue, then runs `then`.
    void recover_own(Done then);

private:
    using Why = calls::ClaimWhy;

    void find_dead_servers(const std::shared_ptr<Join>& join);
    void scan_idle(const std::shared_ptr<Join>& join);
    void schedule_scan();
    void recover_from(std::size_t i, Done then);
    /// Registered server ids; a claim given one takes only entries they hold.
    using Owners = std::shared_ptr<const std::set<std::string, std::less<>>>;

    /// Claims up to `concurrency` entries of `q` idle at least `listed_idle` for `why` (`owner`:
    /// whose, for own and dead; `owners`: only theirs, for idle).
    void claim(QueueContext& q, Why why, std::string owner, std::int64_t listed_idle, Done then,
               Owners owners = {});
    void scan_idle_go(QueueContext& q, const std::shared_ptr<Join>& join);
    /// `need`: the idle claim.lua requires (its XCLAIM min-idle), for idle claims.
    void take(QueueContext& q, Why why, std::string owner, std::int64_t need,
              std::vector<std::string> ids, Done then);
    void forget(QueueContext& q, const std::string& consumer, Done done);
    std::int64_t min_idle(Why why) const;

    ServerContext& ctx_;
    Queues queues_;
    Slots& slots_;
    TaskSink& sink_;
    Hooks hooks_;
    // Least idle time before an entry of a consumer outside our registry is taken; 0 = no rule.
    long long foreign_min_idle_ms_ = 0;
    bool stopped_ = false;
    // (queue index, entry id) of entries between XPENDING and the claim's reply. Claims overlap (a
    // slow reply, a claim waiting for slots); claim.lua would refuse the second, but only after it
    // held slots for it.
    std::set<std::pair<std::size_t, std::string>> claiming_;
    Timer dead_timer_;
    Timer idle_timer_;
};

}  // namespace streamfleet::detail
