// `streamfleet get`: one task's state; exit 1 when the task is unknown.
#include <chrono>
#include <cstdio>
#include <streamfleet/streamfleet.hpp>
#include <string>

#include "commands.hpp"
#include "json.hpp"

namespace cli {

using namespace std::chrono_literals;

int cmd_get(const Flags& f) {
    auto queue = f.need("--queue");
    streamfleet::Client client(
        {.redis = f.redis(), .track_state = false, .go_compatible = f.on("--go-compat")},
        {queue});
    auto t = client.get(queue, f.need("--id"));
    client.close(1s);
    std::string state(streamfleet::to_string(t.state));
    if (f.on("--json")) {
        JsonArray history;
        for (const auto& h : t.history) history.str(h);
        std::puts(JsonObject()
                      .str("id", t.id)
                      .str("state", state)
                      .num("retries", t.retries)
                      .str("error", t.error)
                      .num("created_ms", t.created_ms)
                      .num("updated_ms", t.updated_ms)
                      .num("finished_ms", t.finished_ms)
                      .num("run_at_ms", t.run_at_ms)
                      .raw("history", history.text())
                      .text()
                      .c_str());
    } else {
        std::printf(
            "id        %s\nstate     %s\nretries   %u\nerror     %s\ncreated   %lld\nupdated   "
            "%lld\n"
            "finished  %lld\nrun_at    %lld\n",
            t.id.c_str(), state.c_str(), t.retries, t.error.c_str(),
            static_cast<long long>(t.created_ms), static_cast<long long>(t.updated_ms),
            static_cast<long long>(t.finished_ms), static_cast<long long>(t.run_at_ms));
        // Each failed run: "UNIX_MS error".
        for (const auto& h : t.history) std::printf("history   %s\n", h.c_str());
    }
    return t.state == streamfleet::TaskState::unknown ? 1 : 0;
}

}  // namespace cli
