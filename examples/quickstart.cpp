// Quick start: a client and a server in one process.
//
//   quickstart --redis redis://127.0.0.1:6379
//
// The server handles the "emails" queue with 4 handler threads; the client
// enqueues fire-and-forget tasks, tracked tasks, and one that fails twice
// before it succeeds, then waits for the outcomes.

#include <atomic>
#include <cstdio>
#include <cstring>
#include <streamfleet/streamfleet.hpp>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
    std::string redis = "redis://127.0.0.1:6379";
    if (argc == 3 && std::strcmp(argv[1], "--redis") == 0)
        redis = argv[2];
    else if (argc != 1) {
        std::fprintf(stderr, "usage: %s [--redis URL]\n", argv[0]);
        return 2;
    }
    try {
        std::atomic<int> handled{0};
        streamfleet::Server server({.redis = redis, .id = "quickstart-worker", .concurrency = 4});
        server.handle("emails", [&](streamfleet::TaskContext& task) {
            ++handled;
            if (task.data() == "flaky" && task.retries() < 2) {
                throw std::runtime_error("mail server busy (attempt " +
                                         std::to_string(task.retries() + 1) + ")");
            }
            std::printf("  [worker] sent %.*s (retries %u)\n", static_cast<int>(task.data().size()),
                        task.data().data(), task.retries());
        });
        server.start();

        streamfleet::Client client({.redis = redis}, {"emails"});
        std::printf("client %s enqueues to %s\n", client.id().c_str(), redis.c_str());
        for (int i = 0; i < 5; ++i) client.enqueue("emails", "newsletter #" + std::to_string(i));

        std::vector<streamfleet::TaskHandle> tracked;
        tracked.push_back(client.enqueue_tracked("emails", "welcome mail"));
        tracked.push_back(client.enqueue_tracked("emails", "flaky", {.max_retries = 3}));
        tracked.push_back(client.enqueue_tracked("emails", "receipt"));

        bool all_ok = true;
        for (auto& h : tracked) {
            auto out = h.wait_for(std::chrono::seconds(30));
            if (!out) {
                std::printf("task %s: no outcome within 30 s\n", h.id().c_str());
                all_ok = false;
                continue;
            }
            std::printf("task %s: %s%s%s\n", h.id().c_str(),
                        std::string(streamfleet::to_string(out->status)).c_str(),
                        out->error.empty() ? "" : ": ", out->error.c_str());
            all_ok = all_ok && out->status == streamfleet::TaskStatus::completed;
        }
        client.close();
        // Fire-and-forget tasks have no outcome to wait for; give them a moment.
        for (int i = 0; i < 300 && handled < 10; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        server.shutdown(std::chrono::seconds(5));
        auto s = server.stats();
        std::printf("server: %llu succeeded, %llu retried, %llu dead (handler ran %d times)\n",
                    static_cast<unsigned long long>(s.succeeded),
                    static_cast<unsigned long long>(s.retried),
                    static_cast<unsigned long long>(s.dead), handled.load());
        return all_ok && s.succeeded == 8 ? 0 : 1;
    } catch (const streamfleet::Error& e) {
        std::fprintf(stderr, "quickstart failed: %s\n", e.what());
        return 1;
    }
}
