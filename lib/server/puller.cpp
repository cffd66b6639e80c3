// Puller: pulled queues' tasks handed to pop() callers and ended by settle() (see puller.hpp).
#include "server/puller.hpp"

#include <algorithm>
#include <limits>

#include "core/log.hpp"
#include "redis/streams.hpp"

namespace streamfleet::detail {

namespace r = redis;

namespace {

// How often held tasks are looked at for kHoldMs.
constexpr std::uint64_t kSweepMs = 250;

}  // namespace

Puller::Puller(ServerContext& ctx, Queues queues, Slots& slots, TaskSink& sink, Hooks hooks)
    : ctx_(ctx),
      slots_(slots),
      sink_(sink),
      hooks_(std::move(hooks)),
      lines_(queues.size()),
      backoff_(ctx.random),
      waiters_timer_(ctx.rt.loop()),
      sweep_timer_(ctx.rt.loop()) {
    for (auto& q : queues) {
        if (!q.pulled) continue;
        auto l = std::make_unique<Line>();
        l->queue = &q;
        l->retry = std::make_unique<Timer>(ctx.rt.loop());
        lines_[q.index] = std::move(l);
    }
}

void Puller::pop(QueueContext& q, std::int64_t wait_ms, std::int64_t lease_ms,
                 Server::PopCallback done) {
    auto& l = line(q);
    Waiter w{ctx_.clock.now_ms() + std::max(wait_ms, kMinWaitMs), lease_ms, std::move(done)};
    if (stopped_) {
        w.done(std::nullopt);
        return;
    }
    if (!l.held.empty()) {
        auto job = std::move(l.held.front().job);
        l.held.pop_front();
        hand_over(l, std::move(w), std::move(job));
        return;
    }
    l.waiters.push_back(std::move(w));
    expire_waiters();  // arms the timer for the earliest deadline
    read(l);
}

bool Puller::claim(const QueueContext& q, std::string_view task_id) {
    auto& l = line(q);
    std::lock_guard lock(l.m);
    auto it = l.ids.find(std::string(task_id));
    if (it == l.ids.end() || it->second) return false;
    it->second = true;
    return true;
}

bool Puller::unclaim(Line& l, const std::string& id) {
    std::lock_guard lock(l.m);
    auto it = l.ids.find(id);
    if (it != l.ids.end() && it->second) return false;
    if (it != l.ids.end()) l.ids.erase(it);
    return true;
}

bool Puller::settle(QueueContext& q, std::string_view task_id, Outcome outcome) {
    auto& l = line(q);
    auto it = l.popped.find(std::string(task_id));
    if (it == l.popped.end()) return false;
    {
        std::lock_guard lock(l.m);
        l.ids.erase(it->first);
    }
    record_run(it->second);
    auto job = std::move(it->second.job);
    l.popped.erase(it);
    end(job, std::move(outcome));
    return true;
}

void Puller::deliver(std::shared_ptr<Job> job) {
    const auto& m = job->msg;
    if (stopped_ || !m.state || (m.retries == 0 && job->ctx.deliveries == 1)) {
        place(std::move(job));
        return;
    }
    // A retry, return or redelivery of a task canceled meanwhile must never reach a pop; the
    // cancel is in its record (cancel.lua) even when no server heard the request (the one that
    // popped it was killed). Asked as a handler run asks (Dispatcher::canceled_in_record); a
    // failed check hands the task out: at-least-once comes first.
    auto key = job->queue->keys.task(m.id);
    std::vector<std::string_view> argv{"HEXISTS", key, "cancel"};
    ++line(*job->queue).checking;
    ctx_.topo.send(r::Route{key}, argv, [this, job](Result<r::Reply> res) {
        --line(*job->queue).checking;
        bool in_record = res.ok() && res->as_integer().value_or(0) == 1;
        if (in_record || job->canceled) {
            // job->canceled: the request came while the record was read, and forget() found
            // nothing to end then.
            job->canceled_in_record = true;
            end(job, Outcome::failure("canceled"));
            return;
        }
        place(job);
    });
}

void Puller::place(std::shared_ptr<Job> job) {
    auto& l = line(*job->queue);
    if (stopped_) {
        job->interrupted = true;
        end(job, Outcome::failure("server stopping"));
        return;
    }
    while (!l.waiters.empty()) {
        auto w = std::move(l.waiters.front());
        l.waiters.pop_front();
        if (w.deadline_ms < ctx_.clock.now_ms()) {
            w.done(std::nullopt);
            continue;
        }
        hand_over(l, std::move(w), std::move(job));
        return;
    }
    l.held.push_back(Held{std::move(job), ctx_.clock.now_ms()});
    arm_sweep();
}

void Puller::hand_over(Line& l, Waiter w, std::shared_ptr<Job> job) {
    // The task's own run timeout is its lease when it has one (the ttr it was added with).
    auto lease_ms =
        job->msg.timeout_ms > 0 ? static_cast<std::int64_t>(job->msg.timeout_ms) : w.lease_ms;
    const auto& id = job->msg.id;
    bool again = false;
    {
        std::lock_guard lock(l.m);
        again = !l.ids.emplace(id, false).second;
    }
    if (again) {
        // The same task delivered twice (a reclaimed duplicate) while its first run is popped:
        // that run stands (it may be settled already), this delivery is void. The pop waits on.
        job->interrupted = true;
        l.waiters.push_front(std::move(w));
        end(job, Outcome::failure("delivered again while popped"));
        expire_waiters();  // keeps its deadline armed
        return;
    }
    auto task = view(*job, lease_ms);
    if (auto* m = ctx_.counters.of(l.queue->index))
        m->start_latency_seconds.record(start_latency(ctx_.clock, job->msg));
    Popped p{job, std::make_unique<Timer>(ctx_.rt.loop()), std::chrono::steady_clock::now()};
    p.lease->start(delay_ms(lease_ms), [this, lp = &l, id, j = job.get(), lease_ms] {
        auto it = lp->popped.find(id);
        if (it == lp->popped.end() || it->second.job.get() != j) return;
        if (!unclaim(*lp, id)) return;  // settled just in time: that settle is on its way
        record_run(it->second);
        auto held = std::move(it->second.job);
        lp->popped.erase(it);  // destroys this timer: its trampoline moved this callback out
        end(held, Outcome::failure("not settled within its lease of " + std::to_string(lease_ms) +
                                   " ms"));
    });
    l.popped.emplace(id, std::move(p));
    w.done(std::move(task));
}

PoppedTask Puller::view(const Job& job, std::int64_t lease_ms) const {
    PoppedTask t;
    t.id = job.msg.id;
    t.queue = job.queue->keys.queue();
    t.data = job.msg.data;
    t.retries = job.msg.retries;
    t.deliveries = job.ctx.deliveries;
    t.lease = std::chrono::milliseconds(lease_ms);
    t.enqueued_ms = job.msg.enqueued_ts;
    if (job.msg.expires_ts != 0) {
        t.deadline =
            std::chrono::system_clock::time_point(std::chrono::milliseconds(job.msg.expires_ts));
    }
    return t;
}

// Asks for as many entries as pops wait (the free slots permitting), blocking no longer than
// the one with the least time left.
void Puller::read(Line& l) {
    if (stopped_ || l.reading || l.retry->active()) return;
    auto waiting = l.waiters.size() > l.checking ? l.waiters.size() - l.checking : 0;
    if (waiting == 0) return;
    unsigned reserved = slots_.take(static_cast<unsigned>(std::min<std::size_t>(waiting, 1024)));
    if (reserved == 0) return;  // every slot is held; a settle frees one
    if (!l.conn) l.conn = ctx_.topo.dedicated(r::Route{l.queue->keys.stream()}, "puller");
    std::vector<std::string> cmd{"XREADGROUP", "GROUP", std::string(kServerGroup), ctx_.consumer,
                                 "COUNT",      std::to_string(reserved)};
    auto now = ctx_.clock.now_ms();
    std::int64_t block = ctx_.opts.read_block.count();
    for (const auto& w : l.waiters) block = std::min(block, w.deadline_ms - now);
    // 0 would block for ever; a pop that may not wait still gets what is there.
    block = std::max<std::int64_t>(block, 1);
    cmd.insert(cmd.end(), {"BLOCK", std::to_string(block)});
    r::CommandOptions o{.timeout = std::chrono::milliseconds(0),
                        .block = std::chrono::milliseconds(block)};
    cmd.insert(cmd.end(), {"STREAMS", l.queue->keys.stream(), ">"});
    std::vector<std::string_view> argv(cmd.begin(), cmd.end());
    l.reading = true;
    l.conn->send(
        argv,
        [this, lp = &l, reserved](Result<r::Reply> res) { on_read(*lp, std::move(res), reserved); },
        o);
}

void Puller::on_read(Line& l, Result<r::Reply> res, unsigned reserved) {
    l.reading = false;
    if (!res.ok()) {
        slots_.give(reserved);
        const auto& e = res.error();
        if (e.is(errc::closed) || stopped_) return;
        log_limited(spdlog::level::warn, "server " + ctx_.consumer + ": pull",
                    "server {}: reading pulled queue {} failed: {}", ctx_.consumer,
                    l.queue->keys.queue(), e.message());
        if (r::is_redirect(e) && l.conn) {
            l.conn->close();
            l.conn.reset();
        }
        auto again = [this, lp = &l] {
            lp->retry->start(static_cast<std::uint64_t>(backoff_.failed().count()),
                             [this, lp] { read(*lp); });
        };
        if (e.is(reply_errc::nogroup)) {
            hooks_.recreate_groups(again);
        } else {
            again();
        }
        return;
    }
    backoff_.succeeded();
    unsigned used = 0;
    auto source = std::make_shared<const r::Reply>(std::move(*res));
    r::for_each_entry(*source, [&](std::string_view, const r::StreamEntry& e) {
        ++used;
        // Accepted entries come back through deliver(); the others free their slot here.
        if (!sink_.accept(*l.queue, source, e, 1)) slots_.give(1);
    });
    sink_.dispatch();
    slots_.give(reserved - std::min(used, reserved));
    expire_waiters();
    read(l);
}

// Answers pops whose wait is over, and arms the timer for the next deadline.
void Puller::expire_waiters() {
    auto now = ctx_.clock.now_ms();
    auto next = std::numeric_limits<std::int64_t>::max();
    for (auto& lp : lines_) {
        if (!lp) continue;
        auto& ws = lp->waiters;
        for (auto it = ws.begin(); it != ws.end();) {
            if (it->deadline_ms <= now) {
                auto done = std::move(it->done);
                it = ws.erase(it);
                done(std::nullopt);
            } else {
                next = std::min(next, it->deadline_ms);
                ++it;
            }
        }
    }
    if (next == std::numeric_limits<std::int64_t>::max()) {
        waiters_timer_.stop();
    } else {
        waiters_timer_.start(delay_ms(next - now, 1), [this] { expire_waiters(); });
    }
}

void Puller::arm_sweep() {
    if (!sweep_timer_.active() && !stopped_) sweep_timer_.start(kSweepMs, [this] { sweep(); });
}

// Delivered tasks no pop took within kHoldMs go back to their stream, unspent.
void Puller::sweep() {
    auto cutoff = ctx_.clock.now_ms() - kHoldMs;
    bool more = false;
    for (auto& lp : lines_) {
        if (!lp) continue;
        while (!lp->held.empty() && lp->held.front().since_ms <= cutoff) {
            auto job = std::move(lp->held.front().job);
            lp->held.pop_front();
            job->interrupted = true;
            end(job, Outcome::failure("no pop took it"));
        }
        more = more || !lp->held.empty();
    }
    if (more) arm_sweep();
}

void Puller::record_run(const Popped& p) {
    if (auto* m = ctx_.counters.of(p.job->queue->index)) {
        m->handler_seconds.record(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - p.at).count());
    }
}

void Puller::end(const std::shared_ptr<Job>& job, Outcome outcome) {
    hooks_.settle(job, std::move(outcome));
    kick();
}

void Puller::kick() {
    for (auto& lp : lines_) {
        if (lp) read(*lp);
    }
}

bool Puller::forget(const std::shared_ptr<Job>& job) {
    auto& l = line(*job->queue);
    auto it = l.popped.find(job->msg.id);
    if (it != l.popped.end() && it->second.job == job) {
        {
            std::lock_guard lock(l.m);
            l.ids.erase(it->first);  // a settle on its way finds it gone (it ends as canceled)
        }
        l.popped.erase(it);
        return true;
    }
    auto h =
        std::find_if(l.held.begin(), l.held.end(), [&](const Held& x) { return x.job == job; });
    if (h == l.held.end()) return false;
    l.held.erase(h);
    return true;
}

void Puller::canceled(const std::shared_ptr<Job>& job) {
    // job->canceled is set: the dispatcher ends it as canceled whatever the outcome says.
    if (forget(job)) end(job, Outcome::failure("canceled"));
}

void Puller::stop() {
    stopped_ = true;
    sweep_timer_.stop();
    waiters_timer_.stop();
    for (auto& lp : lines_) {
        if (!lp) continue;
        lp->retry->stop();
        auto waiters = std::move(lp->waiters);
        lp->waiters.clear();
        for (auto& w : waiters) w.done(std::nullopt);
        auto held = std::move(lp->held);
        lp->held.clear();
        for (auto& h : held) {
            h.job->interrupted = true;
            end(h.job, Outcome::failure("server stopping"));
        }
    }
}

void Puller::interrupt() {
    for (auto& lp : lines_) {
        if (!lp) continue;
        auto popped = std::move(lp->popped);
        lp->popped.clear();
        {
            std::lock_guard lock(lp->m);
            lp->ids.clear();
        }
        for (auto& [_, p] : popped) {
            p.job->interrupted = true;
            end(p.job, Outcome::failure("server stopping"));
        }
    }
}

void Puller::close() {
    stopped_ = true;
    waiters_timer_.close();
    sweep_timer_.close();
    for (auto& lp : lines_) {
        if (!lp) continue;
        lp->retry->close();
        for (auto& [_, p] : lp->popped) p.lease->close();
        if (lp->conn) lp->conn->close();
    }
}

}  // namespace streamfleet::detail
