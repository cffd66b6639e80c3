// Durable writes: send, keep on link failures, resend every 250 ms (see durable_writes.hpp).

#include "server/durable_writes.hpp"

#include "core/log.hpp"
#include "redis/script_runner.hpp"

namespace streamfleet::detail {

namespace r = redis;

namespace {

constexpr std::uint64_t kResendMs = 250;

}  // namespace

DurableWrites::DurableWrites(ServerContext& ctx, std::function<void()> changed)
    : ctx_(ctx), changed_(std::move(changed)), resend_timer_(ctx.rt.loop()) {}

void DurableWrites::write(std::vector<std::string> argv, std::string what) {
    ++outstanding_;
    auto route = argv[1];
    send(std::make_shared<Write>(Write{std::move(route), std::move(argv), std::move(what)}));
}

void DurableWrites::write(ScriptCall call, std::string what, Done then) {
    ++outstanding_;
    auto route = std::string(call.route_key());
    send(std::make_shared<Write>(
        Write{std::move(route), {}, std::move(what), std::move(call), std::move(then)}));
}

void DurableWrites::write(ScriptCall call, std::string what,
                          std::function<void(const r::Reply&)> then) {
    ++outstanding_;
    auto route = std::string(call.route_key());
    auto w = std::make_shared<Write>(Write{std::move(route), {}, std::move(what), std::move(call)});
    w->then_reply = std::move(then);
    send(std::move(w));
}

void DurableWrites::resend() {
    auto batch = std::move(kept_);
    kept_.clear();
    for (auto& w : batch) send(w);
}

void DurableWrites::stop() {
    stopped_ = true;
    resend_timer_.close();
}

// While Redis is unreachable a write waits here instead of being dropped: a finished task whose
// ack was merely delayed must not run again. A refused write leaves its entry pending, so the
// task is delivered again: it is not lost either.
void DurableWrites::send(std::shared_ptr<Write> w) {
    auto done = [this, w](Result<r::Reply> res) {
        if (!res.ok()) {
            const auto& e = res.error();
            if (e.is_transient() && !stopped_) {
                kept_.push_back(w);
                if (kept_.size() == 1) {
                    log().warn(
                        "server {}: Redis unreachable; keeping outcomes until it returns: {}",
                        ctx_.consumer, e.message());
                }
                if (!resend_timer_.active()) resend_timer_.start(kResendMs, [this] { resend(); });
                return;  // still outstanding
            }
            log().error("server {}: {} failed: {}", ctx_.consumer, w->what, e.message());
        } else if (w->then) {
            w->then();  // before the count drops, so outstanding() never reads 0 in between
        } else if (w->then_reply) {
            w->then_reply(*res);
        }
        --outstanding_;
        if (changed_) changed_();
    };
    if (w->script) {
        r::run_script(ctx_.topo, *w->script, std::move(done));
        return;
    }
    std::vector<std::string_view> argv(w->argv.begin(), w->argv.end());
    ctx_.topo.send(r::Route{w->route}, argv, std::move(done));
}

}  // namespace streamfleet::detail
