// Outbox: sends accepted tasks in order until Redis confirms or refuses each, resending after
// outages.
#include "client/outbox.hpp"

#include <algorithm>
#include <utility>

#include "client/encoder.hpp"
#include "core/log.hpp"

namespace streamfleet::detail::client {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

namespace {
constexpr auto kResend = 500ms;
constexpr auto kOomFirst = 500ms;
constexpr auto kOomMax = 5000ms;
constexpr std::uint64_t kTidyMs = 1000;
}  // namespace

Outbox::Outbox(ClientContext& ctx, Spool* spool, Confirmed confirmed, RefusedFn refused)
    : ctx_(ctx),
      spool_(spool),
      confirmed_(std::move(confirmed)),
      refused_(std::move(refused)),
      resend_(std::make_unique<Timer>(ctx.rt.loop())),
      flush_(std::make_unique<TurnEnd>(ctx.rt.loop(), [this] {
          auto n = std::exchange(confirmed_n_, 0);
          auto bytes = std::exchange(confirmed_bytes_, 0);
          if (n > 0) confirmed_(n, bytes);
      })),
      wait_(ctx.rt, ctx.topo, ctx.options.wait_replicas.replicas,
            ctx.options.wait_replicas.timeout),
      tidy_(std::make_unique<Timer>(ctx.rt.loop())) {}

void Outbox::submit(std::vector<Outgoing>& batch) {
    std::vector<Outgoing*> fresh;
    fresh.reserve(batch.size());
    for (auto& o : batch) {
        o.seq = o.order = next_seq_++;
        tasks_.push_back(std::move(o));
        fresh.push_back(&tasks_.back());
    }
    if (!link_down_) transmit(fresh);
}

// Sends `tasks` in order: each plain XADD or script call on its own, and each
// run of batched ones (one stream) as one scripts::enqueue call.
void Outbox::transmit(const std::vector<Outgoing*>& tasks) {
    std::vector<Outgoing*> run;
    std::size_t run_bytes = 0;
    auto flush_run = [&] {
        if (!run.empty()) send(std::move(run), false);
        run.clear();
        run_bytes = 0;
    };
    for (Outgoing* o : tasks) {
        if (o->form == Outgoing::Form::script || o->solo) {
            flush_run();
            send(std::vector<Outgoing*>{o}, false);
            continue;
        }
        if (!run.empty() && !joins_batch(*run.front(), run.size(), run_bytes, *o)) flush_run();
        run.push_back(o);
        run_bytes += o->cmd.size();
    }
    flush_run();
}

// One command carrying `tasks`: all confirmed by its reply, or all unsent
// again (and resent in outbox order once the link is back).
void Outbox::send(std::vector<Outgoing*> tasks, bool by_body) {
    for (auto* o : tasks) o->sent = true;
    if (const auto& l = tasks.front()->ledger;
        !l.empty() && std::find(ledgers_.begin(), ledgers_.end(), l) == ledgers_.end()) {
        ledgers_.push_back(l);
    }
    // Every task older than the oldest one still waiting has settled: its
    // ledger note may go (tasks leave the deque's front in order, and a
    // renumbered task's number only grows).
    auto cmd = command_for(tasks, by_body, tasks_.front().order, scratch_);
    auto key = route_key(*tasks.front());
    redis::CommandOptions opts;
    opts.replies = replies_for(tasks);
    redis::ReplyCallback cb = [this, tasks = std::move(tasks),
                               by_body](Result<redis::Reply> res) mutable {
        on_reply(tasks, by_body, std::move(res));
    };
    // With wait_replicas, the reply counts only once the WAIT after it answered.
    ctx_.topo.send_encoded(redis::Route{key}, cmd, wait_.wrap(std::string(key), std::move(cb)),
                           opts);
}

// A plain block's EXEC ran every command it queued, and an XADD in it may
// have failed alone (WRONGTYPE). Its task was noted all the same, so it takes
// a new number before it is sent again, or the ledger would skip it; then it
// is refused or held like any refused task, and the others are confirmed.
void Outbox::on_plain_reply(std::vector<Outgoing*>& tasks, const redis::Reply& exec) {
    const bool whole = exec.is_array() && exec.size() == tasks.size() + kPlainExtraReplies - 2;
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        Outgoing* o = tasks[i];
        if (whole && exec[1 + i].is_error()) {
            const auto& text = exec[1 + i].error_text();
            Error e(classify_reply(text), text);
            o->seq = next_seq_++;
            if (e.is(reply_errc::oom)) {
                std::vector<Outgoing*> one{o};
                hold_for_memory(one, e);
            } else {
                refuse(*o, e);
            }
            continue;
        }
        confirm(*o);
    }
    oom_backoff_ = 0ms;
    settled();
}

void Outbox::settled() {
    while (!tasks_.empty() && tasks_.front().done) tasks_.pop_front();
    if (flush_) flush_->arm();
    if (tasks_.empty() && !ledgers_.empty() && tidy_ && !tidy_->active()) {
        tidy_->start(kTidyMs, [this] { tidy_ledgers(); });
    }
}

// Every note below the next number is a settled task's, once none waits; a task taken meanwhile
// leaves the ledgers to its send's floor.
void Outbox::tidy_ledgers() {
    if (stopping_ || !tasks_.empty()) return;
    const auto below = "(" + std::to_string(next_seq_);
    for (auto& l : std::exchange(ledgers_, {})) {
        // Best effort: a note left behind only costs memory until the ledger expires.
        ctx_.topo.send(redis::Route{l}, {"ZREMRANGEBYSCORE", l, "-inf", below},
                       [](Result<redis::Reply>) {});
    }
}

void Outbox::on_reply(std::vector<Outgoing*>& tasks, bool by_body, Result<redis::Reply> res) {
    if (res.ok() && sent_plain(tasks)) {
        on_plain_reply(tasks, *res);
        return;
    }
    if (res.ok()) {
        for (auto* o : tasks) confirm(*o);
        oom_backoff_ = 0ms;
        settled();
        return;
    }
    const Error& e = res.error();
    if (!by_body && e.is(reply_errc::noscript)) {
        // This node has not seen the script yet (or restarted empty): EVAL it
        // once, which caches it there for the EVALSHAs after.
        send(std::move(tasks), true);
        return;
    }
    if (e.is(errc::reply_error) && !e.is_transient()) {
        if (e.is(reply_errc::oom)) {
            hold_for_memory(tasks, e);
        } else if (tasks.size() > 1) {
            // Which task is refused is not known: send each alone. A script
            // that failed part-way has written the tasks before the bad one,
            // so each is in doubt: its resend checks for its record (or
            // ledger note) and adds nothing twice.
            log().debug("client {}: a batch of {} tasks was refused ({}); sending each alone",
                        ctx_.id, tasks.size(), e.message());
            for (auto* o : tasks) {
                o->solo = true;
                o->in_doubt = true;
                send(std::vector<Outgoing*>{o}, by_body);
            }
            return;
        } else {
            refuse(*tasks.front(), e);
        }
        settled();
        return;
    }
    for (auto* o : tasks) {
        o->sent = false;
        o->in_doubt = true;
    }
    if (!link_down_) {
        link_down_ = true;
        log().warn("client {}: Redis unreachable, buffering tasks: {}", ctx_.id, e.message());
    }
    resend_in(kResend);
}

void tell_stored(Outgoing& o, std::exception_ptr why) noexcept {
    auto cb = std::exchange(o.stored, nullptr);
    if (!cb) return;
    try {
        cb(o.id, std::move(why));
    } catch (const std::exception& e) {
        log().error("task {}: its on_stored callback threw: {}", o.id, e.what());
    } catch (...) {
        log().error("task {}: its on_stored callback threw a non-standard exception", o.id);
    }
}

// Redis has the task: it leaves the buffer, and whoever waits hears so.
void Outbox::confirm(Outgoing& o) {
    settle(o);
    if (o.handle) o.handle->stored = true;
    if (o.stored) tell_stored(o, nullptr);
}

// The task leaves the buffer (and the spool): Redis has it, or refused it.
void Outbox::settle(Outgoing& o) {
    o.done = true;
    if (spool_) spool_->confirm(o.id);
    confirmed_n_ += 1;
    confirmed_bytes_ += o.bytes;
}

void Outbox::refuse(Outgoing& o, const Error& why) {
    settle(o);
    if (refused_) refused_(o, why);
}

// OOM: memory may come back (workers consume and delete entries), so the
// tasks wait and are sent again with backoff, each until it has been refused
// for oom_patience. Only these tasks wait: the link is not marked down.
void Outbox::hold_for_memory(std::vector<Outgoing*>& tasks, const Error& why) {
    auto now = SteadyClock::now();
    oom_backoff_ = oom_backoff_.count() == 0 ? kOomFirst : std::min(oom_backoff_ * 2, kOomMax);
    bool held = false;
    for (auto* o : tasks) {
        if (o->oom_since == SteadyClock::time_point{}) o->oom_since = now;
        if (now - o->oom_since >= ctx_.options.oom_patience) {
            refuse(*o, why.with_context("refused for lack of memory for " +
                                        std::to_string(ctx_.options.oom_patience.count()) +
                                        " ms (oom_patience)"));
            continue;
        }
        o->sent = false;
        o->hold_until = now + oom_backoff_;
        held = true;
    }
    if (held) {
        log().warn("client {}: Redis is out of memory; {} task(s) wait {} ms: {}", ctx_.id,
                   tasks.size(), oom_backoff_.count(), why.message());
        resend_in(oom_backoff_);
    }
}

// Arms the resend timer unless it fires sooner already.
void Outbox::resend_in(SteadyClock::duration after) {
    if (stopping_) return;
    auto due = SteadyClock::now() + after;
    if (resend_->active() && resend_due_ <= due) return;
    resend_due_ = due;
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(after).count();
    resend_->start(static_cast<std::uint64_t>(std::max<std::int64_t>(ms, 1)), [this] { resume(); });
}

void Outbox::link_up() {
    if (link_down_) resume();
}

void Outbox::resume() {
    if (stopping_) return;
    link_down_ = false;
    auto now = SteadyClock::now();
    auto next_hold = SteadyClock::time_point::max();
    std::vector<Outgoing*> unsent;
    for (auto& o : tasks_) {
        if (o.sent || o.done) continue;
        if (o.hold_until > now) {
            next_hold = std::min(next_hold, o.hold_until);
            continue;
        }
        unsent.push_back(&o);
    }
    if (next_hold != SteadyClock::time_point::max()) resend_in(next_hold - now);
    transmit(unsent);
}

void Outbox::stop() {
    stopping_ = true;
    if (resend_) resend_->stop();
    if (tidy_) tidy_->stop();
}

void Outbox::close() {
    stop();
    // Whoever waits in enqueue_confirmed() learns that no answer will come.
    for (auto& o : tasks_) {
        if (o.stored && !o.done) {
            tell_stored(o, std::make_exception_ptr(ClosedError(
                               "client " + ctx_.id + " closed before Redis confirmed task " + o.id)));
        }
    }
    // Whoever waits for room or for the drain hears of the last confirmations.
    if (confirmed_n_ > 0) {
        confirmed_(std::exchange(confirmed_n_, 0), std::exchange(confirmed_bytes_, 0));
    }
    resend_.reset();
    tidy_.reset();
    flush_.reset();
    wait_.close();
}

}  // namespace streamfleet::detail::client
