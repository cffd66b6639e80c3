#pragma once

// A Runtime plus one Connection with blocking helpers, for tests that drive the
// Redis layer from the test thread.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "redis/connection.hpp"
#include "redis/sync.hpp"
#include "redis/url.hpp"
#include "runtime/runtime.hpp"

namespace streamfleet::test {

namespace r = detail::redis;

class TestConn {
public:
    explicit TestConn(const std::string& url, r::ConnectionOptions options = {}) {
        auto address = r::parse_url(url).value();
        r::ServerConfig cfg{address.endpoints.front(), address.username, address.password,
                            address.db};
        conn_ = rt_.call([&] {
            auto c = r::Connection::create(rt_, cfg, options);
            c->start();
            return c;
        });
    }
    ~TestConn() {
        if (!rt_.stopping()) rt_.call([this] { conn_->close(); });
    }

    detail::Result<r::Reply> cmd(std::vector<std::string> argv, r::CommandOptions opts = {}) {
        return r::call(rt_, conn_, std::move(argv), opts);
    }

    detail::Runtime& rt() { return rt_; }
    const std::shared_ptr<r::Connection>& conn() { return conn_; }

private:
    // rt_ first: it must outlive the connection, whose handles live on its loop.
    detail::Runtime rt_{"sf-test"};
    std::shared_ptr<r::Connection> conn_;
};

/// Entries of `stream` delivered to the servers' group and not yet acked.
inline long long pending_count(TestConn& c, const std::string& stream = "streamfleet:{q}") {
    return c.cmd({"XPENDING", stream, "streamfleet-server"}).value()[0].integer();
}

/// The field/value pairs of one stream entry (`[id, [k, v, ...]]`) as a map.
inline std::map<std::string, std::string> entry_fields(const r::Reply& entry) {
    std::map<std::string, std::string> out;
    const auto& kv = entry[1];
    for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
        out[std::string(kv[i].str())] = std::string(kv[i + 1].str());
    }
    return out;
}

}  // namespace streamfleet::test
