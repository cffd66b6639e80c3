// Tracked tasks: wait for outcomes, or get called back.
//
//   tracked --redis redis://127.0.0.1:6379
//
// Run a server for the "reports" queue elsewhere (for example
// `quickstart`-style code or the streamfleet CLI's worker); this program only
// enqueues and reports what happened.

#include <cstdio>
#include <cstring>
#include <latch>
#include <streamfleet/streamfleet.hpp>

int main(int argc, char** argv) {
    std::string redis =
        argc == 3 && std::strcmp(argv[1], "--redis") == 0 ? argv[2] : "redis://127.0.0.1:6379";
    try {
        streamfleet::Client client({.redis = redis}, {"reports"});
        // Blocking wait, bounded.
        auto h =
            client.enqueue_tracked("reports", "monthly", {.expires_in = std::chrono::seconds(60)});
        if (auto out = h.wait_for(std::chrono::seconds(5))) {
            std::printf("%s: %s\n", h.id().c_str(),
                        std::string(streamfleet::to_string(out->status)).c_str());
        } else {
            std::printf("%s: still running after 5 s (is a worker up?)\n", h.id().c_str());
        }
        // Callback style: runs on the client's loop thread when the outcome arrives.
        std::latch done(1);
        auto h2 =
            client.enqueue_tracked("reports", "weekly", {.expires_in = std::chrono::seconds(5)});
        h2.on_done([&](const streamfleet::TaskOutcome& out) {
            std::printf("%s: %s %s\n", h2.id().c_str(),
                        std::string(streamfleet::to_string(out.status)).c_str(), out.error.c_str());
            done.count_down();
        });
        // close() resolves still-open handles as closed, so the latch always opens.
        if (!h2.wait_for(std::chrono::seconds(5))) client.close();
        done.wait();
        return 0;
    } catch (const streamfleet::Error& e) {
        std::fprintf(stderr, "tracked: %s\n", e.what());
        return 1;
    }
}
