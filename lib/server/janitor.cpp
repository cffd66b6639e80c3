// Janitor: orphaned client streams and dead-letter retention (see janitor.hpp).

#include "server/janitor.hpp"

#include <algorithm>
#include <string>

#include "core/done_format.hpp"
#include "core/log.hpp"
#include "redis/block.hpp"

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
    sweep_finished(join);
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

// Buckets expire by their TTL; but one Redis lost and a late write re-created keeps none until
// that family's writer re-arms it, and a writer gone by then never does. So a family past its
// expiry has its buckets deleted by name, then leaves P{Q}:done, in one transaction: a failed
// sweep leaves the family listed for the next one. A few families per queue per sweep bound the
// work of one turn; the sweeps come every orphan_timeout / 2.
void Janitor::sweep_finished(const std::shared_ptr<Join>& join) {
    constexpr std::string_view kFamiliesPerSweep = "16";
    constexpr std::uint32_t kKeysPerDel = 512;
    auto ignore = [join](Result<r::Reply>) { join->arrive(); };
    const auto now = std::to_string(ctx_.clock.now_ms());
    for (auto& q : queues_) {
        join->add();
        const auto& done = q.keys.done();
        ctx_.topo.send(
            r::Route{done}, {"ZRANGEBYSCORE", done, "-inf", "(" + now, "LIMIT", "0", kFamiliesPerSweep},
            [this, &done, join, ignore](Result<r::Reply> res) {
                if (!stopped_ && res.ok() && res->is_array()) {
                    for (const auto& m : res->elements()) {
                        auto member = m.as_string();
                        if (!member) continue;
                        r::Block b(done);
                        if (auto f = done::parse_member(*member)) {
                            std::vector<std::string> keys;
                            for (std::uint32_t s = 0; s < f->shards; s += kKeysPerDel) {
                                keys.clear();
                                for (auto n = s; n < std::min(f->shards, s + kKeysPerDel); ++n)
                                    keys.push_back(done::bucket_key(done, *member, n));
                                std::vector<std::string_view> del{"DEL"};
                                del.insert(del.end(), keys.begin(), keys.end());
                                b.add(del);
                            }
                        } else {
                            log().warn("server {}: '{}' in {} names no bucket family; removed",
                                       ctx_.consumer, *member, done);
                        }
                        b.add({"ZREM", done, *member});
                        join->add();
                        ctx_.topo.send_encoded(r::Route{done}, b.resp(), ignore, b.options());
                    }
                }
                join->arrive();
            });
    }
}

}  // namespace streamfleet::detail
