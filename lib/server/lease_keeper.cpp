// Lease keeper: lib/scripts/keep.lua over the running entries, every lease/3.

#include "server/lease_keeper.hpp"

#include <algorithm>
#include <set>
#include <string_view>

#include "core/log.hpp"
#include "core/script_calls.hpp"
#include "redis/script_runner.hpp"

namespace streamfleet::detail {

LeaseKeeper::LeaseKeeper(ServerContext& ctx, Queues queues, Running running)
    : ctx_(ctx), queues_(queues), running_(std::move(running)), timer_(ctx.rt.loop()) {}

void LeaseKeeper::start() {
    if (stopped_) return;
    tick();
    timer_.start(delay_ms(ctx_.opts.lease.count() / 3, 1), [this] { start(); });
}

void LeaseKeeper::stop() {
    stopped_ = true;
    timer_.close();
}

void LeaseKeeper::tick(Done done) {
    auto join = Join::make(std::move(done));
    for (auto& q : queues_) {
        auto ids = running_(q);
        if (ids.empty()) continue;
        join->add();
        redis::run_script(
            ctx_.topo, calls::keep(q.keys, ctx_.consumer, ids),
            [this, &q, ids, join](Result<redis::Reply> res) {
                if (!res.ok()) {
                    log().warn("server {}: keeping leases failed: {}", ctx_.consumer,
                               res.error().message());
                } else if (auto lost = still_ours_not_kept(q, ids, *res); lost > 0) {
                    log().warn(
                        "server {}: {} running task(s) were taken over by a peer (lease "
                        "lapsed); they may run twice",
                        ctx_.consumer, lost);
                }
                join->arrive();
            });
    }
    join->arrive();
}

// Entries this server asked to keep, did not get back, and still counts as its own: an entry
// acked meanwhile (its outcome written) left the PEL by itself and was not taken by anyone.
std::size_t LeaseKeeper::still_ours_not_kept(const QueueContext& q,
                                             const std::vector<std::string>& asked,
                                             const redis::Reply& kept) const {
    if (kept.size() >= asked.size()) return 0;
    std::set<std::string_view> got;
    for (std::size_t i = 0; i < kept.size(); ++i) {
        if (auto id = kept[i].as_string()) got.insert(*id);
    }
    auto now = running_(q);
    std::set<std::string_view> ours(now.begin(), now.end());
    std::size_t lost = 0;
    for (const auto& id : asked) lost += !got.count(id) && ours.count(id);
    return lost;
}

}  // namespace streamfleet::detail
