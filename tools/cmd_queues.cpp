// `streamfleet queues` (every queue in Redis with its counts) and `streamfleet top` (the same,
// refreshed in the terminal, with each queue's delivery rate).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <streamfleet/inspector.hpp>
#include <string>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "json.hpp"

namespace cli {

namespace {

namespace sf = streamfleet;

std::int64_t ready_of(const sf::QueueStats& s) {
    return s.stream_length > s.pending ? s.stream_length - s.pending : 0;
}

std::vector<std::string> queues_of(const Flags& f, sf::Inspector& inspector) {
    if (auto it = f.values.find("--queue"); it != f.values.end() && !it->second.empty())
        return it->second;
    return inspector.queues();
}

void print_table(const std::vector<sf::QueueStats>& rows,
                 const std::map<std::string, double>* rates) {
    std::size_t w = 5;
    for (const auto& s : rows) w = std::max(w, s.queue.size());
    std::printf("%-*s %9s %9s %9s %9s %7s %7s%s\n", static_cast<int>(w), "QUEUE", "READY",
                "DELAYED", "ACTIVE", "DEAD", "SERVERS", "CLIENTS", rates ? "  DELIVERED/S" : "");
    for (const auto& s : rows) {
        std::printf("%-*s %9lld %9lld %9lld %9lld %7lld %7lld", static_cast<int>(w),
                    s.queue.c_str(), static_cast<long long>(ready_of(s)),
                    static_cast<long long>(s.delayed), static_cast<long long>(s.pending),
                    static_cast<long long>(s.dead), static_cast<long long>(s.servers),
                    static_cast<long long>(s.clients));
        if (rates) {
            auto it = rates->find(s.queue);
            if (it == rates->end()) {
                std::printf("  %12s", "-");
            } else {
                std::printf("  %12.1f", it->second);
            }
        }
        std::printf("\n");
    }
}

}  // namespace

int cmd_queues(const Flags& f) {
    sf::Inspector inspector(f.redis(), "streamfleet:", f.on("--go-compat"));
    std::vector<sf::QueueStats> rows;
    for (const auto& q : queues_of(f, inspector)) rows.push_back(inspector.stats(q));
    if (f.on("--json")) {
        for (const auto& s : rows) {
            std::puts(JsonObject()
                          .str("queue", s.queue)
                          .num("ready", ready_of(s))
                          .num("delayed", s.delayed)
                          .num("active", s.pending)
                          .num("dead", s.dead)
                          .num("servers", s.servers)
                          .num("clients", s.clients)
                          .num("delivered", s.delivered)
                          .str("node", s.node)
                          .text()
                          .c_str());
        }
    } else if (rows.empty()) {
        std::printf("no queues\n");
    } else {
        print_table(rows, nullptr);
    }
    return 0;
}

int cmd_top(const Flags& f) {
    sf::Inspector inspector(f.redis(), "streamfleet:", f.on("--go-compat"));
    auto interval = std::chrono::milliseconds(f.number("--interval-ms").value_or(1000));
    if (interval.count() == 0) throw UsageError("--interval-ms must be positive");
    auto iterations = f.number("--iterations");  // unset: until interrupted
    const bool tty = isatty(1) != 0;
    std::map<std::string, std::pair<std::int64_t, std::chrono::steady_clock::time_point>> last;
    for (long long i = 0; !iterations || i < *iterations; ++i) {
        if (i > 0) std::this_thread::sleep_for(interval);
        std::vector<sf::QueueStats> rows;
        std::map<std::string, double> rates;
        auto now = std::chrono::steady_clock::now();
        for (const auto& q : queues_of(f, inspector)) {
            auto s = inspector.stats(q);
            if (auto it = last.find(q);
                it != last.end() && s.delivered >= 0 && it->second.first >= 0) {
                double secs = std::chrono::duration<double>(now - it->second.second).count();
                if (secs > 0) rates[q] = static_cast<double>(s.delivered - it->second.first) / secs;
            }
            last[q] = {s.delivered, now};
            rows.push_back(std::move(s));
        }
        if (tty) std::printf("\x1b[H\x1b[2J");  // home, clear: a screen that refreshes in place
        print_table(rows, &rates);
        if (!tty) std::printf("\n");
        std::fflush(stdout);
    }
    return 0;
}

}  // namespace cli
