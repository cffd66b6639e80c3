// Server::metrics_text(): this server's counters and histograms in the Prometheus text format.
#include "core/metrics.hpp"
#include "server/server_impl.hpp"

namespace streamfleet {
inline namespace v1 {

Server::Stats Server::stats(std::string_view queue) const {
    auto& im = *impl_;
    {
        std::lock_guard lock(im.state_mutex);
        if (!im.built) throw InvalidArgument("stats(queue) needs a started server");
    }
    for (const auto& q : im.queues) {
        if (q.keys.queue() != queue) continue;
        const auto& m = *im.counters.queues[q.index];
        Stats s;
        s.succeeded = m.completed.load();
        s.failed = m.failed.load();
        s.retried = m.retried.load();
        s.dead = m.dead.load();
        s.expired = m.expired.load();
        s.canceled = m.canceled.load();
        return s;
    }
    throw InvalidArgument("queue '" + std::string(queue) + "' is not one of this server's");
}

std::string Server::metrics_text() const {
    auto& im = *impl_;
    {
        std::lock_guard lock(im.state_mutex);
        if (!im.built) return "";
    }
    struct Counter {
        const char* name;
        const char* help;
        std::atomic<std::uint64_t> QueueMetrics::*field;
    };
    static constexpr Counter kCounters[] = {
        {"streamfleet_tasks_completed_total", "Tasks this server completed.",
         &QueueMetrics::completed},
        {"streamfleet_tasks_failed_total", "Runs on this server that failed (retried or dead).",
         &QueueMetrics::failed},
        {"streamfleet_tasks_retried_total", "Failed tasks this server scheduled for a retry.",
         &QueueMetrics::retried},
        {"streamfleet_tasks_dead_total", "Tasks this server dead-lettered.", &QueueMetrics::dead},
        {"streamfleet_tasks_expired_total", "Tasks this server found expired and did not run.",
         &QueueMetrics::expired},
        {"streamfleet_tasks_canceled_total", "Tasks this server ended as canceled.",
         &QueueMetrics::canceled},
    };
    PromText p;
    for (const auto& c : kCounters) {
        p.family(c.name, "counter", c.help);
        for (const auto& q : im.queues) {
            auto& m = *im.counters.queues[q.index];
            p.sample(c.name, "queue", q.keys.queue(),
                     static_cast<double>((m.*c.field).load(std::memory_order_relaxed)));
        }
    }
    p.family("streamfleet_handler_duration_seconds", "histogram",
             "Runs on this server, from start to outcome (pulled: pop to settle).");
    for (const auto& q : im.queues) {
        p.histogram("streamfleet_handler_duration_seconds", "queue", q.keys.queue(),
                    im.counters.queues[q.index]->handler_seconds.snapshot());
    }
    p.family("streamfleet_start_latency_seconds", "histogram",
             "From enqueue (or the due time) to the start of a run on this server.");
    for (const auto& q : im.queues) {
        p.histogram("streamfleet_start_latency_seconds", "queue", q.keys.queue(),
                    im.counters.queues[q.index]->start_latency_seconds.snapshot());
    }
    return p.text();
}

}  // namespace v1
}  // namespace streamfleet
