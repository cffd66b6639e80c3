// ReplyDeadlines: replies that are answered by someone else's callback, or by a fallback once
// their deadline passes, whichever comes first. The gateway's /add waits for Redis this way
// without a thread per request: the client's loop answers, and while Redis is unreachable one
// watcher thread answers for it when the wait is over.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "http_server.hpp"

namespace cli {

class ReplyDeadlines {
public:
    // `timeout`: how long a reply waits; `fallback` makes the answer given then, from the note
    // kept with the reply.
    using Fallback = std::function<HttpResponse(const std::string& note)>;
    ReplyDeadlines(std::chrono::milliseconds timeout, Fallback fallback);
    ~ReplyDeadlines();
    ReplyDeadlines(const ReplyDeadlines&) = delete;
    ReplyDeadlines& operator=(const ReplyDeadlines&) = delete;

    // Keeps `reply` until take() or its deadline; returns the ticket to take it with.
    std::uint64_t keep(HttpReply reply);
    // Sets what `ticket`'s fallback is told, if it still waits.
    void note(std::uint64_t ticket, std::string note);
    // The reply of `ticket`, or nothing when its deadline answered it already.
    std::optional<HttpReply> take(std::uint64_t ticket);

private:
    void watch();

    const std::chrono::milliseconds timeout_;
    const Fallback fallback_;
    std::mutex m_;
    std::condition_variable cv_;
    bool stop_ = false;
    std::uint64_t next_ = 0;
    struct Waiting {
        HttpReply reply;
        std::string note;
    };
    std::unordered_map<std::uint64_t, Waiting> waiting_;
    // (deadline, ticket), in the order kept: one timeout for all, so deadlines only grow.
    std::deque<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>> order_;
    std::thread watcher_;
};

}  // namespace cli
