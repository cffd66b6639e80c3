// Lease keeper: lib/scripts/keep.lua over the running entries, every lease/3.

#include "server/lease_keeper.hpp"

#include <algorithm>

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
        auto asked = ids.size();
        join->add();
        redis::run_script(
            ctx_.topo, calls::keep(q.keys, ctx_.consumer, ids),
            [this, asked, join](Result<redis::Reply> res) {
                if (!res.ok()) {
                    log().warn("server {}: keeping leases failed: {}", ctx_.consumer,
                               res.error().message());
                } else if (res->size() < asked) {
                    log().warn(
                        "server {}: {} running task(s) were taken over by a peer (lease "
                        "lapsed); they may run twice",
                        ctx_.consumer, asked - res->size());
                }
                join->arrive();
            });
    }
    join->arrive();
}

}  // namespace streamfleet::detail
