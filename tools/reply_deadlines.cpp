// ReplyDeadlines (see reply_deadlines.hpp).
#include "reply_deadlines.hpp"

#include <vector>

namespace cli {

ReplyDeadlines::ReplyDeadlines(std::chrono::milliseconds timeout, Fallback fallback)
    : timeout_(timeout), fallback_(std::move(fallback)), watcher_([this] { watch(); }) {}

ReplyDeadlines::~ReplyDeadlines() {
    {
        std::lock_guard lock(m_);
        stop_ = true;
    }
    cv_.notify_one();
    watcher_.join();
}

std::uint64_t ReplyDeadlines::keep(HttpReply reply) {
    std::lock_guard lock(m_);
    auto ticket = next_++;
    waiting_.emplace(ticket, Waiting{std::move(reply), {}});
    // Tickets already answered leave `order_` only at their deadline: bound it by trimming the
    // front while it is answered, so a busy gateway's queue holds what is in flight.
    while (!order_.empty() && !waiting_.count(order_.front().second)) order_.pop_front();
    order_.emplace_back(std::chrono::steady_clock::now() + timeout_, ticket);
    return ticket;
}

void ReplyDeadlines::note(std::uint64_t ticket, std::string note) {
    std::lock_guard lock(m_);
    if (auto it = waiting_.find(ticket); it != waiting_.end()) it->second.note = std::move(note);
}

std::optional<HttpReply> ReplyDeadlines::take(std::uint64_t ticket) {
    std::lock_guard lock(m_);
    auto it = waiting_.find(ticket);
    if (it == waiting_.end()) return std::nullopt;
    auto reply = std::move(it->second.reply);
    waiting_.erase(it);
    return reply;
}

void ReplyDeadlines::watch() {
    std::unique_lock lock(m_);
    while (!stop_) {
        cv_.wait_for(lock, std::chrono::milliseconds(100));
        std::vector<Waiting> due;
        auto now = std::chrono::steady_clock::now();
        while (!order_.empty() && order_.front().first <= now) {
            if (auto it = waiting_.find(order_.front().second); it != waiting_.end()) {
                due.push_back(std::move(it->second));
                waiting_.erase(it);
            }
            order_.pop_front();
        }
        if (due.empty()) continue;
        lock.unlock();
        for (auto& w : due) w.reply(fallback_(w.note));
        lock.lock();
    }
}

}  // namespace cli
