// Durable writes: send, keep while the failure may pass, resend with backoff (see
// durable_writes.hpp).

#include "server/durable_writes.hpp"

#include <chrono>

#include "core/backoff.hpp"
#include "core/log.hpp"
#include "redis/script_runner.hpp"

namespace streamfleet::detail {

namespace r = redis;

namespace {

constexpr std::chrono::milliseconds kResendMin{100};
constexpr std::chrono::milliseconds kResendMax{5'000};
constexpr std::int64_t kLogEveryMs = 5'000;

}  // namespace

DurableWrites::DurableWrites(ServerContext& ctx, std::function<void()> changed)
    : ctx_(ctx),
      changed_(std::move(changed)),
      resend_timer_(ctx.rt.loop()),
      wait_(ctx.rt, ctx.topo, ctx.opts.wait_replicas.replicas, ctx.opts.wait_replicas.timeout) {}

bool DurableWrites::worth_resending(const Error& e) noexcept {
    return e.is_transient() || e.is(reply_errc::oom);
}

void DurableWrites::write(std::vector<std::string> argv, std::string what, Done then,
                          Done failed) {
    ++outstanding_;
    auto route = argv[1];
    send(std::make_shared<Write>(Write{std::move(route), std::move(argv), std::move(what), {},
                                       std::move(then), std::move(failed)}));
}

void DurableWrites::write(ScriptCall call, std::string what, Done then, Done failed) {
    ++outstanding_;
    auto route = std::string(call.route_key());
    send(std::make_shared<Write>(Write{std::move(route), {}, std::move(what), std::move(call),
                                       std::move(then), std::move(failed)}));
}

void DurableWrites::write(r::Block block, std::string what, Done then, Done failed) {
    ++outstanding_;
    auto route = block.route();
    auto w = std::make_shared<Write>(Write{std::move(route), {}, std::move(what), {},
                                           std::move(then), std::move(failed)});
    w->block = std::move(block);
    send(std::move(w));
}

void DurableWrites::write(ScriptCall call, std::string what,
                          std::function<void(const r::Reply&)> then, Done failed) {
    ++outstanding_;
    auto route = std::string(call.route_key());
    auto w = std::make_shared<Write>(Write{std::move(route), {}, std::move(what), std::move(call),
                                           {}, std::move(failed)});
    w->then_reply = std::move(then);
    send(std::move(w));
}

void DurableWrites::resend() {
    if (stopped_) return;
    resend_timer_.stop();
    auto batch = std::move(kept_);
    kept_.clear();
    for (auto& w : batch) send(w);
}

void DurableWrites::stop() {
    stopped_ = true;
    resend_timer_.close();
    wait_.close();
}

// While the write cannot get in it waits here instead of being dropped: a finished task whose
// outcome was merely delayed must neither lose it nor run again. Its entry stays pending meanwhile
// (the outcome writer keeps its lease), so even a write lost with this server is not a lost task.
void DurableWrites::send(std::shared_ptr<Write> w) {
    auto done = [this, w](Result<r::Reply> res) {
        if (!res.ok()) {
            const auto& e = res.error();
            if (stopped_) {
                // Shutdown gave up waiting: the entry stays pending and is delivered again.
            } else if (worth_resending(e)) {
                keep(w, e);
                return;  // still outstanding
            } else {
                give_up(*w, e);
            }
        } else {
            attempt_ = 0;
            // before the count drops, so outstanding() never reads 0 in between
            if (w->then) {
                w->then();
            } else if (w->then_reply) {
                w->then_reply(*res);
            }
        }
        --outstanding_;
        if (changed_) changed_();
    };
    // A write confirmed only by its replicas, when asked: the EVAL a NOSCRIPT
    // sends is waited for as well (ReplicaWait waits again behind it).
    auto cb = wait_.wrap(w->route, std::move(done));
    if (w->script) {
        r::run_script(ctx_.topo, *w->script, std::move(cb));
        return;
    }
    if (w->block) {
        ctx_.topo.send_encoded(r::Route{w->route}, w->block->resp(), std::move(cb),
                               w->block->options());
        return;
    }
    std::vector<std::string_view> argv(w->argv.begin(), w->argv.end());
    ctx_.topo.send(r::Route{w->route}, argv, std::move(cb));
}

void DurableWrites::keep(std::shared_ptr<Write> w, const Error& e) {
    kept_.push_back(std::move(w));
    std::size_t quiet = 0;
    if (may_log(e, quiet)) {
        log().warn(
            "server {}: outcome writes fail ({} since the last such line, {} waiting); the "
            "entries stay pending and leased, the writes are retried with backoff: {}",
            ctx_.consumer, quiet + 1, kept_.size(), e.message());
    }
    if (resend_timer_.active()) return;
    auto delay = reconnect_delay(attempt_, kResendMin, kResendMax, ctx_.random.next());
    if (attempt_ < 32) ++attempt_;
    resend_timer_.start(static_cast<std::uint64_t>(delay.count()), [this] { resend(); });
}

void DurableWrites::give_up(const Write& w, const Error& e) {
    std::size_t quiet = 0;
    if (may_log(e, quiet)) {
        log().error(
            "server {}: Redis refused {} ({} refusal(s) of this kind since the last such line); "
            "its task stays pending and will be delivered again: {}",
            ctx_.consumer, w.what, quiet + 1, e.message());
    }
    if (w.failed) w.failed();
}

bool DurableWrites::may_log(const Error& e, std::size_t& quiet) {
    auto& win = log_windows_[{e.code().category().name(), e.code().value()}];
    auto now = ctx_.clock.now_ms();
    if (win.last_ms != 0 && now - win.last_ms < kLogEveryMs) {
        ++win.quiet;
        return false;
    }
    quiet = win.quiet;
    win.quiet = 0;
    win.last_ms = now;
    return true;
}

}  // namespace streamfleet::detail
