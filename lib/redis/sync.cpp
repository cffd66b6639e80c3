#include "redis/sync.hpp"

#include <future>

#include "redis/script_runner.hpp"

namespace streamfleet::detail::redis {

namespace {

// Runs `start(reply_callback)` on the loop thread and waits for the reply.
template <class Start>
Result<Reply> wait_for(Runtime& rt, Start start) {
    if (rt.in_loop_thread()) {
        // Waiting here would block the very loop that has to send the command.
        return Error(
            errc::invalid_argument,
            "a blocking Redis call was made on the event-loop thread (from a callback such as "
            "TaskHandle::on_done?); it would wait for itself: call it from another thread");
    }
    auto promise = std::make_shared<std::promise<Result<Reply>>>();
    auto future = promise->get_future();
    bool posted = rt.post([promise, start = std::move(start)]() mutable {
        start([promise](Result<Reply> r) { promise->set_value(std::move(r)); });
    });
    if (!posted) return Error(errc::closed, "runtime '" + rt.name() + "' is stopped");
    return future.get();
}

}  // namespace

Result<Reply> call(Runtime& rt, Topology& topology, std::string route_key,
                   std::vector<std::string> argv, CommandOptions opts) {
    return wait_for(rt, [&topology, route_key = std::move(route_key), argv = std::move(argv),
                         opts](ReplyCallback cb) {
        std::vector<std::string_view> views(argv.begin(), argv.end());
        topology.send(Route{route_key}, views, std::move(cb), opts);
    });
}

Result<Reply> call(Runtime& rt, Topology& topology, ScriptCall script, CommandOptions opts) {
    return wait_for(rt, [&topology, script = std::move(script), opts](ReplyCallback cb) mutable {
        run_script(topology, std::move(script), std::move(cb), opts);
    });
}

Result<Reply> call(Runtime& rt, Topology& topology, const Block& block) {
    return wait_for(rt, [&topology, resp = block.resp(), route = block.route(),
                         opts = block.options()](ReplyCallback cb) {
        topology.send_encoded(Route{route}, resp, std::move(cb), opts);
    });
}

Result<Reply> call(Runtime& rt, const std::shared_ptr<Connection>& conn,
                   std::vector<std::string> argv, CommandOptions opts) {
    return wait_for(rt, [conn, argv = std::move(argv), opts](ReplyCallback cb) {
        std::vector<std::string_view> views(argv.begin(), argv.end());
        conn->send(views, std::move(cb), opts);
    });
}

}  // namespace streamfleet::detail::redis
