// Admission: bounds the buffer of tasks not yet in Redis and hands accepted tasks to the loop.
#include "client/admission.hpp"

#include "streamfleet/errors.hpp"

namespace streamfleet::detail::client {

Admission::Admission(Limits limits, std::string client_id, std::function<bool()> wake)
    : limits_(limits), client_id_(std::move(client_id)), wake_(std::move(wake)) {}

void Admission::reserve(std::size_t n, std::size_t bytes) {
    std::unique_lock lock(mutex_);
    reserve_locked(lock, n, bytes);
}

void Admission::count_in(std::size_t n, std::size_t bytes) {
    std::lock_guard lock(mutex_);
    buffered_ += n;
    buffered_bytes_ += bytes;
}

void Admission::reserve_locked(std::unique_lock<std::mutex>& lock, std::size_t n,
                               std::size_t bytes) {
    // The byte bound never refuses a task into an empty buffer: a payload
    // larger than max_buffered_bytes would otherwise never be accepted.
    auto fits = [&] {
        return closed_ || (buffered_ + n <= limits_.max_tasks &&
                           (buffered_ == 0 || buffered_bytes_ + bytes <= limits_.max_bytes));
    };
    if (!fits() && limits_.full_timeout.count() > 0) {
        room_.wait_for(lock, limits_.full_timeout, fits);
    }
    if (closed_) throw_closed();
    if (!fits()) {
        throw QueueFull("client buffer holds " + std::to_string(buffered_) + " tasks (" +
                        std::to_string(buffered_bytes_) +
                        " bytes) not yet in Redis; max_buffered is " +
                        std::to_string(limits_.max_tasks) + ", max_buffered_bytes " +
                        std::to_string(limits_.max_bytes));
    }
    buffered_ += n;
    buffered_bytes_ += bytes;
}

template <class Push>
void Admission::hand_off_locked(std::size_t n, std::size_t bytes, bool reserved, Push push) {
    std::unique_lock lock(mutex_);
    if (!reserved) {
        reserve_locked(lock, n, bytes);
    } else if (closed_) {
        release_locked(n, bytes);
        throw_closed();
    }
    const bool wake = incoming_.empty();
    push();
    // Waking under the lock: close() sets closed_ under it before the loop is
    // stopped, so this wake cannot meet a stopped loop -- unless the loop
    // stops some other way, which the undo below covers.
    if (wake && !wake_()) {
        incoming_.resize(incoming_.size() - n);
        release_locked(n, bytes);
        throw_closed();
    }
}

void Admission::hand_off(Outgoing&& task, bool reserved) {
    hand_off_locked(1, task.bytes, reserved, [&] { incoming_.push_back(std::move(task)); });
}

void Admission::hand_off(std::vector<Outgoing>& batch, bool reserved) {
    std::size_t bytes = 0;
    for (const auto& o : batch) bytes += o.bytes;
    hand_off_locked(batch.size(), bytes, reserved, [&] {
        for (auto& o : batch) incoming_.push_back(std::move(o));
    });
}

void Admission::take(std::vector<Outgoing>& out) {
    std::lock_guard lock(mutex_);
    out.swap(incoming_);
}

void Admission::release(std::size_t n, std::size_t bytes) {
    std::lock_guard lock(mutex_);
    release_locked(n, bytes);
}

void Admission::release_locked(std::size_t n, std::size_t bytes) {
    buffered_ -= n;
    buffered_bytes_ -= bytes;
    room_.notify_all();
    if (buffered_ == 0) drained_.notify_all();
}

bool Admission::close() {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    closed_ = true;
    // Waiters for room learn that there will be none.
    room_.notify_all();
    return true;
}

bool Admission::wait_drained(std::chrono::steady_clock::time_point until) {
    std::unique_lock lock(mutex_);
    return drained_.wait_until(lock, until, [&] { return buffered_ == 0; });
}

std::size_t Admission::buffered() const {
    std::lock_guard lock(mutex_);
    return buffered_;
}

std::size_t Admission::buffered_bytes() const {
    std::lock_guard lock(mutex_);
    return buffered_bytes_;
}

void Admission::throw_closed() const { throw ClosedError("client " + client_id_ + " is closed"); }

}  // namespace streamfleet::detail::client
