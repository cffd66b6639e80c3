// Listener: reads this client's notification stream and resolves the tracked task handles.
#include "client/listener.hpp"

#include "core/keys.hpp"
#include "core/log.hpp"
#include "core/script_calls.hpp"
#include "core/wire.hpp"
#include "redis/script_runner.hpp"

namespace streamfleet::detail::client {

using namespace std::chrono_literals;

namespace {

// While the reading link is not ready: how often the topology is asked where the stream lives.
constexpr std::uint64_t kRelinkPollMs = 100;

TaskStatus status_of(NotificationType t) {
    switch (t) {
        case NotificationType::completed:
            return TaskStatus::completed;
        case NotificationType::error:
            return TaskStatus::error;
        case NotificationType::expired:
            return TaskStatus::expired;
        case NotificationType::canceled:
            return TaskStatus::canceled;
    }
    return TaskStatus::error;
}

}  // namespace

Listener::Listener(ClientContext& ctx)
    : ctx_(ctx),
      conn_(ctx.topo.dedicated(redis::Route{ctx.receiver}, "notifications")),
      retry_(std::make_unique<Timer>(ctx.rt.loop())) {}

void Listener::start() {
    create_group([this](bool) { read(); });
    watch();
}

// Back from an outage: read now rather than at the end of a long backoff.
void Listener::watch() {
    conn_->on_state([this, conn = conn_.get()](redis::ConnState st, const Error*) {
        if (st != redis::ConnState::ready || stopping_ || conn != conn_.get()) return;
        backoff_.succeeded();
        backlog_ = true;
        backlog_from_ = "0";
        if (retry_ && retry_->active()) {
            retry_->stop();
            read();
        }
    });
}

void Listener::track(std::shared_ptr<HandleState> handle) {
    auto id = handle->id;
    tracked_.emplace(std::move(id), std::move(handle));
}

std::vector<std::shared_ptr<HandleState>> Listener::take_open() {
    std::vector<std::shared_ptr<HandleState>> open;
    open.reserve(tracked_.size());
    for (auto& [_, h] : tracked_) open.push_back(std::move(h));
    tracked_.clear();
    return open;
}

void Listener::resolve_now(const std::string& id, TaskOutcome out) {
    auto it = tracked_.find(id);
    if (it == tracked_.end()) return;
    auto handle = std::move(it->second);
    tracked_.erase(it);
    handle->resolve(std::move(out));
}

// After NOGROUP, with the stream created again: what became of each open task?
// A task that finished while the stream was missing had its notification
// dropped (servers notify only into a stream that exists: NOMKSTREAM), so its
// state (its record, or once finished its bucket: lib/scripts/get.lua) is the
// only word of its outcome; a confirmed task with no state was lost by Redis.
// Asked only once the stream exists again, so a task finishing later is
// notified: none falls between the two. One get per task, pipelined on the
// shared link behind any enqueue of the same task, so `stored` is up to date
// when the reply comes.
void Listener::check_records() {
    std::size_t asked = 0, lost = 0;
    for (auto it = tracked_.begin(); it != tracked_.end();) {
        auto& h = it->second;
        if (!h->record_keys) {
            if (!h->stored) {
                ++it;
                continue;
            }
            ++lost;
            auto handle = std::move(h);
            it = tracked_.erase(it);
            handle->resolve(TaskOutcome{TaskStatus::lost,
                                        "Redis lost its notification stream (restarted without "
                                        "persistence?); the task has no state record to check"});
            continue;
        }
        ++asked;
        redis::run_script(ctx_.topo, calls::get(*h->record_keys, it->first, ctx_.clock.now_ms()),
                          [this, id = it->first](Result<redis::Reply> res) {
                              if (stopping_ || !res.ok()) return;
                              on_record(id, *res);
                          });
        ++it;
    }
    if (asked + lost > 0) {
        log().warn(
            "client {}: notification stream vanished; checking {} task record(s), {} without one "
            "taken as lost",
            ctx_.id, asked, lost);
    }
}

void Listener::on_record(const std::string& id, const redis::Reply& reply) {
    auto it = tracked_.find(id);
    if (it == tracked_.end() || !(reply.is_nil() || reply.is_array())) return;
    if (reply.is_nil()) {
        // Not confirmed yet: the outbox still has it and sends it to the
        // stream that exists now.
        if (!it->second->stored) return;
        log().warn("client {}: task {} was lost by Redis", ctx_.id, id);
        resolve_now(id, TaskOutcome{TaskStatus::lost,
                                    "Redis lost the task (its notification stream and state "
                                    "record vanished: restarted without persistence?)"});
        return;
    }
    std::string_view state;
    std::string error;
    for (std::size_t i = 0; i + 1 < reply.size(); i += 2) {
        if (reply[i].str() == "state") state = reply[i + 1].str();
        if (reply[i].str() == "error") error = std::string(reply[i + 1].str());
    }
    if (state == "completed") {
        resolve_now(id, TaskOutcome{TaskStatus::completed, {}});
    } else if (state == "failed" || state == "dead") {
        resolve_now(id, TaskOutcome{TaskStatus::error, std::move(error)});
    } else if (state == "expired") {
        resolve_now(id, TaskOutcome{TaskStatus::expired, std::move(error)});
    } else if (state == "canceled") {
        resolve_now(id, TaskOutcome{TaskStatus::canceled, std::move(error)});
    }
    // Otherwise still waiting or running: its notification will come.
}

void Listener::create_group(std::function<void(bool created)> then) {
    redis::ensure_group(
        ctx_.topo, ctx_.receiver, kClientGroup, "0", [this, then = std::move(then)](Status st) {
            if (!st) {
                // A refusal (NOPERM) is worth a warning; an outage
                // is reported by the outbox already.
                auto level = st.error().is_transient() ? spdlog::level::debug : spdlog::level::warn;
                log_limited(level, "client " + ctx_.id + ": group",
                            "client {}: creating notification group failed: {}", ctx_.id,
                            st.error().message());
            }
            if (!stopping_) then(st.ok());
        });
}

void Listener::retry_later() {
    if (stopping_ || !retry_ || retry_->active()) return;
    retry_->start(static_cast<std::uint64_t>(backoff_.failed().count()), [this] { read(); });
}

void Listener::read() {
    if (stopping_) return;
    if (redis::moved_away(ctx_.topo, ctx_.receiver, *conn_)) {
        // The stream's slot is on another node now (or the first plan was made before the
        // cluster's map was known): a connection to that node.
        conn_->close();
        conn_ = ctx_.topo.dedicated(redis::Route{ctx_.receiver}, "notifications");
        watch();
    } else if (conn_->state() != redis::ConnState::ready) {
        // Not queued on a link whose node may be gone: the ready edge reads, or a short poll
        // that finds the promoted replica in the map (looking costs no command).
        if (retry_ && !retry_->active()) retry_->start(kRelinkPollMs, [this] { read(); });
        return;
    }
    std::string_view from = backlog_ ? std::string_view(backlog_from_) : std::string_view(">");
    conn_->send(
        {"XREADGROUP", "GROUP", kClientGroup, ctx_.id, "COUNT", "256", "BLOCK", "5000", "STREAMS",
         ctx_.receiver, from},
        [this, backlog = backlog_](Result<redis::Reply> res) {
            on_read(std::move(res), backlog);
        },
        redis::CommandOptions{.timeout = 0ms, .block = 5000ms});
}

void Listener::on_read(Result<redis::Reply> res, bool backlog) {
    if (stopping_) return;
    if (!res.ok()) {
        const auto& e = res.error();
        if (e.is(errc::closed)) return;
        if (redis::is_redirect(e)) redis::relearn(ctx_.topo, ctx_.receiver, [] {});
        log_limited(spdlog::level::debug, "client " + ctx_.id + ": read",
                    "client {}: notification read failed: {}", ctx_.id, e.message());
        if (e.is(reply_errc::nogroup)) {
            // The stream or group vanished (deleted, or Redis restarted
            // without persistence): recreate both, then learn from the
            // records what happened meanwhile, and read on after the backoff
            // (a group that cannot be created says NOGROUP again).
            create_group([this](bool created) {
                if (created) check_records();
                retry_later();
            });
            return;
        }
        retry_later();
        return;
    }
    backoff_.succeeded();
    std::vector<std::string_view> ack{"XACK", ctx_.receiver, kClientGroup};
    std::string_view last;
    std::size_t entries = 0;
    // Every entry is acked, readable or not: a broken notification must not
    // be read again forever.
    redis::for_each_entry(*res, [&](std::string_view, const redis::StreamEntry& e) {
        ack.push_back(e.id);
        last = e.id;
        ++entries;
        handle_entry(e);
    });
    if (backlog) {
        // A full page may have more behind it; a short one was all of it.
        backlog_ = entries == 256;
        if (backlog_) backlog_from_ = std::string(last);
    }
    if (!last.empty()) {
        // Trim what has been read. This client is the stream's only reader
        // and reads it in order, so everything up to `last` is done with: one
        // XTRIM MINID drops it by whole nodes, where XDEL would search the
        // stream once per id.
        redis::Route route{ctx_.receiver};
        ctx_.topo.send(route, ack, [](Result<redis::Reply>) {});
        if (auto after = redis::next_stream_id(last)) {
            ctx_.topo.send(route, {"XTRIM", ctx_.receiver, "MINID", *after},
                           [](Result<redis::Reply>) {});
        }
    }
    read();
}

void Listener::handle_entry(const redis::StreamEntry& entry) {
    auto n = decode_notification(entry.fields);
    if (!n) {
        log().warn("client {}: malformed notification {} dropped: {}", ctx_.id, entry.id,
                   n.error().message());
        unknown_.fetch_add(1);
        return;
    }
    auto it = tracked_.find(n->task_id);
    if (it == tracked_.end()) {
        unknown_.fetch_add(1);
        log().debug("client {}: notification for unknown task {}", ctx_.id, n->task_id);
        return;
    }
    auto handle = std::move(it->second);
    tracked_.erase(it);
    TaskOutcome out;
    out.status = status_of(n->type);
    out.error = std::move(n->err_msg);
    handle->resolve(std::move(out));
}

void Listener::stop() {
    stopping_ = true;
    if (retry_) retry_->stop();
}

void Listener::delete_stream(redis::CommandOptions opts, std::function<void()> done) {
    ctx_.topo.send(
        redis::Route{ctx_.receiver}, {"DEL", ctx_.receiver},
        [done = std::move(done)](Result<redis::Reply>) { done(); }, opts);
}

void Listener::close() {
    stop();
    retry_.reset();
    if (conn_) conn_->close();
}

}  // namespace streamfleet::detail::client
