#pragma once

// HandlerPool: responsible for the threads that run handlers, fed by a loop thread.
//
// Why not one condition-variable wake per task: with no-op or short handlers
// the wake-up (a futex call plus two context switches) costs more than the
// task, and on a small machine it is most of the CPU a worker uses. So a
// thread that finds the queue empty first *spins* briefly (yielding) before it
// parks, and the feeder wakes a parked thread only when nobody spins. A thread
// that takes an item while more are queued and nobody spins wakes the next one
// before running its item, so a burst of long handlers still fans out to every
// thread: the pool's concurrency is always fully usable. At most kMaxSpinners
// spin at once, for at most kSpin, so an idle server does not burn CPU.
// (A woken thread is a spinner until it takes an item; see wake_spinner_locked.)

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace streamfleet::detail {

template <class T>
class HandlerPool {
public:
    using Run = std::function<void(T&)>;

    HandlerPool() = default;
    HandlerPool(const HandlerPool&) = delete;
    HandlerPool& operator=(const HandlerPool&) = delete;
    ~HandlerPool() { stop(); }

    /// Starts `threads` threads that call `run` for each pushed item.
    void start(unsigned threads, Run run) {
        run_ = std::move(run);
        for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
    }

    /// Queues items for the threads; wakes one only if none is spinning.
    void push(std::vector<T>& items) {
        if (items.empty()) return;
        bool wake;
        {
            std::lock_guard lock(mutex_);
            for (auto& it : items) queue_.push_back(std::move(it));
            size_.store(queue_.size(), std::memory_order_release);
            wake = wake_spinner_locked();
        }
        items.clear();
        if (wake) cv_.notify_one();
    }

    /// True when called from one of this pool's threads (a handler that would
    /// wait for the pool to drain would wait for itself).
    bool on_own_thread() const noexcept { return current_ == this; }

    /// Removes and returns every item no thread has taken yet.
    std::deque<T> take_unstarted() {
        std::lock_guard lock(mutex_);
        std::deque<T> out;
        out.swap(queue_);
        size_.store(0, std::memory_order_release);
        return out;
    }

    /// Lets running items finish, then joins the threads. Unstarted items are
    /// dropped: take them first. Idempotent.
    void stop() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
        threads_.clear();
    }

private:
    static constexpr int kMaxSpinners = 2;
    static constexpr std::chrono::microseconds kSpin{50};

    // A woken thread counts as a spinner from the moment it is chosen (as in
    // Go's scheduler): otherwise every item of a burst would wake one more
    // thread before the first woken one even ran, and a burst of no-op tasks
    // would cost a context switch each.
    bool wake_spinner_locked() {
        if (spinners_ > 0 || parked_ - tokens_ <= 0) return false;
        ++spinners_;
        ++tokens_;
        return true;
    }

    void work() {
        current_ = this;
        std::unique_lock lock(mutex_);
        bool spinning = false;
        for (;;) {
            if (queue_.empty()) {
                if (stop_) break;
                if (!spinning && spinners_ < kMaxSpinners) {
                    ++spinners_;
                    spinning = true;
                }
                if (spinning) {
                    lock.unlock();
                    auto until = std::chrono::steady_clock::now() + kSpin;
                    while (size_.load(std::memory_order_acquire) == 0 &&
                           std::chrono::steady_clock::now() < until) {
                        std::this_thread::yield();
                    }
                    lock.lock();
                    if (!queue_.empty() || stop_) continue;
                    --spinners_;
                    spinning = false;
                }
                ++parked_;
                cv_.wait(lock, [&] { return stop_ || tokens_ > 0; });
                --parked_;
                if (tokens_ > 0) {
                    --tokens_;
                    spinning = true;  // the waker counted us in spinners_
                }
                continue;
            }
            T item = std::move(queue_.front());
            queue_.pop_front();
            size_.store(queue_.size(), std::memory_order_release);
            if (spinning) {
                --spinners_;
                spinning = false;
            }
            // More waiting and nobody looking: wake a spinner before a possibly
            // long run, so queued items never wait behind it.
            bool wake = !queue_.empty() && wake_spinner_locked();
            lock.unlock();
            if (wake) cv_.notify_one();  // outside the lock: the woken thread needs it
            run_(item);
            lock.lock();
        }
        if (spinning) --spinners_;
    }

    // The pool whose work() runs on this thread, if any.
    static inline thread_local const HandlerPool* current_ = nullptr;

    Run run_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<T> queue_;               // guarded by mutex_
    std::atomic<std::size_t> size_{0};  // queue_.size(), for spinners to poll
    int spinners_ = 0;                  // guarded by mutex_
    int parked_ = 0;                    // guarded by mutex_; threads in cv_.wait
    int tokens_ = 0;                    // guarded by mutex_; wakes not yet taken
    bool stop_ = false;                 // guarded by mutex_
    std::vector<std::thread> threads_;
};

}  // namespace streamfleet::detail
