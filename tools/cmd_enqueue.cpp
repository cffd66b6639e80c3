// `streamfleet enqueue`: submits tasks from --data, stdin lines or all of stdin.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <iterator>
#include <optional>
#include <streamfleet/streamfleet.hpp>
#include <string>
#include <vector>

#include "commands.hpp"
#include "task_options.hpp"

namespace cli {

using namespace std::chrono_literals;

int cmd_enqueue(const Flags& f) {
    auto redis = f.redis();
    auto queue = f.need("--queue");
    if (f.get("--data") && f.on("--lines")) {
        throw UsageError("--data and --lines exclude each other");
    }
    auto opts = task_options(f);
    auto timeout = f.number("--timeout-ms");
    bool track = f.on("--track");

    // Ride out a Redis outage: a full buffer makes enqueue wait for room rather
    // than fail, and the exit waits until Redis has every accepted task.
    streamfleet::Client client({.redis = redis,
                                .full_timeout = std::chrono::hours(24),
                                .spool_path = f.get("--spool").value_or(""),
                                .go_compatible = f.on("--go-compat")},
                               {queue});
    std::vector<streamfleet::TaskHandle> handles;
    int duplicates = 0;
    auto submit = [&](const std::string& data) {
        try {
            if (track) {
                handles.push_back(client.enqueue_tracked(queue, data, opts));
                std::cout << handles.back().id() << "\n" << std::flush;
            } else {
                std::cout << client.enqueue(queue, data, opts) << "\n" << std::flush;
            }
        } catch (const streamfleet::Duplicate& e) {
            // The rest still go: with --lines, one key refuses every line after the first.
            std::cerr << "streamfleet enqueue: duplicate of task " << e.existing_id() << "\n";
            ++duplicates;
        }
    };
    if (auto data = f.get("--data")) {
        submit(*data);
    } else if (f.on("--lines")) {
        std::string line;
        while (std::getline(std::cin, line)) submit(line);
    } else {
        std::string all((std::istreambuf_iterator<char>(std::cin)),
                        std::istreambuf_iterator<char>());
        submit(all);
    }

    int rc = duplicates > 0 ? 1 : 0;
    if (track) {
        auto until =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout.value_or(0));
        for (auto& h : handles) {
            std::optional<streamfleet::TaskOutcome> out;
            if (timeout) {
                auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    until - std::chrono::steady_clock::now());
                out = h.wait_for(std::max(left, 0ms));
            } else {
                out = h.wait();
            }
            if (!out) {
                std::cout << h.id() << " timeout: no outcome within " << *timeout << " ms\n";
                rc = 1;
                continue;
            }
            std::cout << h.id() << " " << streamfleet::to_string(out->status);
            if (!out->error.empty()) std::cout << ": " << out->error;
            std::cout << "\n";
            if (out->status != streamfleet::TaskStatus::completed) rc = 1;
        }
    }
    // Exit 0 only once every accepted task is in Redis.
    auto flush = timeout ? std::chrono::milliseconds(*timeout)
                         : std::chrono::duration_cast<std::chrono::milliseconds>(24h);
    if (!client.close(flush)) {
        std::cerr << "streamfleet: some tasks did not reach Redis within " << flush.count()
                  << " ms\n";
        return 1;
    }
    return rc;
}

}  // namespace cli
