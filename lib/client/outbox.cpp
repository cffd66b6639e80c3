// Outbox: sends accepted tasks in order until Redis confirms each, resending after outages.
#include "client/outbox.hpp"

#include "client/encoder.hpp"
#include "core/log.hpp"

namespace streamfleet::detail::client {

namespace {
constexpr std::uint64_t kResendMs = 500;
}  // namespace

Outbox::Outbox(ClientContext& ctx, Spool* spool, Confirmed confirmed)
    : ctx_(ctx),
      spool_(spool),
      confirmed_(std::move(confirmed)),
      resend_(std::make_unique<Timer>(ctx.rt.loop())),
      flush_(std::make_unique<TurnEnd>(ctx.rt.loop(), [this] {
          auto n = std::exchange(confirmed_n_, 0);
          auto bytes = std::exchange(confirmed_bytes_, 0);
          if (n > 0) confirmed_(n, bytes);
      })) {}

void Outbox::submit(std::vector<Outgoing>& batch) {
    std::vector<Outgoing*> fresh;
    fresh.reserve(batch.size());
    for (auto& o : batch) {
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
        if (o->form != Outgoing::Form::batched) {
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
    auto cmd = command_for(tasks, by_body, scratch_);
    redis::Route route{route_key(*tasks.front())};
    ctx_.topo.send_encoded(
        route, cmd, [this, tasks = std::move(tasks), by_body](Result<redis::Reply> res) mutable {
            on_reply(tasks, by_body, std::move(res));
        });
}

void Outbox::on_reply(std::vector<Outgoing*>& tasks, bool by_body, Result<redis::Reply> res) {
    if (res.ok()) {
        for (auto* o : tasks) {
            o->done = true;
            if (spool_) spool_->confirm(o->id);
            confirmed_n_ += 1;
            confirmed_bytes_ += o->bytes;
        }
        while (!tasks_.empty() && tasks_.front().done) tasks_.pop_front();
        if (flush_) flush_->arm();
        return;
    }
    if (!by_body && res.error().is(reply_errc::noscript)) {
        // This node has not seen the script yet (or restarted empty): EVAL it
        // once, which caches it there for the EVALSHAs after.
        send(std::move(tasks), true);
        return;
    }
    for (auto* o : tasks) o->sent = false;
    if (!link_down_) {
        link_down_ = true;
        log().warn("client {}: Redis unreachable, buffering tasks: {}", ctx_.id,
                   res.error().message());
    }
    if (!stopping_ && !resend_->active()) resend_->start(kResendMs, [this] { resume(); });
}

void Outbox::link_up() {
    if (link_down_) resume();
}

void Outbox::resume() {
    if (stopping_) return;
    link_down_ = false;
    std::vector<Outgoing*> unsent;
    for (auto& o : tasks_) {
        if (!o.sent && !o.done) unsent.push_back(&o);
    }
    transmit(unsent);
}

void Outbox::stop() {
    stopping_ = true;
    if (resend_) resend_->stop();
}

void Outbox::close() {
    stop();
    // Whoever waits for room or for the drain hears of the last confirmations.
    if (confirmed_n_ > 0) {
        confirmed_(std::exchange(confirmed_n_, 0), std::exchange(confirmed_bytes_, 0));
    }
    resend_.reset();
    flush_.reset();
}

}  // namespace streamfleet::detail::client
