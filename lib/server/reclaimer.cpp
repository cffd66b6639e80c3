// Reclaimer: claims of dead servers', idle and own leftover entries (see reclaimer.hpp).

#include "server/reclaimer.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "core/script_calls.hpp"
#include "redis/script_runner.hpp"

namespace streamfleet::detail {

namespace r = redis;

Reclaimer::Reclaimer(ServerContext& ctx, Queues queues, Slots& slots, TaskSink& sink, Hooks hooks)
    : ctx_(ctx),
      queues_(queues),
      slots_(slots),
      sink_(sink),
      hooks_(std::move(hooks)),
      foreign_min_idle_ms_(ctx.opts.go_compatible ? kGoReclaimIdleMs : 0),
      dead_timer_(ctx.rt.loop()),
      idle_timer_(ctx.rt.loop()) {}

void Reclaimer::start() {
    auto join = Join::make({});
    find_dead_servers(join);
    join->arrive();
    schedule_scan();
}

void Reclaimer::stop() {
    stopped_ = true;
    dead_timer_.close();
    idle_timer_.close();
    slots_.drop_waiters();
}

void Reclaimer::tick(Done done) {
    auto join = Join::make(std::move(done));
    find_dead_servers(join);
    scan_idle(join);
    join->arrive();
}

// Servers whose heartbeat is older than dead_after: their pending entries are taken now instead
// of after the lease lapses. Looked for at the heartbeat's pace.
void Reclaimer::find_dead_servers(const std::shared_ptr<Join>& join) {
    if (stopped_) return;
    auto cutoff = std::to_string(ctx_.clock.now_ms() - ctx_.opts.dead_after.count());
    for (auto& q : queues_) {
        join->add();
        ctx_.topo.send(r::Route{q.keys.servers()},
                       {"ZRANGEBYSCORE", q.keys.servers(), "-inf", "(" + cutoff},
                       [this, &q, join](Result<r::Reply> res) {
                           if (!stopped_ && res.ok() && res->is_array()) {
                               for (const auto& dead : res->elements()) {
                                   auto id = dead.as_string();
                                   if (!id || *id == ctx_.consumer) continue;
                                   join->add();
                                   claim(q, std::string(*id), 0, [join] { join->arrive(); });
                               }
                           }
                           join->arrive();
                       });
    }
    dead_timer_.start(delay_ms(ctx_.opts.heartbeat_interval.count()), [this] {
        auto next = Join::make({});
        find_dead_servers(next);
        next->arrive();
    });
}

// The safety net: any entry idle longer than the lease, whoever owns it.
void Reclaimer::scan_idle(const std::shared_ptr<Join>& join) {
    for (auto& q : queues_) {
        join->add();
        if (foreign_min_idle_ms_ > ctx_.opts.lease.count()) {
            scan_idle_go(q, join);
            continue;
        }
        claim(q, std::nullopt, ctx_.opts.lease.count(), [join] { join->arrive(); });
    }
}

// The Go rule: two claims, each with its own min-idle in XPENDING and XCLAIM alike, so an entry
// renewed meanwhile is never taken early: our registered servers' entries after the lease, any
// entry after foreign_min_idle. A consumer registered after the ZRANGE counts as foreign, which
// only waits longer.
void Reclaimer::scan_idle_go(QueueContext& q, const std::shared_ptr<Join>& join) {
    const auto& servers = q.keys.servers();
    ctx_.topo.send(r::Route{servers}, {"ZRANGE", servers, "0", "-1"},
                   [this, &q, join](Result<r::Reply> res) {
                       if (stopped_) return;
                       if (res.ok() && res->is_array()) {
                           auto owners = std::make_shared<std::set<std::string, std::less<>>>();
                           for (const auto& m : res->elements()) {
                               if (auto id = m.as_string()) owners->emplace(*id);
                           }
                           join->add();
                           claim(
                               q, std::nullopt, ctx_.opts.lease.count(), [join] { join->arrive(); },
                               std::move(owners));
                       }
                       claim(q, std::nullopt, foreign_min_idle_ms_, [join] { join->arrive(); });
                   });
}

void Reclaimer::schedule_scan() {
    if (stopped_) return;
    auto half = std::max<long long>(ctx_.opts.lease.count() / 2, 1);
    auto jitter = ctx_.random.next() % static_cast<std::uint64_t>(half / 2 + 1);
    idle_timer_.start(delay_ms(half - half / 4 + static_cast<long long>(jitter)), [this] {
        auto join = Join::make({});
        scan_idle(join);
        join->arrive();
        schedule_scan();
    });
}

// A restarted server with the same id first takes back what its previous life left pending, and
// only then reads new work: a read racing this claim would make fresh deliveries look stale.
void Reclaimer::recover_own(Done then) { recover_from(0, std::move(then)); }

void Reclaimer::recover_from(std::size_t i, Done then) {
    if (i == queues_.size()) {
        if (then) then();
        return;
    }
    claim(queues_[i], ctx_.consumer, 0,
          [this, i, then = std::move(then)] { recover_from(i + 1, then); });
}

// Claims up to `concurrency` pending entries of `q` idle for at least `min_idle_ms` (owned by
// `consumer`, if given) and runs them here.
void Reclaimer::claim(QueueContext& q, std::optional<std::string> consumer, long long min_idle_ms,
                      Done then, Owners owners) {
    if (stopped_) return;
    auto idle = std::to_string(min_idle_ms);
    auto count = std::to_string(std::max(ctx_.opts.concurrency, 1u));
    std::vector<std::string_view> argv{
        "XPENDING", q.keys.stream(), kServerGroup, "IDLE", idle, "-", "+", count};
    if (consumer) argv.push_back(*consumer);
    ctx_.topo.send(
        r::Route{q.keys.stream()}, argv,
        [this, &q, consumer, min_idle_ms, then, owners](Result<r::Reply> res) {
            if (stopped_) return;
            if (!res.ok() || !res->is_array() || res->size() == 0) {
                if (consumer && *consumer != ctx_.consumer && res.ok() && res->is_array()) {
                    forget(q, *consumer, then);  // a dead server that owns nothing more
                } else if (then) {
                    then();
                }
                return;
            }
            Candidates candidates;
            for (const auto& p : res->elements()) {
                if (!p.is_array() || p.size() < 4) continue;
                auto id = p[0].as_string();
                auto n = p[3].as_integer();
                if (!id || !n || hooks_.is_running(q, *id)) continue;
                if (owners) {
                    auto owner = p[1].as_string();
                    if (!owner || !owners->count(*owner)) continue;
                }
                if (!claiming_.emplace(q.index, std::string(*id)).second) continue;
                candidates.emplace_back(std::string(*id), static_cast<std::uint64_t>(*n));
            }
            if (candidates.empty()) {
                if (then) then();
                return;
            }
            bool free = slots_.free() > 0;
            take(q, std::move(candidates), min_idle_ms, then);
            if (!free && hooks_.need_slots) hooks_.need_slots();
        });
}

void Reclaimer::take(QueueContext& q, Candidates candidates, long long min_idle_ms, Done then) {
    if (stopped_) return;
    if (slots_.free() == 0) {
        slots_.wait(
            [this, &q, candidates, min_idle_ms, then] { take(q, candidates, min_idle_ms, then); });
        return;
    }
    auto n = slots_.take(static_cast<unsigned>(candidates.size()));
    for (auto i = n; i < candidates.size(); ++i) claiming_.erase({q.index, candidates[i].first});
    candidates.resize(n);
    auto idle = std::to_string(min_idle_ms);
    std::vector<std::string_view> argv{"XCLAIM", q.keys.stream(), kServerGroup, ctx_.consumer,
                                       idle};
    for (const auto& [id, _] : candidates) argv.push_back(id);
    ctx_.topo.send(
        r::Route{q.keys.stream()}, argv, [this, &q, candidates, n, then](Result<r::Reply> res) {
            unsigned dispatched = 0;
            if (res.ok() && res->is_array()) {
                auto source = std::make_shared<const r::Reply>(std::move(*res));
                for (const auto& e : source->elements()) {
                    auto entry = r::parse_entry(e);
                    if (!entry) continue;  // deleted meanwhile
                    std::uint64_t before = 0;
                    for (const auto& [id, count] : candidates) {
                        if (id == entry->id) before = count;
                    }
                    if (sink_.accept(q, source, *entry, before + 1)) ++dispatched;
                }
                sink_.dispatch();
                if (dispatched > 0) {
                    log().info("server {}: took over {} task(s) in {}", ctx_.consumer, dispatched,
                               q.keys.stream());
                }
            } else if (!res.ok()) {
                log().warn("server {}: claiming failed: {}", ctx_.consumer, res.error().message());
            }
            // Accepted ones are running now, which the next claim checks instead.
            for (const auto& [id, _] : candidates) claiming_.erase({q.index, id});
            slots_.give(n - dispatched);
            if (hooks_.changed) hooks_.changed();
            // Before `then`: during recovery the reader has not started, so this
            // reads nothing; afterwards it refills the slots this claim left.
            if (hooks_.claimed) hooks_.claimed();
            if (then) then();
        });
}

// A dead server that owns nothing more leaves the group and the registry -- unless it beat again
// or read something meanwhile (a restart under the same name), which the script checks in the
// same step as the delete (lib/scripts/forget.lua).
void Reclaimer::forget(QueueContext& q, const std::string& consumer, Done done) {
    auto cutoff = ctx_.clock.now_ms() - ctx_.opts.dead_after.count();
    r::run_script(ctx_.topo, calls::forget(q.keys, consumer, cutoff),
                  [done = std::move(done)](Result<r::Reply>) {
                      if (done) done();
                  });
}

}  // namespace streamfleet::detail
