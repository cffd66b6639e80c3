// `streamfleet dead list|requeue|purge`: the queue's dead letters.
#include <cstddef>
#include <cstdio>
#include <streamfleet/inspector.hpp>

#include "commands.hpp"
#include "json.hpp"

namespace cli {

int cmd_dead_list(const Flags& f) {
    streamfleet::Inspector inspector(f.redis(), "streamfleet:", f.on("--go-compat"));
    auto limit = static_cast<std::size_t>(f.number("--limit").value_or(1000));
    auto letters = inspector.dead_letters(f.need("--queue"), limit);
    for (const auto& d : letters) {
        if (f.on("--json")) {
            JsonArray history;
            for (const auto& h : d.history) history.str(h);
            JsonObject fields;
            for (const auto& [k, v] : d.fields) {
                if (k == "x_history") continue;  // binary; shown decoded as "history"
                fields.str(k, v);
            }
            std::puts(JsonObject()
                          .str("entry_id", d.entry_id)
                          .str("id", d.id)
                          .str("error", d.error)
                          .num("retries", d.retries)
                          .num("died_at_ms", d.died_at_ms)
                          .str("data", d.data)
                          .raw("history", history.text())
                          .raw("fields", fields.text())
                          .text()
                          .c_str());
        } else {
            std::printf("%s  %s  retries=%u  %s\n", d.entry_id.c_str(), d.id.c_str(), d.retries,
                        d.error.c_str());
        }
    }
    return 0;
}

int cmd_dead_requeue(const Flags& f) {
    auto queue = f.need("--queue");
    auto id = f.get("--id");
    if (id.has_value() == f.on("--all")) {
        throw UsageError("dead requeue needs exactly one of --id ID and --all");
    }
    streamfleet::Inspector inspector(f.redis(), "streamfleet:", f.on("--go-compat"));
    if (f.on("--all")) {
        std::printf("%zu\n", inspector.requeue_all_dead(queue));
        return 0;
    }
    if (!inspector.requeue_dead(queue, *id)) {
        std::fprintf(stderr, "streamfleet dead requeue: no dead letter of task %s in queue %s\n",
                     id->c_str(), queue.c_str());
        return 1;
    }
    return 0;
}

int cmd_dead_purge(const Flags& f) {
    streamfleet::Inspector inspector(f.redis(), "streamfleet:", f.on("--go-compat"));
    std::printf("%zu\n", inspector.purge_dead(f.need("--queue")));
    return 0;
}

}  // namespace cli
