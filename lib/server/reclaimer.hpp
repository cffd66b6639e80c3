#pragma once

// Reclaimer: responsible for taking over pending entries whose consumer will not finish them.
//
// Those are the entries of servers whose heartbeat is older than dead_after (at once), any entry
// idle longer than the lease (a safety net, every lease/2 with jitter), and this server's own
// leftovers from a previous life (on start, before the first read). Dead consumers that own
// nothing any more are forgotten.
//
// In Go-compatible mode a Go worker's task (one held by a consumer that is not in our registry of
// servers, P{Q}:servers) is taken only once idle for foreign_min_idle (1 minute, the Go rule:
// Go workers renew every 10 s and may legitimately run a task longer than our lease), while our
// own servers' tasks still go after the lease.
//
// A claim is XPENDING (ids and delivery counts, taking nothing) then XCLAIM with the same min-idle
// (taking only entries still idle, so two servers racing for one entry cannot both win), then the
// normal accept path, where a delivery count past max_deliveries dead-letters the entry. Claims
// take free slots like reads; when none is free the claim waits in Slots and the reader is woken
// so that the claim goes first.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
    using Candidates = std::vector<std::pair<std::string, std::uint64_t>>;  // id, deliveries

    void find_dead_servers(const std::shared_ptr<Join>& join);
    void scan_idle(const std::shared_ptr<Join>& join);
    void schedule_scan();
    void recover_from(std::size_t i, Done then);
    /// Registered server ids; a claim given one takes only entries they hold.
    using Owners = std::shared_ptr<const std::set<std::string, std::less<>>>;

    void claim(QueueContext& q, std::optional<std::string> consumer, long long min_idle_ms,
               Done then, Owners owners = {});
    void scan_idle_go(QueueContext& q, const std::shared_ptr<Join>& join);
    void take(QueueContext& q, Candidates candidates, long long min_idle_ms, Done then);
    void forget(QueueContext& q, const std::string& consumer, Done done);

    ServerContext& ctx_;
    Queues queues_;
    Slots& slots_;
    TaskSink& sink_;
    Hooks hooks_;
    // Least idle time before an entry of a consumer outside our registry is taken; 0 = no rule.
    long long foreign_min_idle_ms_ = 0;
    bool stopped_ = false;
    // (queue index, entry id) of entries between XPENDING and the XCLAIM reply. Claims overlap
    // (a slow reply, a claim waiting for slots) and XCLAIM with min-idle 0 takes an entry this
    // server has just taken, so without this one server could run an entry twice at once.
    std::set<std::pair<std::size_t, std::string>> claiming_;
    Timer dead_timer_;
    Timer idle_timer_;
};

}  // namespace streamfleet::detail
