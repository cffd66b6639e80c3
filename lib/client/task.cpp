#include "client/handle_state.hpp"
#include "core/log.hpp"

namespace streamfleet {
inline namespace v1 {

std::string_view to_string(TaskStatus s) noexcept {
    switch (s) {
        case TaskStatus::completed:
            return "completed";
        case TaskStatus::error:
            return "error";
        case TaskStatus::expired:
            return "expired";
        case TaskStatus::canceled:
            return "canceled";
        case TaskStatus::refused:
            return "refused";
        case TaskStatus::closed:
            return "closed";
        case TaskStatus::lost:
            return "lost";
    }
    return "error";
}

std::string_view to_string(TaskState s) noexcept {
    switch (s) {
        case TaskState::unknown:
            return "unknown";
        case TaskState::delayed:
            return "delayed";
        case TaskState::ready:
            return "ready";
        case TaskState::active:
            return "active";
        case TaskState::completed:
            return "completed";
        case TaskState::failed:
            return "failed";
        case TaskState::dead:
            return "dead";
        case TaskState::expired:
            return "expired";
        case TaskState::canceled:
            return "canceled";
    }
    return "unknown";
}

std::string_view to_string(CancelResult r) noexcept {
    switch (r) {
        case CancelResult::delayed:
            return "delayed";
        case CancelResult::ready:
            return "ready";
        case CancelResult::active:
            return "active";
        case CancelResult::finished:
            return "finished";
    }
    return "finished";
}

}  // namespace v1

namespace detail {

void HandleState::resolve(TaskOutcome out) {
    std::vector<std::function<void(const TaskOutcome&)>> callbacks;
    {
        std::lock_guard lock(mutex);
        if (outcome) return;
        outcome = std::move(out);
        callbacks.swap(waiters);
    }
    cv.notify_all();
    for (auto& cb : callbacks) {
        try {
            cb(*outcome);  // outcome never changes once set
        } catch (const std::exception& e) {
            log().error("on_done callback for task {} threw: {}", id, e.what());
        }
    }
}

}  // namespace detail

inline namespace v1 {

TaskHandle::TaskHandle(std::shared_ptr<detail::HandleState> state) : state_(std::move(state)) {}

const TaskId& TaskHandle::id() const noexcept { return state_->id; }

TaskOutcome TaskHandle::wait() const {
    std::unique_lock lock(state_->mutex);
    state_->cv.wait(lock, [&] { return state_->outcome.has_value(); });
    return *state_->outcome;
}

std::optional<TaskOutcome> TaskHandle::wait_for(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(state_->mutex);
    if (!state_->cv.wait_for(lock, timeout, [&] { return state_->outcome.has_value(); })) {
        return std::nullopt;
    }
    return *state_->outcome;
}

void TaskHandle::on_done(std::function<void(const TaskOutcome&)> cb) const {
    {
        std::lock_guard lock(state_->mutex);
        if (!state_->outcome) {
            state_->waiters.push_back(std::move(cb));
            return;
        }
    }
    cb(*state_->outcome);
}

bool TaskHandle::done() const {
    std::lock_guard lock(state_->mutex);
    return state_->outcome.has_value();
}

}  // namespace v1
}  // namespace streamfleet
