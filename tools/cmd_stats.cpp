// `streamfleet stats`: one queue's counters and the node serving it, as a table or one JSON
// line.
#include <cstdio>
#include <streamfleet/inspector.hpp>

#include "commands.hpp"
#include "json.hpp"

namespace cli {

int cmd_stats(const Flags& f) {
    auto redis = f.redis();
    auto queue = f.need("--queue");
    streamfleet::Inspector inspector(redis, "streamfleet:", f.on("--go-compat"));
    auto s = inspector.stats(queue);
    if (f.on("--json")) {
        std::puts(JsonObject()
                      .str("queue", s.queue)
                      .num("stream_length", s.stream_length)
                      .num("pending", s.pending)
                      .num("consumers", s.consumers)
                      .num("delayed", s.delayed)
                      .num("dead", s.dead)
                      .num("clients", s.clients)
                      .num("servers", s.servers)
                      .str("node", s.node)
                      .raw("finished", JsonObject()
                                           .num("completed", s.completed)
                                           .num("dead", s.dead_total)
                                           .num("expired", s.expired)
                                           .num("canceled", s.canceled)
                                           .text())
                      .text()
                      .c_str());
    } else {
        std::printf(
            "queue          %s\nstream length  %lld\npending        %lld\nconsumers      %lld\n"
            "delayed        %lld\ndead           %lld\nlive clients   %lld\nlive servers   %lld\n"
            "node           %s\n",
            s.queue.c_str(), static_cast<long long>(s.stream_length),
            static_cast<long long>(s.pending), static_cast<long long>(s.consumers),
            static_cast<long long>(s.delayed), static_cast<long long>(s.dead),
            static_cast<long long>(s.clients), static_cast<long long>(s.servers), s.node.c_str());
        std::printf("finished       %lld completed, %lld dead, %lld expired, %lld canceled\n",
                    static_cast<long long>(s.completed), static_cast<long long>(s.dead_total),
                    static_cast<long long>(s.expired), static_cast<long long>(s.canceled));
    }
    return 0;
}

}  // namespace cli
