#include "redis/script_runner.hpp"

#include <memory>

#include "redis/resp.hpp"

namespace streamfleet::detail::redis {

void run_script(Topology& topo, ScriptCall call, ReplyCallback cb, CommandOptions opts) {
    auto owned = std::make_shared<ScriptCall>(std::move(call));
    auto argv = owned->argv(false);
    topo.send(
        Route{owned->route_key()}, argv,
        [&topo, owned, cb = std::move(cb), opts](Result<Reply> res) mutable {
            if (!res.ok() && res.error().is(reply_errc::noscript)) {
                auto again = owned->argv(true);
                topo.send(
                    Route{owned->route_key()}, again,
                    [owned, cb = std::move(cb)](Result<Reply> r) { cb(std::move(r)); }, opts);
                return;
            }
            cb(std::move(res));
        },
        opts);
}

void append_script_head(std::string& out, const Script& script, bool by_body, std::size_t nkeys,
                        std::size_t nargs) {
    CommandWriter w(out, 3 + nkeys + nargs, script.body.size() + 64);
    w.arg(by_body ? std::string_view("EVAL") : std::string_view("EVALSHA"));
    w.arg(by_body ? script.body : script.sha1);
    w.arg(static_cast<std::int64_t>(nkeys));
}

}  // namespace streamfleet::detail::redis
