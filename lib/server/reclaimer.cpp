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

// Servers dead by Redis's clock (lib/scripts/dead.lua): their pending entries are taken now
// instead of after the lease lapses. Looked for at the heartbeat's pace.
void Reclaimer::find_dead_servers(const std::shared_ptr<Join>& join) {
    if (stopped_) return;
    for (auto& q : queues_) {
        join->add();
        r::run_script(ctx_.topo, calls::dead(q.keys, ctx_.opts.dead_after.count()),
                      [this, &q, join](Result<r::Reply> res) {
                          if (!stopped_ && res.ok() && res->is_array()) {
                              // {id, score, ...}; score 0: departed, its leftovers go now.
                              for (std::size_t i = 0; i + 1 < res->size(); i += 2) {
                                  auto id = (*res)[i].as_string();
                                  auto score = (*res)[i + 1].as_string();
                                  if (!id || !score || *id == ctx_.consumer) continue;
                                  bool departed = *score == "0";
                                  join->add();
                                  claim(q, Why::dead, std::string(*id),
                                        departed ? 0 : min_idle(Why::dead),
                                        [join] { join->arrive(); });
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
        claim(q, Why::idle, {}, min_idle(Why::idle), [join] { join->arrive(); });
    }
}

// The Go rule: two claims, each with its own min-idle in XPENDING and claim.lua alike, so an entry
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
                               q, Why::idle, {}, min_idle(Why::idle), [join] { join->arrive(); },
                               std::move(owners));
                       }
                       claim(q, Why::idle, {}, foreign_min_idle_ms_, [join] { join->arrive(); });
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
    claim(queues_[i], Why::own, ctx_.consumer, 0,
          [this, i, then = std::move(then)] { recover_from(i + 1, then); });
}

// The idle claim.lua requires: a dead server's entries have gone untouched as long as its beat
// (so one it touched after its last beat, or a live server renews, stays), any entry the lease.
std::int64_t Reclaimer::min_idle(Why why) const {
    switch (why) {
        case Why::own: return 0;
        case Why::dead: return ctx_.opts.dead_after.count();
        case Why::idle: return ctx_.opts.lease.count();
    }
    return ctx_.opts.lease.count();
}

void Reclaimer::claim(QueueContext& q, Why why, std::string owner, std::int64_t listed_idle,
                      Done then, Owners owners) {
    if (stopped_) return;
    auto count = std::to_string(std::max(ctx_.opts.concurrency, 1u));
    // Only entries idle enough to be taken are listed (and hold slots); claim.lua checks again.
    auto idle = std::to_string(listed_idle);
    std::vector<std::string_view> argv{
        "XPENDING", q.keys.stream(), kServerGroup, "IDLE", idle, "-", "+", count};
    if (why != Why::idle) argv.push_back(owner);
    ctx_.topo.send(
        r::Route{q.keys.stream()}, argv,
        [this, &q, why, owner, listed_idle, then, owners](Result<r::Reply> res) {
            if (stopped_) return;
            if (!res.ok() || !res->is_array() || res->size() == 0) {
                if (why == Why::dead && res.ok() && res->is_array()) {
                    forget(q, owner, then);  // a dead server that owns nothing more
                } else if (then) {
                    then();
                }
                return;
            }
            std::vector<std::string> ids;
            for (const auto& p : res->elements()) {
                if (!p.is_array() || p.size() < 4) continue;
                auto id = p[0].as_string();
                if (!id || hooks_.is_running(q, *id)) continue;
                if (owners) {
                    auto holder = p[1].as_string();
                    if (!holder || !owners->count(*holder)) continue;
                }
                if (!claiming_.emplace(q.index, std::string(*id)).second) continue;
                ids.emplace_back(*id);
            }
            if (ids.empty()) {
                if (then) then();
                return;
            }
            bool free = slots_.free() > 0;
            auto need = why == Why::idle ? listed_idle : min_idle(why);
            take(q, why, owner, need, std::move(ids), then);
            if (!free && hooks_.need_slots) hooks_.need_slots();
        });
}

void Reclaimer::take(QueueContext& q, Why why, std::string owner, std::int64_t need,
                     std::vector<std::string> ids, Done then) {
    if (stopped_) return;
    if (slots_.free() == 0) {
        slots_.wait(
            [this, &q, why, owner, need, ids, then] { take(q, why, owner, need, ids, then); });
        return;
    }
    auto n = slots_.take(static_cast<unsigned>(ids.size()));
    for (auto i = n; i < ids.size(); ++i) claiming_.erase({q.index, ids[i]});
    ids.resize(n);
    auto call =
        calls::claim(q.keys, ctx_.consumer, why, owner, need, ctx_.opts.dead_after.count(), ids);
    r::run_script(ctx_.topo, std::move(call), [this, &q, ids, n, then](Result<r::Reply> res) {
        unsigned dispatched = 0;
        if (res.ok() && res->is_array()) {
            auto source = std::make_shared<const r::Reply>(std::move(*res));
            // {entry, deliveries, entry, deliveries, ...}
            for (std::size_t i = 0; i + 1 < source->size(); i += 2) {
                auto entry = r::parse_entry((*source)[i]);
                auto deliveries = (*source)[i + 1].as_integer();
                if (!entry || !deliveries) continue;
                if (sink_.accept(q, source, *entry, static_cast<std::uint64_t>(*deliveries))) {
                    ++dispatched;
                }
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
        for (const auto& id : ids) claiming_.erase({q.index, id});
        slots_.give(n - dispatched);
        if (hooks_.changed) hooks_.changed();
        // Before `then`: during recovery the reader has not started, so this
        // reads nothing; afterwards it refills the slots this claim left.
        if (hooks_.claimed) hooks_.claimed();
        if (then) then();
    });
}

// A dead server that owns nothing more leaves the group and the registry -- unless it beat again,
// read something meanwhile (a restart under the same name) or still gets work (a live server whose
// beat only looks stale), which the script checks in the same step as the delete
// (lib/scripts/forget.lua) by the consumer's idle: since its last delivery or claim (Redis 7.0),
// since its last read attempt (7.2+, where a reading server with free slots touches it every
// read_block). dead_after + read_block covers both.
void Reclaimer::forget(QueueContext& q, const std::string& consumer, Done done) {
    auto idle = ctx_.opts.dead_after.count() + ctx_.opts.read_block.count();
    r::run_script(ctx_.topo, calls::forget(q.keys, consumer, ctx_.opts.dead_after.count(), idle),
                  [done = std::move(done)](Result<r::Reply>) {
                      if (done) done();
                  });
}

}  // namespace streamfleet::detail
