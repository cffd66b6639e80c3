// `streamfleet cancel`: cancels one task and prints where it was caught.
#include <chrono>
#include <iostream>
#include <streamfleet/streamfleet.hpp>

#include "commands.hpp"

namespace cli {

using namespace std::chrono_literals;

int cmd_cancel(const Flags& f) {
    auto queue = f.need("--queue");
    streamfleet::Client client(
        {.redis = f.redis(), .track_state = false, .go_compatible = f.on("--go-compat")},
        {queue});
    try {
        auto what = client.cancel(queue, f.need("--id"));
        std::cout << streamfleet::to_string(what) << "\n";
    } catch (const streamfleet::NotFound& e) {
        std::cerr << "streamfleet cancel: " << e.what() << "\n";
        client.close(1s);
        return 1;
    }
    client.close(1s);
    return 0;
}

}  // namespace cli
