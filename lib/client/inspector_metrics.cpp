// Inspector::metrics_text(): the queues' gauges in the Prometheus text format, from stats() and
// pending() (what a dashboard reads too).
#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "core/clock.hpp"
#include "core/metrics.hpp"
#include "streamfleet/inspector.hpp"

namespace streamfleet {
inline namespace v1 {

using detail::PromText;

std::string Inspector::metrics_text(const std::vector<std::string>& queues,
                                    std::chrono::milliseconds live_window) {
    struct Row {
        QueueStats s;
        double oldest_s = 0;
    };
    std::vector<Row> rows;
    const auto now = detail::SystemClock::instance().now_ms();
    for (const auto& q : queues) {
        Row r{stats(q, live_window), 0};
        if (r.s.pending > 0) {
            auto oldest = pending(q, 1);
            // An entry id's milliseconds are when the entry was added.
            if (!oldest.empty()) {
                auto added = std::atoll(oldest.front().entry_id.c_str());
                r.oldest_s = static_cast<double>(std::max<std::int64_t>(now - added, 0)) / 1000.0;
            }
        }
        rows.push_back(std::move(r));
    }
    struct Gauge {
        const char* name;
        const char* help;
        double (*value)(const Row&);
    };
    static constexpr Gauge kGauges[] = {
        {"streamfleet_queue_ready", "Tasks in the queue not yet delivered to a server.",
         [](const Row& r) {
             return static_cast<double>(std::max<std::int64_t>(r.s.stream_length - r.s.pending, 0));
         }},
        {"streamfleet_queue_delayed",
         "Tasks waiting for their time (scheduled or between retries).",
         [](const Row& r) { return static_cast<double>(r.s.delayed); }},
        {"streamfleet_queue_pending", "Tasks delivered to a server and not finished.",
         [](const Row& r) { return static_cast<double>(r.s.pending); }},
        {"streamfleet_queue_dead", "Dead letters kept.",
         [](const Row& r) { return static_cast<double>(r.s.dead); }},
        {"streamfleet_queue_oldest_pending_age_seconds",
         "Age of the oldest delivered, unfinished task's entry (0 when none).",
         [](const Row& r) { return r.oldest_s; }},
        {"streamfleet_servers_live", "Servers of the queue with a recent heartbeat.",
         [](const Row& r) { return static_cast<double>(r.s.servers); }},
        {"streamfleet_clients_live", "Clients of the queue with a recent heartbeat.",
         [](const Row& r) { return static_cast<double>(r.s.clients); }},
    };
    // Redis's own counts (P{Q}:finished), all servers': they only grow, so counters.
    static constexpr Gauge kEnded[] = {
        {"streamfleet_queue_tasks_completed_total", "Tasks of the queue completed, all servers'.",
         [](const Row& r) { return static_cast<double>(r.s.completed); }},
        {"streamfleet_queue_tasks_dead_total", "Tasks of the queue dead-lettered, all servers'.",
         [](const Row& r) { return static_cast<double>(r.s.dead_total); }},
        {"streamfleet_queue_tasks_expired_total", "Tasks of the queue expired, all servers'.",
         [](const Row& r) { return static_cast<double>(r.s.expired); }},
        {"streamfleet_queue_tasks_canceled_total", "Tasks of the queue canceled, all servers'.",
         [](const Row& r) { return static_cast<double>(r.s.canceled); }},
    };
    PromText p;
    for (const auto& g : kGauges) {
        p.family(g.name, "gauge", g.help);
        for (const auto& r : rows) p.sample(g.name, "queue", r.s.queue, g.value(r));
    }
    for (const auto& c : kEnded) {
        p.family(c.name, "counter", c.help);
        for (const auto& r : rows) p.sample(c.name, "queue", r.s.queue, c.value(r));
    }
    return p.text();
}

}  // namespace v1
}  // namespace streamfleet
