#include "streamfleet/inspector.hpp"

#include <future>

#include "core/clock.hpp"
#include "core/keys.hpp"
#include "redis/sync.hpp"
#include "redis/topology.hpp"
#include "runtime/runtime.hpp"

namespace streamfleet {
inline namespace v1 {

using namespace detail;
namespace r = detail::redis;

struct Inspector::Impl {
    std::string prefix;
    std::unique_ptr<r::Topology> topo;
    // Declared last: destroyed first, closing the topology's connections.
    std::unique_ptr<Runtime> rt;
};

Inspector::Inspector(std::string redis, std::string prefix) : impl_(std::make_unique<Impl>()) {
    if (auto st = validate_prefix(prefix); !st) throw_error(st.error());
    auto address = r::parse_url(redis).value();
    impl_->prefix = std::move(prefix);
    impl_->rt = std::make_unique<Runtime>("sf-inspect");
    impl_->topo = impl_->rt->call([&] {
        auto t = r::make_topology(*impl_->rt, address,
                                  r::ConnectionOptions{.offline_queue = false,
                                                       .client_name = "streamfleet-inspector"})
                     .value();
        t->start();
        return t;
    });
}

Inspector::~Inspector() {
    impl_->rt->call([this] { impl_->topo->close(); });
}

QueueStats Inspector::stats(std::string_view queue, std::chrono::milliseconds live_window) {
    if (auto st = validate_queue_name(queue); !st) throw_error(st.error());
    QueueKeys k(impl_->prefix, queue);
    auto since = std::to_string(SystemClock::instance().now_ms() - live_window.count());
    std::vector<std::vector<std::string>> cmds = {
        {"XLEN", k.stream()},
        {"XINFO", "GROUPS", k.stream()},
        {"ZCARD", k.delayed()},
        {"XLEN", k.dead()},
        {"ZCOUNT", k.clients(), since, "+inf"},
        {"ZCOUNT", k.servers(), since, "+inf"},
    };
    // All six leave in one write: one post, one loop turn.
    std::vector<std::promise<Result<r::Reply>>> promises(cmds.size());
    impl_->rt->post([&] {
        for (std::size_t i = 0; i < cmds.size(); ++i) {
            std::vector<std::string_view> argv(cmds[i].begin(), cmds[i].end());
            impl_->topo->send(r::Route{k.stream()}, argv,
                              [&p = promises[i]](Result<r::Reply> res) { p.set_value(std::move(res)); });
        }
    });
    std::vector<Result<r::Reply>> replies;
    for (auto& p : promises) replies.push_back(p.get_future().get());

    QueueStats s;
    s.queue = std::string(queue);
    s.stream_length = replies[0].value().integer();
    // XINFO GROUPS fails with "no such key" when the stream does not exist yet.
    if (replies[1].ok()) {
        for (const auto& g : replies[1]->elements()) {
            const auto& kv = g.elements();
            bool ours = false;
            std::int64_t consumers = 0, pending = 0;
            for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
                auto name = kv[i].str();
                if (name == "name") ours = kv[i + 1].str() == kServerGroup;
                else if (name == "consumers") consumers = kv[i + 1].integer();
                else if (name == "pending") pending = kv[i + 1].integer();
            }
            if (ours) {
                s.consumers = consumers;
                s.pending = pending;
            }
        }
    } else if (replies[1].error().message().find("no such key") == std::string::npos) {
        throw_error(replies[1].error());
    }
    s.delayed = replies[2].value().integer();
    s.dead = replies[3].value().integer();
    s.clients = replies[4].value().integer();
    s.servers = replies[5].value().integer();
    return s;
}

}  // namespace v1
}  // namespace streamfleet
