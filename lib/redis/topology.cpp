#include "redis/topology.hpp"

#include "redis/cluster_topology.hpp"
#include "redis/sentinel_topology.hpp"
#include "redis/slot.hpp"

namespace streamfleet::detail::redis {

namespace {

// One server: one shared pipelined connection plus dedicated ones on request.
class Standalone final : public Topology {
public:
    Standalone(Runtime& rt, Address address, ConnectionOptions options)
        : rt_(rt), address_(std::move(address)), options_(std::move(options)) {
        main_ = Connection::create(rt_, server_config(), options_);
    }
    ~Standalone() override { close(); }

    void start() override {
        main_->on_state([this](ConnState st, const Error*) {
            if (st == ConnState::ready && !known_ && !probing_) probe();
        });
        main_->start();
        probe();
    }

    void when_ready(std::function<void()> cb) override {
        if (known_) {
            cb();
            return;
        }
        waiting_.push_back(std::move(cb));
    }

    int shard(std::string_view key) const override { return cluster_ ? key_slot(key) : 0; }

    std::string node_of(std::string_view) const override {
        return address_.endpoints.front().to_string();
    }

    void send(const Route&, std::span<const std::string_view> argv, ReplyCallback cb,
              CommandOptions opts) override {
        main_->send(argv, std::move(cb), opts);
    }

    void send_encoded(const Route&, std::string_view resp, ReplyCallback cb,
                      CommandOptions opts) override {
        main_->send_encoded(resp, std::move(cb), opts);
    }

    std::shared_ptr<Connection> dedicated(const Route&, std::string_view purpose) override {
        auto opts = options_;
        if (!opts.client_name.empty()) {
            opts.client_name +=
                ':';  // not `+= ":" + std::string(...)`: g++ 12 -O3 -Wrestrict false positive
            opts.client_name += purpose;
        }
        auto conn = Connection::create(rt_, server_config(), std::move(opts));
        conn->start();
        return conn;
    }

    void on_state(StateCallback cb) override { main_->on_state(std::move(cb)); }

    void close() override {
        waiting_.clear();
        main_->close();
    }

    std::string describe() const override { return address_.redacted(); }

private:
    // Learns whether the server is a cluster node. The probe is the first
    // command on the shared connection, so its reply comes before that of
    // anything sent after it. A server that refuses INFO (an ACL) is taken
    // for a plain one; a link failure asks again on the next connect.
    void probe() {
        probing_ = true;
        main_->send({"INFO", "cluster"}, [this](Result<Reply> res) {
            probing_ = false;
            if (known_) return;
            if (!res.ok() && res.error().is_transient()) return;  // asked again once connected
            if (!res.ok() && res.error().is(errc::closed)) return;
            if (res.ok()) {
                auto text = res->as_string().value_or("");
                cluster_ = text.find("cluster_enabled:1") != std::string_view::npos;
            }
            known_ = true;
            auto waiting = std::move(waiting_);
            waiting_.clear();
            for (auto& cb : waiting) cb();
        });
    }

    ServerConfig server_config() const {
        return ServerConfig{address_.endpoints.front(), address_.username, address_.password,
                            address_.db};
    }

    Runtime& rt_;
    Address address_;
    ConnectionOptions options_;
    std::shared_ptr<Connection> main_;
    bool known_ = false;    // the probe has answered
    bool probing_ = false;  // a probe is in flight
    bool cluster_ = false;  // the server is a cluster node: shard by slot
    std::vector<std::function<void()>> waiting_;
};

}  // namespace

bool is_redirect(const Error& e) noexcept {
    return e.is(reply_errc::moved) || e.is(reply_errc::ask) || e.is(reply_errc::clusterdown) ||
           e.is(reply_errc::tryagain);
}

void relearn(Topology& topo, std::string key, std::function<void()> then) {
    auto k = std::make_shared<std::string>(std::move(key));
    topo.send(Route{*k}, {"EXISTS", *k}, [k, then = std::move(then)](Result<Reply>) { then(); });
}

Result<std::unique_ptr<Topology>> make_topology(Runtime& rt, const Address& address,
                                                ConnectionOptions options) {
    switch (address.scheme) {
        case Scheme::redis:
        case Scheme::unix_socket:
            if (address.endpoints.size() != 1) {
                return Error(errc::invalid_argument,
                             "expected exactly one endpoint in " + address.redacted());
            }
            return std::unique_ptr<Topology>(new Standalone(rt, address, std::move(options)));
        case Scheme::rediss:
            return Error(errc::unsupported,
                         "TLS (rediss://) is not supported yet: " + address.redacted());
        case Scheme::sentinel:
            return make_sentinel_topology(rt, address, std::move(options));
        case Scheme::cluster:
            if (address.endpoints.empty()) {
                return Error(errc::invalid_argument, "no seed node in " + address.redacted());
            }
            return std::unique_ptr<Topology>(new ClusterTopology(rt, address, std::move(options)));
    }
    return Error(errc::invalid_argument, "unknown scheme in " + address.redacted());
}

}  // namespace streamfleet::detail::redis
