// Janitor: orphaned client streams and dead-letter retention (see janitor.hpp).

#include "server/janitor.hpp"

#include <algorithm>
#include <string>

#include "core/log.hpp"

namespace streamfleet::detail {

namespace r = redis;

Janitor::Janitor(ServerContext& ctx, Queues queues)
    : ctx_(ctx), queues_(queues), timer_(ctx.rt.loop()) {}

void Janitor::start() {
    if (stopped_) return;
    tick();
    auto every = std::clamp<long long>(ctx_.opts.orphan_timeout.count() / 2, 100, 60'000);
    timer_.start(delay_ms(every), [this] { start(); });
}

void Janitor::stop() {
    stopped_ = true;
    timer_.close();
}

void Janitor::tick(Done done) {
    auto join = Join::make(std::move(done));
    sweep_orphans(join);
    trim_dead_letters(join);
    join->arrive();
}

// Clients silent for longer than orphan_timeout lose their notification stream (its group goes
// with it) and their heartbeat entry.
void Janitor::sweep_orphans(const std::shared_ptr<Join>& join) {
    auto cutoff = std::to_string(ctx_.clock.now_ms() - ctx_.opts.orphan_timeout.count());
    auto ignore = [join](Result<r::Reply>) { join->arrive(); };
    for (auto& q : queues_) {
        join->add();
        const auto& clients = q.keys.clients();
        ctx_.topo.send(
            r::Route{clients}, {"ZRANGEBYSCORE", clients, "-inf", "(" + cutoff},
            [this, &clients, join, ignore](Result<r::Reply> res) {
                if (!stopped_ && res.ok() && res->is_array()) {
                    for (const auto& c : res->elements()) {
                        auto id = c.as_string();
                        if (!id) continue;
                        auto key =
                            receiver_key(ctx_.opts.prefix, *id, key_style(ctx_.opts.go_compatible));
                        log().info("server {}: removing orphaned client {}", ctx_.consumer, *id);
                        join->add(2);
                        ctx_.topo.send(r::Route{key}, {"DEL", key}, ignore);
                        ctx_.topo.send(r::Route{clients}, {"ZREM", clients, *id}, ignore);
                    }
                }
                join->arrive();
            });
    }
}

// Dead-letter retention, by count and by age (the entry id is the time it died). Approximate
// trims (~) drop whole stream nodes, which is cheap; the bounds hold to within one node (100
// entries by default).
void Janitor::trim_dead_letters(const std::shared_ptr<Join>& join) {
    auto ignore = [join](Result<r::Reply>) { join->arrive(); };
    for (auto& q : queues_) {
        const auto& dead = q.keys.dead();
        if (ctx_.opts.dead_max > 0) {
            join->add();
            ctx_.topo.send(r::Route{dead},
                           {"XTRIM", dead, "MAXLEN", "~", std::to_string(ctx_.opts.dead_max)},
                           ignore);
        }
        auto cutoff = ctx_.clock.now_ms() - ctx_.opts.dead_max_age.count();
        if (ctx_.opts.dead_max_age.count() > 0 && cutoff > 0) {
            join->add();
            ctx_.topo.send(r::Route{dead}, {"XTRIM", dead, "MINID", "~", std::to_string(cutoff)},
                           ignore);
        }
    }
}

}  // namespace streamfleet::detail
