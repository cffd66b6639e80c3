#pragma once

// Runtime: responsible for the event-loop thread that owns every Redis
// connection and timer of a Client or Server. Other threads talk to it only
// through post()/call(); everything else in lib/redis and below must run on the
// loop thread (libuv handles are not thread-safe).
//
// Shutdown order (stop()):
//   1. further posts are refused;
//   2. work already posted runs;
//   3. stop hooks run on the loop thread, newest first, so owners close their
//      handles (connections fail their pending commands with `closed`);
//   4. the loop runs until every handle's close callback has fired;
//   5. the thread is joined and uv_loop_close() must return 0.

#include <uv.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/error.hpp"

namespace streamfleet::detail {

class Runtime {
public:
    /// Starts the loop thread. `name` shows up in logs and as the thread name.
    explicit Runtime(std::string name = "sf-loop");
    /// Calls stop(). Must not run on the loop thread.
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    /// Thread-safe. Queues `fn` to run on the loop thread, in posting order.
    /// Returns false, and drops `fn`, once stop() has begun -- except on the
    /// loop thread itself, which may post until the stop hooks are done.
    bool post(std::function<void()> fn);

    /// Runs `fn` on the loop thread and returns its result (or rethrows what it
    /// threw). Throws ClosedError when the runtime is stopping. Calling it from
    /// the loop thread runs `fn` inline, since waiting there would deadlock.
    template <class F>
    auto call(F&& fn) -> std::invoke_result_t<F&> {
        using R = std::invoke_result_t<F&>;
        if (in_loop_thread()) return fn();
        std::packaged_task<R()> task(std::forward<F>(fn));
        auto fut = task.get_future();
        auto shared = std::make_shared<std::packaged_task<R()>>(std::move(task));
        if (!post([shared] { (*shared)(); })) {
            throw_error(Error(errc::closed, "runtime '" + name_ + "' is stopped"));
        }
        return fut.get();
    }

    bool in_loop_thread() const noexcept { return std::this_thread::get_id() == thread_id_; }

    /// The libuv loop; use only on the loop thread.
    uv_loop_t* loop() noexcept { return &loop_; }

    /// Registers `hook` to run on the loop thread when stop() begins (newest
    /// first). Returns an id for remove_stop_hook(). Loop thread only.
    std::uint64_t add_stop_hook(std::function<void()> hook);
    void remove_stop_hook(std::uint64_t id);

    /// Stops the loop as described above and joins its thread. Idempotent;
    /// must not be called from the loop thread.
    void stop();

    /// True once stop() has begun.
    bool stopping() const;

    const std::string& name() const noexcept { return name_; }

private:
    static void on_wakeup(uv_async_t* handle);
    void drain_inbox();
    bool run_inbox();
    void guarded(const char* what, const std::function<void()>& fn);
    void run();

    std::string name_;
    mutable std::mutex mutex_;
    std::vector<std::function<void()>> inbox_;  // guarded by mutex_
    bool stopping_ = false;                     // guarded by mutex_
    bool drained_ = false;                      // guarded by mutex_; final drain done
    bool joined_ = false;                       // guarded by join_mutex_
    std::mutex join_mutex_;

    // Touched only on the loop thread.
    std::map<std::uint64_t, std::function<void()>> stop_hooks_;
    std::uint64_t next_hook_id_ = 1;

    uv_loop_t loop_{};
    uv_async_t wakeup_{};
    std::thread::id thread_id_;
    // Declared last: the thread starts in the constructor body once everything
    // it touches above is initialised.
    std::thread thread_;
};

/// A one-shot/repeating uv timer owned by a loop-thread object. The handle's
/// memory is freed in its close callback, so destroying a Timer from inside its
/// own callback is safe. close() must happen while the loop still runs; the
/// destructor closes it if the owner did not.
class Timer {
public:
    explicit Timer(uv_loop_t* loop);
    ~Timer();
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

    /// (Re)arms the timer to call `cb` once after `after_ms`.
    void start(std::uint64_t after_ms, std::function<void()> cb);
    void stop();
    bool active() const;
    /// Closes the handle; the timer is unusable afterwards. Idempotent.
    void close();

private:
    uv_timer_t* handle_;
    std::function<void()> cb_;
};

/// Runs a callback once just before the loop next blocks for I/O (uv_prepare).
/// This is how "everything issued in one loop turn leaves in one write" works:
/// writers append to a buffer and arm() the flusher; it fires once per turn.
/// Arming from inside another TurnEnd callback also works: libuv runs handles
/// started during the prepare phase only next turn, so such an arm() starts an
/// idle handle too, which keeps this turn's poll from blocking until then.
class TurnEnd {
public:
    TurnEnd(uv_loop_t* loop, std::function<void()> cb);
    ~TurnEnd();
    TurnEnd(const TurnEnd&) = delete;
    TurnEnd& operator=(const TurnEnd&) = delete;

    void arm();
    void close();

private:
    uv_prepare_t* handle_;
    uv_idle_t* nudge_;
    std::function<void()> cb_;
};

/// "operation: message" text for a libuv status code.
std::string uv_error_text(int status);

}  // namespace streamfleet::detail
