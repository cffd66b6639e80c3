// `streamfleet worker`: serves queues by running a shell command per task, until SIGTERM/SIGINT.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <streamfleet/streamfleet.hpp>
#include <string>
#include <thread>
#include <vector>

#include "commands.hpp"
#include "run_command.hpp"
#include "shutdown_signals.hpp"

namespace cli {

using namespace std::chrono_literals;

int cmd_worker(const Flags& f) {
    auto redis = f.redis();
    auto id = f.need("--id");
    auto cmd = f.need("--exec");
    if (!f.values.count("--queue")) throw UsageError("missing required flag --queue");
    unsigned concurrency = 4;
    if (auto n = f.number("--concurrency")) {
        if (*n == 0 || *n > 10'000) throw UsageError("--concurrency must be in 1..10000");
        concurrency = static_cast<unsigned>(*n);
    }

    // Before any thread starts: one thread waits for the signals and shuts down gracefully.
    auto sigs = block_shutdown_signals();

    streamfleet::ServerOptions so{.redis = redis, .id = id, .concurrency = concurrency};
    so.go_compatible = f.on("--go-compat");
    if (auto n = f.number("--lease-ms")) so.lease = std::chrono::milliseconds(*n);
    if (auto n = f.number("--heartbeat-ms")) {
        if (*n == 0) throw UsageError("--heartbeat-ms must be positive");
        so.heartbeat_interval = std::chrono::milliseconds(*n);
        so.dead_after = 3 * so.heartbeat_interval;  // dead after three missed beats
    }
    if (auto n = f.number("--max-deliveries")) {
        if (*n == 0 || *n > 0xffffffffLL) {
            throw UsageError("--max-deliveries must be in 1..4294967295");
        }
        so.max_deliveries = static_cast<std::uint32_t>(*n);
    }
    streamfleet::Server server(so);
    for (const auto& q : f.values.at("--queue")) {
        server.handle(q, [cmd](streamfleet::TaskContext& t) {
            std::vector<std::string> env = {
                "STREAMFLEET_TASK_ID=" + t.id(),
                "STREAMFLEET_QUEUE=" + t.queue(),
                "STREAMFLEET_RETRIES=" + std::to_string(t.retries()),
                "STREAMFLEET_DELIVERIES=" + std::to_string(t.deliveries()),
            };
            if (auto err = run_command(cmd, t.data(), env, t.cancel_token())) {
                throw std::runtime_error(*err);
            }
        });
    }
    std::atomic<bool> exiting{false};
    std::thread waiter([&] {
        int sig = 0;
        sigwait(&sigs, &sig);
        if (exiting) return;  // woken by ourselves at exit
        std::cerr << "streamfleet worker " << id << ": " << strsignal(sig) << ", shutting down\n";
        server.shutdown(10s);
    });
    server.run();
    // run() also returns if shutdown came from elsewhere; release the waiter.
    exiting = true;
    pthread_kill(waiter.native_handle(), SIGTERM);
    waiter.join();
    return 0;
}

}  // namespace cli
