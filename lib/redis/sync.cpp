#include "redis/sync.hpp"

#include <future>

namespace streamfleet::detail::redis {

namespace {

template <class Send>
Result<Reply> call_with(Runtime& rt, std::vector<std::string> argv, Send send) {
    if (rt.in_loop_thread()) {
        // Waiting here would block the very loop that has to send the command.
        return Error(errc::invalid_argument,
                     "a blocking Redis call was made on the event-loop thread (from a callback such as "
                     "TaskHandle::on_done?); it would wait for itself: call it from another thread");
    }
    auto promise = std::make_shared<std::promise<Result<Reply>>>();
    auto future = promise->get_future();
    auto args = std::make_shared<std::vector<std::string>>(std::move(argv));
    bool posted = rt.post([promise, args, send] {
        std::vector<std::string_view> views(args->begin(), args->end());
        send(std::span<const std::string_view>(views),
             [promise](Result<Reply> r) { promise->set_value(std::move(r)); });
    });
    if (!posted) return Error(errc::closed, "runtime '" + rt.name() + "' is stopped");
    return future.get();
}

}  // namespace

Result<Reply> call(Runtime& rt, Topology& topology, std::vector<std::string> argv,
                   CommandOptions opts) {
    return call_with(rt, std::move(argv), [&topology, opts](auto argv, ReplyCallback cb) {
        topology.send(Route{}, argv, std::move(cb), opts);
    });
}

Result<Reply> call(Runtime& rt, const std::shared_ptr<Connection>& conn,
                   std::vector<std::string> argv, CommandOptions opts) {
    return call_with(rt, std::move(argv), [conn, opts](auto argv, ReplyCallback cb) {
        conn->send(argv, std::move(cb), opts);
    });
}

}  // namespace streamfleet::detail::redis
