#include "redis/connection.hpp"

#include <algorithm>
#include <cstring>

#include "core/backoff.hpp"
#include "core/log.hpp"
#include "redis/connection_parts.hpp"

namespace streamfleet::detail::redis {

namespace conn_detail {

void run_callback(ReplyCallback& cb, Result<Reply> result) {
    if (!cb) return;
    try {
        cb(std::move(result));
    } catch (const std::exception& e) {
        // A throwing callback must not unwind through libuv's C frames.
        log().error("redis reply callback threw: {}", e.what());
    } catch (...) {
        log().error("redis reply callback threw a non-standard exception");
    }
}

std::uint64_t ceil_ms(Clock::duration d) {
    auto ms = std::chrono::ceil<milliseconds>(d).count();
    return ms < 1 ? 1 : static_cast<std::uint64_t>(ms);
}

}  // namespace conn_detail

using conn_detail::ceil_ms;
using conn_detail::kFeedSlice;
using conn_detail::run_callback;

std::string_view to_string(ConnState s) noexcept {
    switch (s) {
        case ConnState::idle:
            return "idle";
        case ConnState::connecting:
            return "connecting";
        case ConnState::ready:
            return "ready";
        case ConnState::down:
            return "down";
        case ConnState::closed:
            return "closed";
    }
    return "?";
}

std::shared_ptr<Connection> Connection::create(Runtime& rt, ServerConfig server,
                                               ConnectionOptions options) {
    auto conn = std::make_shared<Connection>(Private{}, rt, std::move(server), std::move(options));
    conn->stop_hook_ = rt.add_stop_hook([weak = conn->weak_from_this()] {
        if (auto c = weak.lock()) c->close();
    });
    return conn;
}

Connection::Connection(Private, Runtime& rt, ServerConfig server, ConnectionOptions options)
    : rt_(rt),
      server_(std::move(server)),
      opts_(std::move(options)),
      deadline_timer_(rt.loop()),
      connect_timer_(rt.loop()),
      retry_timer_(rt.loop()),
      turn_end_(rt.loop(), [this] { flush(); }) {}

Connection::~Connection() { close(); }

void Connection::start() {
    if (state_ == ConnState::idle) begin_connect();
}

// ---- sending ----

void Connection::send(std::span<const std::string_view> argv, ReplyCallback cb, CommandOptions o) {
    submit([argv](std::string& out) { append_command(out, argv); }, std::move(cb), o);
}

void Connection::send_encoded(std::string_view resp, ReplyCallback cb, CommandOptions o) {
    submit([resp](std::string& out) { out.append(resp); }, std::move(cb), o);
}

// A command's budget grows with its size: Redis must read (and copy) every
// byte before it can answer, and a fixed limit would time out -- and, worse,
// resend -- a large payload Redis is still reading. The rate is conservative
// (a loaded server or a slow link), so only a truly stuck command times out.
namespace {
milliseconds size_allowance(std::size_t bytes) {
    return milliseconds(static_cast<std::int64_t>(bytes / kBytesPerMs));
}
}  // namespace

// RESP answers in order, so a command's reply can come no sooner than the one
// of the command before it: its deadline is never earlier than that one's.
// Without this, a small command pipelined behind a large one would expire
// first and reset the connection under the large one.
Clock::time_point Connection::ordered_deadline(Clock::time_point own) const {
    if (!inflight_.empty()) {
        auto before = inflight_.back().deadline;
        if (before != Clock::time_point::max() && before > own) return before;
    }
    return own;
}

template <class Append>
void Connection::submit(Append&& append, ReplyCallback cb, CommandOptions o) {
    auto base = (o.timeout.count() > 0 ? o.timeout : opts_.command_timeout) + o.block;
    switch (state_) {
        case ConnState::closed:
            complete_later(std::move(cb),
                           Error(errc::closed, "connection to " + where() + " is closed"));
            return;
        case ConnState::ready: {
            auto before = wbuf_.size();
            append(wbuf_);
            auto budget = base + size_allowance(wbuf_.size() - before);
            auto deadline = ordered_deadline(Clock::now() + budget);
            inflight_.push_back(Inflight{std::move(cb), deadline, budget, std::max(o.replies, 1u)});
            turn_end_.arm();
            arm_deadline(deadline);
            return;
        }
        case ConnState::down:
            // Waiting cannot help after a configuration error, and the caller
            // may have asked not to wait at all.
            if (!opts_.offline_queue || last_error_.is(errc::auth_failed) || config_failed_) {
                complete_later(std::move(cb), last_error_.with_context("not connected"));
                return;
            }
            [[fallthrough]];
        case ConnState::idle:
        case ConnState::connecting: {
            Queued q{{}, std::move(cb), {}, base, std::max(o.replies, 1u)};
            append(q.bytes);
            q.budget += size_allowance(q.bytes.size());
            q.deadline = Clock::now() + q.budget;
            arm_deadline(q.deadline);
            queued_.push_back(std::move(q));
            return;
        }
    }
}

void Connection::complete_later(ReplyCallback cb, Error error) {
    if (state_ == ConnState::closed) {
        // The turn-end handle is gone; go through the runtime instead (it takes
        // loop-thread posts until its stop hooks are done), or, once even that
        // is over, run inline as the only way left to keep exactly-once.
        auto shared =
            std::make_shared<std::pair<ReplyCallback, Error>>(std::move(cb), std::move(error));
        if (!rt_.post([shared] { run_callback(shared->first, std::move(shared->second)); })) {
            run_callback(shared->first, std::move(shared->second));
        }
        return;
    }
    deferred_.emplace_back(std::move(cb), std::move(error));
    turn_end_.arm();
}

void Connection::flush() {
    auto keep = shared_from_this();
    if (!deferred_.empty()) {
        auto batch = std::move(deferred_);
        deferred_.clear();
        for (auto& [cb, err] : batch) run_callback(cb, std::move(err));
    }
    if (state_ == ConnState::closed) return;
    write_out();
}

namespace {
// uv_buf_t lengths are unsigned int: a buffer over 4 GiB (a huge pipelined
// batch) must go as several, or its length would silently wrap. The usual
// single buffer stays on the stack so the steady state allocates nothing.
struct Bufs {
    Bufs(char* p, std::size_t n) {
        constexpr std::size_t kMaxBuf = std::size_t{1} << 30;
        if (n <= kMaxBuf) {
            one = uv_buf_init(p, static_cast<unsigned>(n));
            return;
        }
        while (n > 0) {
            std::size_t len = std::min(n, kMaxBuf);
            many.push_back(uv_buf_init(p, static_cast<unsigned>(len)));
            p += len;
            n -= len;
        }
    }
    uv_buf_t* data() { return many.empty() ? &one : many.data(); }
    unsigned size() const { return many.empty() ? 1U : static_cast<unsigned>(many.size()); }

    uv_buf_t one{};
    std::vector<uv_buf_t> many;
};
}  // namespace

void Connection::write_out() {
    if (!sock_ || wbuf_.empty()) return;
    ++writes_;
    Bufs bufs(wbuf_.data(), wbuf_.size());
    int n = uv_try_write(&sock_->stream, bufs.data(), bufs.size());
    if (n >= 0 && static_cast<std::size_t>(n) == wbuf_.size()) {
        wbuf_.clear();  // keeps its capacity: steady state allocates nothing
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        fail_connection(Error(errc::io, "write to " + where() + " failed: " + uv_error_text(n)));
        return;
    }
    // The socket is full (or an earlier write is still queued, which makes
    // uv_try_write refuse so bytes stay in order). Hand the rest to libuv.
    auto* req = new WriteReq;
    std::size_t written = n > 0 ? static_cast<std::size_t>(n) : 0;
    req->data = std::move(wbuf_);
    wbuf_ = std::string();
    Bufs rest(req->data.data() + written, req->data.size() - written);
    int rc = uv_write(
        &req->req, &sock_->stream, rest.data(), rest.size(), [](uv_write_t* r, int status) {
            auto* s = static_cast<Socket*>(r->handle->data);
            delete reinterpret_cast<WriteReq*>(r);
            if (status < 0 && status != UV_ECANCELED && s->owner) {
                auto keep = s->owner->shared_from_this();
                s->owner->fail_connection(Error(errc::io, "write to " + s->owner->where() +
                                                              " failed: " + uv_error_text(status)));
            }
        });
    if (rc < 0) {
        delete req;
        fail_connection(Error(errc::io, "write to " + where() + " failed: " + uv_error_text(rc)));
    }
}

// ---- receiving ----

void Connection::on_read(long nread, const char* data) {
    if (nread == 0) return;  // EAGAIN; libuv will call again
    if (nread < 0) {
        if (nread == UV_EOF) {
            fail_connection(Error(errc::connection_lost, where() + " closed the connection"));
        } else {
            fail_connection(Error(errc::io, "read from " + where() + " failed: " +
                                                uv_error_text(static_cast<int>(nread))));
        }
        return;
    }
    Socket* s = sock_;
    auto total = static_cast<std::size_t>(nread);
    // A large reply takes time to arrive, as a large command takes time to
    // send: the oldest command, whose reply this is (or comes after), gets
    // the same allowance per byte received, so it is not cut off mid-reply.
    if (!inflight_.empty() && inflight_.front().deadline != Clock::time_point::max()) {
        auto more = size_allowance(total);
        inflight_.front().deadline += more;
        inflight_.front().budget += more;
    }
    for (std::size_t off = 0; off < total; off += kFeedSlice) {
        if (auto st = parser_.feed(data + off, std::min(kFeedSlice, total - off)); !st) {
            fail_connection(st.error().with_context(where()));
            return;
        }
        while (true) {
            auto next = parser_.next();
            if (!next) {
                fail_connection(next.error().with_context(where()));
                return;
            }
            if (!*next) break;
            dispatch(std::move(*next));
            // A callback may have closed the connection or reset it.
            if (sock_ != s) return;
        }
    }
}

void Connection::dispatch(std::unique_ptr<Reply> reply) {
    if (on_message_ && reply->is_array() && reply->size() == 3 &&
        (*reply)[0].as_string() == std::optional<std::string_view>("message")) {
        on_message_(*reply);
        return;
    }
    if (inflight_.empty()) {
        fail_connection(Error(errc::protocol, where() + " sent a reply with no command waiting: " +
                                                  reply->debug_string().substr(0, 200)));
        return;
    }
    if (auto& head = inflight_.front(); head.replies > 1) {
        // One of several replies to one command's bytes: only the last completes it.
        --head.replies;
        if (reply->is_error() && !head.error) head.error = std::move(reply);
        return;
    }
    auto entry = std::move(inflight_.front());
    inflight_.pop_front();
    if (entry.error) reply = std::move(entry.error);
    // The next command's deadline may be earlier than the one the timer waits
    // for, if the one just answered had been extended (on_read).
    if (!inflight_.empty() && inflight_.front().deadline != Clock::time_point::max()) {
        arm_deadline(inflight_.front().deadline);
    }
    if (reply->is_error()) {
        auto kind = classify_reply(reply->error_text());
        run_callback(entry.cb, Error(kind, std::move(reply->mutable_str())));
    } else {
        run_callback(entry.cb, std::move(*reply));
    }
}

// ---- failure, deadlines, reconnect ----

void Connection::release_socket() {
    if (sock_) {
        Socket* s = sock_;
        sock_ = nullptr;
        s->owner = nullptr;
        uv_close(&s->handle, [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); });
    }
    if (resolving_) {
        // The callback still runs (possibly with a result) and frees the request.
        resolving_->owner = nullptr;
        uv_cancel(reinterpret_cast<uv_req_t*>(&resolving_->req));
        resolving_ = nullptr;
    }
}

void Connection::fail_connection(Error reason, bool config_error) {
    if (state_ == ConnState::closed) return;
    release_socket();
    connect_timer_.stop();
    parser_.reset();
    wbuf_.clear();
    last_error_ = reason;
    config_failed_ = config_error;
    auto lost = std::move(inflight_);
    inflight_.clear();
    std::deque<Queued> dropped;
    if (config_error || !opts_.offline_queue) {
        dropped = std::move(queued_);
        queued_.clear();
    }
    state_ = ConnState::down;
    log().debug("redis {}: down: {}", where(), reason.message());
    schedule_reconnect();

    // State is consistent from here on; callbacks may re-enter (send, close).
    auto now = Clock::now();
    for (auto& f : lost) {
        if (f.deadline <= now) {
            run_callback(f.cb, Error(errc::timeout, "no reply from " + where() + " within " +
                                                        std::to_string(f.budget.count()) +
                                                        " ms; connection reset"));
        } else {
            run_callback(f.cb,
                         Error(errc::connection_lost,
                               "connection to " + where() +
                                   " lost before the reply arrived (the command may have run): " +
                                   reason.message()));
        }
    }
    for (auto& q : dropped) run_callback(q.cb, reason);
    if (state_ == ConnState::closed) return;
    set_state(ConnState::down, &last_error_);
}

void Connection::schedule_reconnect() {
    static SeededRandom shared;
    Random& rng = opts_.random ? *opts_.random : shared;
    auto delay = reconnect_delay(attempt_++, opts_.reconnect_min, opts_.reconnect_max, rng.next());
    retry_timer_.start(static_cast<std::uint64_t>(delay.count()), [this] { begin_connect(); });
}

void Connection::reconnect(const Error& reason) {
    auto keep = shared_from_this();
    switch (state_) {
        case ConnState::idle:
        case ConnState::closed:
            return;
        case ConnState::down:
            retry_timer_.stop();
            begin_connect();
            return;
        case ConnState::connecting:
        case ConnState::ready:
            fail_connection(reason);
            if (state_ != ConnState::down) return;  // a callback closed it
            retry_timer_.stop();
            begin_connect();
            return;
    }
}

void Connection::arm_deadline(Clock::time_point deadline) {
    if (deadline_timer_.active() && deadline >= deadline_due_) return;
    deadline_due_ = deadline;
    deadline_timer_.start(ceil_ms(deadline - Clock::now()), [this] { on_deadline(); });
}

void Connection::on_deadline() {
    auto keep = shared_from_this();
    auto now = Clock::now();
    std::vector<std::pair<ReplyCallback, Error>> expired;
    for (auto it = queued_.begin(); it != queued_.end();) {
        if (it->deadline > now) {
            ++it;
            continue;
        }
        std::string msg = "command timed out after " + std::to_string(it->budget.count()) +
                          " ms waiting for a connection to " + where();
        if (!last_error_.message().empty()) msg += " (last error: " + last_error_.message() + ")";
        expired.emplace_back(std::move(it->cb), Error(errc::timeout, std::move(msg)));
        it = queued_.erase(it);
    }
    // Replies come in order, so the oldest command decides: one behind it
    // cannot answer first. (Deadlines are ordered when sent; only the oldest
    // one moves later, while its reply arrives -- see on_read.)
    bool stuck = !inflight_.empty() && inflight_.front().deadline <= now;
    if (stuck) {
        log().warn("redis {}: command timed out; resetting the connection", where());
        fail_connection(
            Error(errc::timeout, "a command to " + where() + " timed out; connection reset"));
    }
    for (auto& [cb, err] : expired) run_callback(cb, std::move(err));
    if (state_ == ConnState::closed) return;

    auto next = Clock::time_point::max();
    for (const auto& q : queued_) next = std::min(next, q.deadline);
    if (!inflight_.empty()) next = std::min(next, inflight_.front().deadline);
    if (next != Clock::time_point::max()) arm_deadline(next);
}

void Connection::set_state(ConnState s, const Error* reason) {
    // Listeners hear about ready/down/closed edges only, not every retry.
    if (s == reported_) return;
    reported_ = s;
    auto listeners = listeners_;  // a listener may add listeners
    for (auto& l : listeners) {
        try {
            l(s, reason);
        } catch (const std::exception& e) {
            log().error("redis state listener threw: {}", e.what());
        }
    }
}

void Connection::close() {
    if (state_ == ConnState::closed) return;
    // The callbacks below may drop their owner's last reference to us.
    auto keep = weak_from_this().lock();
    state_ = ConnState::closed;
    release_socket();
    deadline_timer_.close();
    connect_timer_.close();
    retry_timer_.close();
    turn_end_.close();
    if (stop_hook_ != 0) {
        rt_.remove_stop_hook(stop_hook_);
        stop_hook_ = 0;
    }
    Error err(errc::closed, "connection to " + where() + " closed before the reply arrived");
    auto lost = std::move(inflight_);
    auto queued = std::move(queued_);
    auto deferred = std::move(deferred_);
    inflight_.clear();
    queued_.clear();
    deferred_.clear();
    for (auto& f : lost) run_callback(f.cb, err);
    for (auto& q : queued) run_callback(q.cb, err);
    for (auto& [cb, e] : deferred) run_callback(cb, std::move(e));
    Error why(errc::closed, "connection to " + where() + " closed by its owner");
    set_state(ConnState::closed, &why);
}

}  // namespace streamfleet::detail::redis
