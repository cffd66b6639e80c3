#pragma once

// A Runtime plus one Connection with blocking helpers, for tests that drive the
// Redis layer from the test thread.

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

}  // namespace streamfleet::test
