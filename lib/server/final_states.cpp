// FinalStates: one turn's final states of a queue's finished tasks, as one transaction.
#include "server/final_states.hpp"

#include "core/done_format.hpp"

namespace streamfleet::detail {

void FinalStates::add(std::string_view task_id, std::string_view state, std::int64_t created_ms,
                      std::uint32_t retries, std::int64_t retention_ms) {
    tasks_.push_back(
        Task{std::string(task_id), std::string(state), created_ms, retries, retention_ms});
}

redis::Block FinalStates::take(std::int64_t now_ms) {
    redis::Block b(keys_->stream());
    buckets_.begin_block();
    // Out of the index, or of its record (a task that was delayed, retried or asked to stop has
    // one): one command each for the whole turn.
    std::vector<std::string> records;
    std::vector<std::string_view> del{"DEL"}, hdel{"HDEL", keys_->index()};
    records.reserve(tasks_.size());
    for (const auto& t : tasks_) {
        records.push_back(keys_->task(t.id));
        hdel.push_back(t.id);
    }
    del.insert(del.end(), records.begin(), records.end());
    b.add(hdel);
    b.add(del);
    for (const auto& t : tasks_) {
        if (t.retention_ms <= 0) continue;
        buckets_.add(b, t.id, done::encode_state(t.state, now_ms, t.created_ms, t.retries),
                     t.retention_ms, now_ms);
    }
    tasks_.clear();
    return b;
}

}  // namespace streamfleet::detail
