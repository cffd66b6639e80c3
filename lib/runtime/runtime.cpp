#include "runtime/runtime.hpp"

#include <pthread.h>
#include <signal.h>

#include "core/log.hpp"

namespace streamfleet::detail {

Runtime::Runtime(std::string name) : name_(std::move(name)) {
    if (int rc = uv_loop_init(&loop_); rc != 0) {
        throw_error(Error(errc::io, "uv_loop_init failed: " + uv_error_text(rc)));
    }
    if (int rc = uv_async_init(&loop_, &wakeup_, &Runtime::on_wakeup); rc != 0) {
        uv_loop_close(&loop_);
        throw_error(Error(errc::io, "uv_async_init failed: " + uv_error_text(rc)));
    }
    wakeup_.data = this;
    std::promise<std::thread::id> started;
    auto started_fut = started.get_future();
    thread_ = std::thread([this, &started] {
        // Every socket write happens on this thread. A write to a connection
        // the peer closed (a Redis node killed mid-pipeline) raises SIGPIPE,
        // whose default action kills the whole process, the embedding
        // application included. Blocked here, it stays pending on this thread
        // and the write fails with EPIPE, a lost connection like any other;
        // the application's own handling of SIGPIPE is left as it is.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        started.set_value(std::this_thread::get_id());
        run();
    });
    thread_id_ = started_fut.get();
}

Runtime::~Runtime() { stop(); }

void Runtime::run() {
    pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
    uv_run(&loop_, UV_RUN_DEFAULT);
    // Every owner closes its handles from a stop hook; anything still open here
    // is a bug somewhere, so say so and close it rather than leak the loop.
    int leaked = 0;
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void* arg) {
            if (!uv_is_closing(h)) {
                ++*static_cast<int*>(arg);
                uv_close(h, nullptr);
            }
        },
        &leaked);
    if (leaked > 0) {
        log().error("runtime '{}': {} libuv handle(s) still open at stop", name_, leaked);
        uv_run(&loop_, UV_RUN_DEFAULT);
    }
    if (int rc = uv_loop_close(&loop_); rc != 0) {
        log().error("runtime '{}': uv_loop_close: {}", name_, uv_error_text(rc));
    }
}

bool Runtime::post(std::function<void()> fn) {
    std::lock_guard lock(mutex_);
    // Once stop() began only the loop thread may still post (owners closing
    // from stop hooks defer callbacks this way), until the final drain ends.
    if (drained_ || (stopping_ && !in_loop_thread())) return false;
    inbox_.push_back(std::move(fn));
    // Sent under the lock: the loop closes wakeup_ only after it has seen
    // stopping_ under this lock, so no send can reach a closed handle.
    // Sends coalesce, which is why the callback drains the whole inbox.
    uv_async_send(&wakeup_);
    return true;
}

void Runtime::on_wakeup(uv_async_t* handle) { static_cast<Runtime*>(handle->data)->drain_inbox(); }

void Runtime::guarded(const char* what, const std::function<void()>& fn) {
    try {
        fn();
    } catch (const std::exception& e) {
        // One owner's failure must not take the loop (and every other owner's
        // shutdown) down with it.
        log().error("runtime '{}': {} threw: {}", name_, what, e.what());
    } catch (...) {
        log().error("runtime '{}': {} threw a non-exception", name_, what);
    }
}

bool Runtime::run_inbox() {
    std::vector<std::function<void()>> batch;
    bool stop_now;
    {
        std::lock_guard lock(mutex_);
        batch.swap(inbox_);
        stop_now = stopping_;
    }
    for (auto& fn : batch) guarded("posted task", fn);
    return stop_now;
}

void Runtime::drain_inbox() {
    if (!run_inbox()) return;
    // stopping_ is set: other threads can no longer post, but tasks they posted
    // just before may have raced with the swap, and stop hooks may post more
    // from this thread. Keep draining until hooks and inbox are both empty.
    for (;;) {
        run_inbox();
        if (stop_hooks_.empty()) {
            std::lock_guard lock(mutex_);
            if (inbox_.empty()) {
                drained_ = true;
                break;
            }
            continue;
        }
        auto it = std::prev(stop_hooks_.end());
        auto hook = std::move(it->second);
        stop_hooks_.erase(it);
        guarded("stop hook", hook);
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&wakeup_), nullptr);
}

std::uint64_t Runtime::add_stop_hook(std::function<void()> hook) {
    auto id = next_hook_id_++;
    stop_hooks_.emplace(id, std::move(hook));
    return id;
}

void Runtime::remove_stop_hook(std::uint64_t id) { stop_hooks_.erase(id); }

void Runtime::stop() {
    if (in_loop_thread()) {
        log().critical("runtime '{}': stop() called on its own loop thread", name_);
        std::abort();
    }
    std::lock_guard join_lock(join_mutex_);
    if (joined_) return;
    {
        std::lock_guard lock(mutex_);
        if (!stopping_) {
            stopping_ = true;
            uv_async_send(&wakeup_);  // under the lock, as in post()
        }
    }
    thread_.join();
    joined_ = true;
}

bool Runtime::stopping() const {
    std::lock_guard lock(mutex_);
    return stopping_;
}

// ---- Timer ----

Timer::Timer(uv_loop_t* loop) : handle_(new uv_timer_t) {
    uv_timer_init(loop, handle_);
    handle_->data = this;
}

Timer::~Timer() { close(); }

void Timer::start(std::uint64_t after_ms, std::function<void()> cb) {
    if (!handle_) return;
    cb_ = std::move(cb);
    uv_timer_start(
        handle_,
        [](uv_timer_t* h) {
            auto* self = static_cast<Timer*>(h->data);
            // Move the callback out first: it may re-arm or destroy this timer.
            auto cb = std::move(self->cb_);
            cb();
        },
        after_ms, 0);
}

void Timer::stop() {
    if (handle_) uv_timer_stop(handle_);
}

bool Timer::active() const {
    return handle_ && uv_is_active(reinterpret_cast<const uv_handle_t*>(handle_));
}

void Timer::close() {
    if (!handle_) return;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    handle_ = nullptr;
    cb_ = nullptr;
}

// ---- TurnEnd ----

namespace {
// Depth of TurnEnd callbacks running on this thread (the prepare phase).
thread_local int t_in_turn_end = 0;
}  // namespace

TurnEnd::TurnEnd(uv_loop_t* loop, std::function<void()> cb)
    : handle_(new uv_prepare_t), nudge_(new uv_idle_t), cb_(std::move(cb)) {
    uv_prepare_init(loop, handle_);
    handle_->data = this;
    uv_idle_init(loop, nudge_);
}

TurnEnd::~TurnEnd() { close(); }

void TurnEnd::arm() {
    if (!handle_ || uv_is_active(reinterpret_cast<uv_handle_t*>(handle_))) return;
    uv_prepare_start(handle_, [](uv_prepare_t* h) {
        // Stop first so the callback may re-arm for the next turn.
        uv_prepare_stop(h);
        struct Depth {
            Depth() { ++t_in_turn_end; }
            ~Depth() { --t_in_turn_end; }
        } depth;
        static_cast<TurnEnd*>(h->data)->cb_();
    });
    if (t_in_turn_end > 0) {
        uv_idle_start(nudge_, [](uv_idle_t* h) { uv_idle_stop(h); });
    }
}

void TurnEnd::close() {
    if (!handle_) return;
    uv_close(reinterpret_cast<uv_handle_t*>(handle_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_prepare_t*>(h); });
    uv_close(reinterpret_cast<uv_handle_t*>(nudge_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_idle_t*>(h); });
    handle_ = nullptr;
    nudge_ = nullptr;
}

std::string uv_error_text(int status) {
    return std::string(uv_err_name(status)) + " (" + uv_strerror(status) + ")";
}

}  // namespace streamfleet::detail
