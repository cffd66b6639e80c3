// Control listener: blocking XREADs of nudges and cancels, one connection per shard group.

#include "server/control_listener.hpp"

#include <algorithm>
#include <charconv>

#include "core/log.hpp"
#include "redis/streams.hpp"

namespace streamfleet::detail {

namespace r = redis;
using namespace std::chrono_literals;

namespace {

// Cancels from a few seconds back are replayed: harmless (they name tasks to stop), and no
// request falls between start and the first read.
constexpr std::int64_t kCancelReplayMs = 5000;

// While a listening link is not ready: how often the topology is asked where its streams live.
constexpr std::uint64_t kRelinkPollMs = 100;

}  // namespace

ControlListener::ControlListener(ServerContext& ctx, Queues queues, Hooks hooks)
    : ctx_(ctx),
      queues_(queues),
      hooks_(std::move(hooks)),
      cursors_(queues.size()),
      backoff_(ctx.random),
      retry_timer_(ctx.rt.loop()) {
    auto since = std::to_string(std::max<std::int64_t>(ctx.clock.now_ms() - kCancelReplayMs, 0));
    for (auto& c : cursors_) c.cancel_id = since;
}

void ControlListener::start() {
    ctx_.topo.when_ready([this] {
        if (stopped_ || !groups_.empty()) return;
        for (auto& queues : shard_groups(ctx_.topo, queues_, &QueueKeys::nudge)) {
            groups_.push_back(std::make_unique<Group>(Group{std::move(queues), nullptr, false}));
        }
        for (auto& g : groups_) open(*g);
        tick();
    });
}

// A connection of its own to the node holding the group's streams; called again when they
// move to another node.
void ControlListener::open(Group& g) {
    if (g.conn) g.conn->close();
    g.conn = ctx_.topo.dedicated(r::Route{g.queues.front()->keys.nudge()}, "nudges");
    // Back from an outage: listen now rather than at the end of a long backoff.
    g.conn->on_state([this, gp = &g, conn = g.conn.get()](r::ConnState st, const Error*) {
        if (st != r::ConnState::ready || stopped_ || conn != gp->conn.get()) return;
        backoff_.succeeded();
        if (retry_timer_.active()) {
            retry_timer_.stop();
            tick();
        }
    });
}

void ControlListener::stop() {
    stopped_ = true;
    retry_timer_.close();
    for (auto& g : groups_) g->conn->close();
}

void ControlListener::tick() {
    for (auto& g : groups_) {
        if (!g->listening) listen(*g);
    }
}

// Starting from 0-0 replays the last ~100 nudges once, which only re-arms timers; the promote
// script decides what is really due.
void ControlListener::listen(Group& g) {
    if (stopped_) return;
    if (r::moved_away(ctx_.topo, g.queues.front()->keys.nudge(), *g.conn)) {
        open(g);
    } else if (g.conn->state() != r::ConnState::ready) {
        // Not queued on a link whose node may be gone: the ready edge listens, or a short poll
        // that finds the promoted replica in the map (looking costs no command).
        if (!retry_timer_.active()) retry_timer_.start(kRelinkPollMs, [this] { tick(); });
        return;
    }
    g.listening = true;
    auto block_s = std::to_string(ctx_.opts.read_block.count());
    std::vector<std::string_view> argv{"XREAD", "COUNT", "128", "BLOCK", block_s, "STREAMS"};
    for (auto* q : g.queues) argv.push_back(q->keys.nudge());
    for (auto* q : g.queues) argv.push_back(q->keys.cancels());
    for (auto* q : g.queues) argv.push_back(cursors_[q->index].nudge_id);
    for (auto* q : g.queues) argv.push_back(cursors_[q->index].cancel_id);
    g.conn->send(
        argv,
        [this, gp = &g](Result<r::Reply> res) {
            gp->listening = false;
            if (stopped_) return;
            if (!res.ok()) {
                if (res.error().is(errc::closed)) return;
                if (r::is_redirect(res.error())) {
                    r::relearn(ctx_.topo, std::string(gp->queues.front()->keys.nudge()), [] {});
                }
                log_limited(spdlog::level::debug, "server " + ctx_.consumer + ": nudge read",
                            "server {}: nudge read failed: {}", ctx_.consumer,
                            res.error().message());
                // Refused reads fail the same way each time: back off, never spin.
                if (!retry_timer_.active()) {
                    retry_timer_.start(static_cast<std::uint64_t>(backoff_.failed().count()),
                                       [this] { tick(); });
                }
                return;
            }
            backoff_.succeeded();
            r::for_each_entry(*res, [&](std::string_view stream, const r::StreamEntry& e) {
                for (auto* q : gp->queues) on_entry(*q, stream, e.id, e.fields);
            });
            listen(*gp);
        },
        r::CommandOptions{.timeout = 0ms, .block = ctx_.opts.read_block});
}

void ControlListener::on_entry(
    QueueContext& q, std::string_view stream, std::string_view id,
    const std::vector<std::pair<std::string_view, std::string_view>>& fields) {
    auto& cursor = cursors_[q.index];
    if (stream == q.keys.cancels()) {
        cursor.cancel_id = std::string(id);
        for (const auto& [f, v] : fields) {
            if (f == "id" && hooks_.cancel) hooks_.cancel(q, v);
        }
        return;
    }
    if (stream != q.keys.nudge()) return;
    cursor.nudge_id = std::string(id);
    for (const auto& [f, v] : fields) {
        std::int64_t due = 0;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), due);
        if (f == "due" && ec == std::errc() && p == v.data() + v.size() && hooks_.nudge) {
            hooks_.nudge(q, due);
        }
    }
}

}  // namespace streamfleet::detail
