// FinalStates: one turn's final states of a queue's finished tasks, as one transaction.
#include "server/final_states.hpp"

namespace streamfleet::detail {

void FinalStates::add(std::string_view task_id, std::string_view state, std::string_view error,
                      std::uint32_t retries, std::int64_t retention_ms) {
    tasks_.push_back(Task{std::string(task_id), std::string(state), std::string(error), retries,
                          retention_ms});
}

redis::Block FinalStates::take(std::int64_t now_ms) {
    redis::Block b(keys_->stream());
    const auto now = std::to_string(now_ms);
    for (const auto& t : tasks_) {
        const auto key = keys_->task(t.id);
        if (t.retention_ms == 0) {
            b.add({"DEL", key});
            continue;
        }
        const auto ttl = std::to_string(t.retention_ms);
        if (t.error.empty() && t.retries == 0) {
            b.add({"HSET", key, "state", t.state, "finished", now});
        } else {
            // A run before this one failed, and its error is in the record:
            // the final run's error replaces it, even when empty.
            b.add({"HSET", key, "state", t.state, "finished", now, "error", t.error});
        }
        b.add({"PEXPIRE", key, ttl});
    }
    tasks_.clear();
    return b;
}

}  // namespace streamfleet::detail
