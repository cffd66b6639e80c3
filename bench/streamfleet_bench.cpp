// bench/streamfleet_bench: a Client and a Server in one process against one
// redis-server. Prints one JSON object per run.
//
//   streamfleet_bench --redis URL --scenario e2e|enqueue|latency|worker|delayed
//                     --tasks N --concurrency C [--tracked] [--rate R] [--payload-bytes B]
//                     [--no-state]   (ClientOptions::track_state = false: no state records)
//                     [--queues a,b,c] (tasks spread round-robin over these queues;
//                                       default: one queue, "bench")
//                     [--wait-replicas N] (Client/ServerOptions::wait_replicas, 1 s timeout)
//
// e2e      enqueue N no-op tasks as fast as possible; time until all are handled
//          (tracked: until every handle resolved).
// enqueue  enqueue only; time until the client confirms every task is in Redis.
//          Also reports redis_mem_bytes_per_task: used_memory growth / tasks,
//          with the tasks still queued (in e2e runs: what the finished tasks
//          keep, once every outcome is written).
// worker   a Server only (no Client in the process), handling N tasks already
//          queued by a previous `--scenario enqueue`: a worker process's memory
//          (max_rss_kb) and drain rate.
// latency  like e2e at a fixed rate R tasks/s; latencies are what matter.
// delayed  schedules N tasks (run_at) due evenly over max(2 s, N/10 ms), starting
//          after every one of them is in P{Q}:delayed. tasks_per_s is the
//          scheduling rate (until ZCARD shows all N); latencies are lateness:
//          handler start minus due time (wall clock, µs precision), with
//          lat_max_ms and `early` (runs before their due time; must be 0).
//
// Latency is enqueue → handler start, from a steady-clock stamp in the payload.

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "redis/sync.hpp"
#include "redis/topology.hpp"
#include "redis/url.hpp"
#include "runtime/runtime.hpp"
#include "streamfleet/streamfleet.hpp"

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;
namespace r = streamfleet::detail::redis;

namespace {

struct Args {
    std::string redis;
    std::string scenario;
    long tasks = 10'000;
    unsigned concurrency = 16;
    bool tracked = false;
    bool state = true;
    long rate = 0;
    long payload = 16;
    std::vector<std::string> queues{"bench"};
    long wait_replicas = 0;
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "streamfleet_bench: %s\nusage: streamfleet_bench --redis URL --scenario "
                 "e2e|enqueue|latency|delayed --tasks N --concurrency C [--tracked] [--rate R] "
                 "[--payload-bytes B]\n",
                 why.c_str());
    std::exit(2);
}

long to_long(const char* flag, const char* v) {
    char* end = nullptr;
    long n = std::strtol(v, &end, 10);
    if (!*v || *end || n < 0) usage(std::string(flag) + " needs a non-negative integer");
    return n;
}

Args parse(int argc, char** argv) {
    Args a;
    for (int i = 1; i < argc; ++i) {
        std::string f = argv[i];
        auto val = [&]() -> const char* {
            if (i + 1 >= argc) usage(f + " needs a value");
            return argv[++i];
        };
        if (f == "--redis")
            a.redis = val();
        else if (f == "--scenario")
            a.scenario = val();
        else if (f == "--tasks")
            a.tasks = to_long("--tasks", val());
        else if (f == "--concurrency")
            a.concurrency = static_cast<unsigned>(to_long("--concurrency", val()));
        else if (f == "--tracked")
            a.tracked = true;
        else if (f == "--no-state")
            a.state = false;
        else if (f == "--rate")
            a.rate = to_long("--rate", val());
        else if (f == "--payload-bytes")
            a.payload = to_long("--payload-bytes", val());
        else if (f == "--wait-replicas")
            a.wait_replicas = to_long("--wait-replicas", val());
        else if (f == "--queues") {
            a.queues.clear();
            std::string list = val();
            for (std::size_t at = 0; at <= list.size();) {
                auto comma = std::min(list.find(',', at), list.size());
                if (comma > at) a.queues.push_back(list.substr(at, comma - at));
                at = comma + 1;
            }
            if (a.queues.empty()) usage("--queues needs at least one name");
        } else
            usage("unknown flag '" + f + "'");
    }
    if (a.redis.empty()) usage("missing --redis");
    if (a.scenario != "e2e" && a.scenario != "enqueue" && a.scenario != "latency" &&
        a.scenario != "worker" && a.scenario != "delayed") {
        usage("--scenario must be e2e, enqueue, latency, worker or delayed");
    }
    if (a.scenario == "latency" && a.rate <= 0) usage("scenario 'latency' needs --rate R > 0");
    if (a.tasks <= 0 || a.concurrency == 0) usage("--tasks and --concurrency must be positive");
    if (a.payload < 8) a.payload = 8;  // room for the timestamp
    if (a.scenario == "delayed" && a.queues.size() != 1) usage("'delayed' runs on one queue");
    return a;
}

// Sum of the named numeric fields of one INFO section.
double info_sum(r::Topology& t, streamfleet::detail::Runtime& rt, const char* section,
                std::initializer_list<const char*> keys) {
    auto info = r::call(rt, t, "", {"INFO", section}).value();
    std::string s(info.str());
    double total = 0;
    for (const char* key : keys) {
        auto p = s.find(std::string("\n") + key);
        if (p != std::string::npos) total += std::stod(s.substr(p + 1 + std::strlen(key)));
    }
    return total;
}

// used_cpu_sys + used_cpu_user of the redis-server, in microseconds.
double redis_cpu_us(r::Topology& t, streamfleet::detail::Runtime& rt) {
    return info_sum(t, rt, "CPU", {"used_cpu_sys:", "used_cpu_user:"}) * 1e6;
}

double redis_mem(r::Topology& t, streamfleet::detail::Runtime& rt) {
    return info_sum(t, rt, "MEMORY", {"used_memory:"});
}

long long wall_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    std::size_t k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return v[k];
}

}  // namespace

int main(int argc, char** argv) {
    Args a = parse(argc, argv);
    try {
        streamfleet::detail::Runtime rt("sf-bench-admin");
        auto admin = rt.call([&] {
            auto t = r::make_topology(rt, r::parse_url(a.redis).value()).value();
            t->start();
            return t;
        });
        const bool worker_only = a.scenario == "worker";
        for (const auto& q : a.queues) {
            if (worker_only) break;
            const std::string k = "streamfleet:{" + q + "}";
            (void)r::call(rt, *admin, k, {"DEL", k, k + ":dead", k + ":delayed", k + ":nudge"})
                .value();
        }
        const std::string delayed_key = "streamfleet:{" + a.queues.front() + "}:delayed";

        std::mutex lat_mutex;
        std::vector<double> latencies;
        latencies.reserve(static_cast<std::size_t>(a.tasks));
        std::atomic<long> handled{0};

        std::unique_ptr<streamfleet::Server> server;
        if (a.scenario != "enqueue") {
            streamfleet::ServerOptions so{
                .redis = a.redis, .id = "bench-server", .concurrency = a.concurrency};
            so.wait_replicas.replicas = static_cast<int>(a.wait_replicas);
            server = std::make_unique<streamfleet::Server>(so);
            const bool lateness = a.scenario == "delayed";
            auto handler = [&, lateness](streamfleet::TaskContext& t) {
                long long stamp = 0;
                std::memcpy(&stamp, t.data().data(), sizeof stamp);
                double ms =
                    lateness
                        ? static_cast<double>(wall_us() - stamp) / 1000.0
                        : std::chrono::duration<double, std::milli>(
                              Steady::now().time_since_epoch() - std::chrono::nanoseconds(stamp))
                              .count();
                {
                    std::lock_guard lock(lat_mutex);
                    latencies.push_back(ms);
                }
                handled.fetch_add(1, std::memory_order_relaxed);
            };
            for (const auto& q : a.queues) server->handle(q, handler);
            server->start();
        }
        std::optional<streamfleet::Client> client;
        if (!worker_only) {
            streamfleet::ClientOptions co{
                .redis = a.redis, .max_buffered = 1'000'000, .track_state = a.state};
            co.wait_replicas.replicas = static_cast<int>(a.wait_replicas);
            client.emplace(co, a.queues);
        }
        std::string payload(static_cast<std::size_t>(a.payload), 'x');

        double cpu_before = redis_cpu_us(*admin, rt);
        double mem_before = redis_mem(*admin, rt);
        auto t0 = Steady::now();
        std::vector<streamfleet::TaskHandle> handles;
        if (a.tracked) handles.reserve(static_cast<std::size_t>(a.tasks));
        auto interval = a.rate > 0 ? std::chrono::nanoseconds(1'000'000'000 / a.rate) : 0ns;
        const bool delayed = a.scenario == "delayed";
        // Delayed: nothing is due before all are scheduled (lead), then the
        // due times spread evenly over the window.
        const long long lead_ms = 1000 + a.tasks / 50;
        const long long window_ms = std::max<long long>(2000, a.tasks / 10);
        const long long first_due_us = wall_us() + lead_ms * 1000;
        for (long i = 0; !worker_only && i < a.tasks; ++i) {
            if (a.rate > 0) {
                auto due = t0 + interval * i;
                while (Steady::now() < due) std::this_thread::sleep_until(due);
            }
            long long stamp = Steady::now().time_since_epoch().count();
            streamfleet::TaskOptions topts;
            if (delayed) {
                // Whole milliseconds: run_at's resolution on the wire.
                long long due_ms = (first_due_us + window_ms * 1000 * i / a.tasks) / 1000;
                topts.run_at =
                    std::chrono::system_clock::time_point(std::chrono::milliseconds(due_ms));
                stamp = due_ms * 1000;
            }
            std::memcpy(payload.data(), &stamp, sizeof stamp);
            const std::string& queue = a.queues[static_cast<std::size_t>(i) % a.queues.size()];
            for (;;) {
                try {
                    if (a.tracked)
                        handles.push_back(client->enqueue_tracked(queue, payload, topts));
                    else
                        client->enqueue(queue, payload, topts);
                    break;
                } catch (const streamfleet::QueueFull&) {
                    std::this_thread::sleep_for(1ms);  // back-pressure, not loss
                }
            }
        }
        double schedule_secs = 0;
        if (a.scenario == "enqueue") {
            client->close(120s);
        } else if (delayed) {
            while (r::call(rt, *admin, delayed_key, {"ZCARD", delayed_key}).value().integer() +
                       handled.load() <
                   a.tasks) {
                std::this_thread::sleep_for(1ms);
            }
            schedule_secs = std::chrono::duration<double>(Steady::now() - t0).count();
        } else if (a.tracked) {
            for (auto& h : handles) h.wait();
        }
        if (a.scenario != "enqueue") {
            auto give_up = Steady::now() + 600s;
            while (handled.load() < a.tasks) {
                if (Steady::now() > give_up) {
                    throw std::runtime_error("only " + std::to_string(handled.load()) + " of " +
                                             std::to_string(a.tasks) + " tasks handled in 600 s");
                }
                std::this_thread::sleep_for(200us);
            }
        }
        double secs = std::chrono::duration<double>(Steady::now() - t0).count();
        double cpu_after = redis_cpu_us(*admin, rt);
        if (server) server->shutdown(10s);
        // After the shutdown, which writes every outcome still on its way: in
        // an e2e run, what stays is what finished tasks keep for their retention.
        double mem_after = redis_mem(*admin, rt);
        if (client) client->close(10s);
        rt.call([&] { admin->close(); });

        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        std::vector<double> lat;
        {
            std::lock_guard lock(lat_mutex);
            lat = latencies;
        }
        std::printf(
            "{\"scenario\":\"%s\",\"tasks\":%ld,\"concurrency\":%u,\"tracked\":%s,\"state\":%s,"
            "\"rate\":%ld,"
            "\"payload_bytes\":%ld,\"seconds\":%.4f,\"tasks_per_s\":%.0f,\"lat_p50_ms\":%.3f,"
            "\"lat_p99_ms\":%.3f,\"max_rss_kb\":%ld,\"redis_cpu_us_per_task\":%.2f,"
            "\"redis_mem_bytes_per_task\":%.1f,\"lat_max_ms\":%.3f,\"early\":%ld}\n",
            a.scenario.c_str(), a.tasks, a.concurrency, a.tracked ? "true" : "false",
            a.state ? "true" : "false", a.rate, a.payload, secs,
            static_cast<double>(a.tasks) / (delayed ? schedule_secs : secs), percentile(lat, 0.50),
            percentile(lat, 0.99), ru.ru_maxrss,
            (cpu_after - cpu_before) / static_cast<double>(a.tasks),
            (mem_after - mem_before) / static_cast<double>(a.tasks),
            lat.empty() ? 0.0 : *std::max_element(lat.begin(), lat.end()),
            static_cast<long>(
                std::count_if(lat.begin(), lat.end(), [](double v) { return v < 0; })));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "streamfleet_bench: %s\n", e.what());
        return 1;
    }
}
