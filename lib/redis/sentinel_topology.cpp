#include "redis/sentinel_topology.hpp"

#include <algorithm>
#include <charconv>
#include <utility>

#include "core/backoff.hpp"
#include "core/log.hpp"

namespace streamfleet::detail::redis {

namespace {

// Sentinel questions are small and a sentinel either answers at once or is
// gone: a short bound keeps a dead one from holding up the next.
constexpr milliseconds kAskTimeout{1000};
// A switch the subscription missed (its sentinel was away) is found by this.
constexpr milliseconds kRefreshEvery{2000};
constexpr milliseconds kRetryMin{100};
constexpr milliseconds kRetryMax{1000};

std::optional<Endpoint> endpoint_of(std::string_view ip, std::string_view port) {
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ip.empty() || ec != std::errc() || end != port.data() + port.size() || p == 0 ||
        p > 65535) {
        return std::nullopt;
    }
    return Endpoint{.host = std::string(ip), .port = static_cast<std::uint16_t>(p), .path = {}};
}

// A reply saying the node we write to is not (or not yet) a usable master.
bool says_not_master(const Error& e) {
    auto k = e.reply();
    return k == reply_errc::readonly || k == reply_errc::loading || k == reply_errc::masterdown;
}

class SentinelTopology final : public Topology {
public:
    SentinelTopology(Runtime& rt, Address address, ConnectionOptions options)
        : rt_(rt),
          address_(std::move(address)),
          options_(std::move(options)),
          sentinels_(address_.endpoints),
          retry_timer_(rt.loop()),
          refresh_timer_(rt.loop()) {
        main_ = data_connection(options_);
        main_->on_state([this](ConnState st, const Error* why) {
            if (st == ConnState::down) lost_data_link(why);
        });
        stop_hook_ = rt_.add_stop_hook([this] { close(); });
    }
    ~SentinelTopology() override { close(); }

    void start() override {
        if (started_ || closed_) return;
        started_ = true;
        auto sentinel_opts = options_;
        sentinel_opts.command_timeout = kAskTimeout;
        sentinel_opts.connect_timeout = kAskTimeout;
        sentinel_opts.offline_queue = false;  // a dead sentinel fails at once: ask the next
        if (!sentinel_opts.client_name.empty()) sentinel_opts.client_name += ":sentinel";
        ask_ = Connection::create(rt_, sentinel_config(), sentinel_opts);
        ask_->set_endpoint_source([this]() -> Result<Endpoint> { return sentinels_[ask_at_]; });
        subscribe(sentinel_opts);
        resolve(true);
    }

    void when_ready(std::function<void()> cb) override { cb(); }
    int shard(std::string_view) const override { return 0; }

    // What every data connection reports as its endpoint: the master, or,
    // before one is known, the placeholder they were created with, so a
    // reader never takes a connection still waiting for the master as moved.
    std::string node_of(std::string_view) const override {
        return master_ ? master_->to_string() : sentinels_.front().to_string();
    }

    void send(const Route&, std::span<const std::string_view> argv, ReplyCallback cb,
              CommandOptions opts) override {
        main_->send(argv, watch(std::move(cb)), opts);
    }

    void send_encoded(const Route&, std::string_view resp, ReplyCallback cb,
                      CommandOptions opts) override {
        main_->send_encoded(resp, watch(std::move(cb)), opts);
    }

    std::shared_ptr<Connection> dedicated(const Route&, std::string_view purpose) override {
        auto opts = options_;
        if (!opts.client_name.empty()) {
            opts.client_name += ':';
            opts.client_name += purpose;
        }
        auto conn = data_connection(std::move(opts));
        std::weak_ptr<int> alive = alive_;
        conn->on_state([this, alive](ConnState st, const Error* why) {
            if (alive.lock() && st == ConnState::down) lost_data_link(why);
        });
        std::erase_if(dedicated_, [](const auto& w) { return w.expired(); });
        dedicated_.push_back(conn);
        if (known_) conn->start();  // else when the master is first confirmed
        return conn;
    }

    void on_state(StateCallback cb) override { main_->on_state(std::move(cb)); }

    void close() override {
        if (closed_) return;
        closed_ = true;
        alive_.reset();
        if (stop_hook_ != 0) rt_.remove_stop_hook(std::exchange(stop_hook_, 0));
        retry_timer_.close();
        refresh_timer_.close();
        for (auto* c : {&main_, &ask_, &sub_, &probe_}) {
            if (*c) (*c)->close();
        }
    }

    std::string describe() const override {
        auto out = address_.redacted();
        if (master_) out += " (master " + master_->to_string() + ")";
        return out;
    }

private:
    ServerConfig sentinel_config() const {
        return ServerConfig{sentinels_.front(), address_.sentinel_username,
                            address_.sentinel_password, 0};
    }

    // A connection to whatever the confirmed master is at each connect.
    std::shared_ptr<Connection> data_connection(ConnectionOptions opts) {
        auto conn = Connection::create(
            rt_,
            ServerConfig{sentinels_.front(), address_.username, address_.password, address_.db},
            std::move(opts));
        std::weak_ptr<int> alive = alive_;
        conn->set_endpoint_source([this, alive]() -> Result<Endpoint> {
            if (!alive.lock()) return Error(errc::closed, "the Sentinel topology is closed");
            return master_endpoint();
        });
        return conn;
    }

    Result<Endpoint> master_endpoint() const {
        if (fatal_) return *fatal_;
        if (confirmed_ && master_) return *master_;
        std::string msg = "no confirmed master for '" + address_.master_name + "' from sentinels " +
                          address_.redacted() + " yet";
        if (!problem_.empty()) msg += " (" + problem_ + ")";
        return Error(errc::connect_failed, std::move(msg));
    }

    // Replies that say the master moved set off a new question; the caller
    // still gets its error (transient) and resends through its usual path.
    ReplyCallback watch(ReplyCallback cb) {
        return [this, alive = std::weak_ptr<int>(alive_),
                cb = std::move(cb)](Result<Reply> r) mutable {
            if (!r.ok() && says_not_master(r.error()) && alive.lock()) resolve(true);
            cb(std::move(r));
        };
    }

    void lost_data_link(const Error* why) {
        if (closed_ || moving_) return;
        log().debug("sentinel {}: data link down ({}); asking the sentinels", address_.master_name,
                    why ? why->message() : std::string("?"));
        resolve(true);
    }

    // ---- finding the master ----

    // `suspect`: the current master may be gone, so no connection may connect
    // until a new answer is confirmed.
    void resolve(bool suspect) {
        if (closed_) return;
        if (suspect) confirmed_ = false;
        if (asking_) {
            again_ = true;
            return;
        }
        retry_timer_.stop();
        tried_ = 0;
        unknown_ = 0;
        ask_next();
    }

    void ask_next() {
        asking_ = true;
        if (ask_->state() == ConnState::down) {
            ask_->reconnect(Error(errc::connection_lost, "next sentinel"));
        } else {
            ask_->start();
        }
        ask_->send({"SENTINEL", "get-master-addr-by-name", address_.master_name},
                   [this](Result<Reply> r) { on_master_addr(std::move(r)); });
    }

    void on_master_addr(Result<Reply> r) {
        if (closed_) return;
        std::string where = sentinels_[ask_at_].to_string();
        std::optional<Endpoint> ep;
        if (r.ok() && r->is_array() && r->size() == 2) {
            ep = endpoint_of((*r)[0].as_string().value_or(""), (*r)[1].as_string().value_or(""));
        }
        if (ep && confirmed_ && master_ == ep) {
            // The periodic question, answered as before: no need for a ROLE
            // probe (a new connection) every time; a demoted master would
            // answer READONLY, which asks again with confirmed_ cleared.
            confirmed(*ep);
            return;
        }
        if (ep) {
            check_role(*ep);
            return;
        }
        ++tried_;
        if (r.ok() && r->is_nil()) {
            ++unknown_;
            problem_ = "sentinel " + where + " does not know master '" + address_.master_name + "'";
        } else if (!r.ok()) {
            problem_ = "sentinel " + where + ": " + r.error().message();
        } else {
            problem_ = "sentinel " + where + " sent an unexpected reply " +
                       r->debug_string().substr(0, 100);
        }
        ask_at_ = (ask_at_ + 1) % sentinels_.size();
        ask_->reconnect(Error(errc::connection_lost, "asking the next sentinel"));
        if (tried_ < sentinels_.size()) {
            ask_next();
            return;
        }
        if (unknown_ == tried_) give_up_unknown();
        round_failed();
    }

    // Every sentinel answered, and none monitors that name: a wrong URL, not
    // an outage, so commands fail at once rather than wait for their deadline.
    void give_up_unknown() {
        if (fatal_) return;  // said already
        fatal_ =
            Error(errc::invalid_argument, "no sentinel of " + address_.redacted() +
                                              " monitors a master named '" + address_.master_name +
                                              "' (SENTINEL get-master-addr-by-name answered "
                                              "nil on every sentinel)");
        log().warn("{}", fatal_->message());
        start_data_links();  // so their queued commands fail with this error
    }

    void check_role(const Endpoint& ep) {
        auto opts = options_;
        opts.command_timeout = kAskTimeout;
        opts.connect_timeout = kAskTimeout;
        opts.offline_queue = false;
        if (!opts.client_name.empty()) opts.client_name += ":role";
        probe_ = Connection::create(
            rt_, ServerConfig{ep, address_.username, address_.password, address_.db}, opts);
        probe_->start();
        probe_->send({"ROLE"}, [this, ep, probe = probe_](Result<Reply> r) {
            probe->close();
            if (closed_) return;
            if (r.ok() && r->is_array() && r->size() > 0 &&
                (*r)[0].as_string() == std::optional<std::string_view>("master")) {
                confirmed(ep);
                return;
            }
            problem_ = ep.to_string() + " is not a master yet: " +
                       (r.ok() ? r->debug_string().substr(0, 60) : r.error().message());
            round_failed();
        });
    }

    void round_failed() {
        asking_ = false;
        log().debug("sentinel {}: {}", address_.master_name, problem_);
        if (again_) {
            again_ = false;
            resolve(false);
            return;
        }
        static SeededRandom rng;
        auto delay = reconnect_delay(failures_++, kRetryMin, kRetryMax, rng.next());
        retry_timer_.start(static_cast<std::uint64_t>(delay.count()), [this] { resolve(false); });
        // Their commands learn why (or, offline_queue off, fail with it now)
        // rather than time out with no reason.
        start_data_links();
    }

    void confirmed(const Endpoint& ep) {
        asking_ = false;
        failures_ = 0;
        problem_.clear();
        fatal_.reset();
        bool moved = master_ && *master_ != ep;
        if (moved) {
            log().info("sentinel {}: master moved from {} to {}", address_.master_name,
                       master_->to_string(), ep.to_string());
            ++switches_;
        }
        master_ = ep;
        confirmed_ = true;
        start_data_links();
        // Every link moves: a reader blocked on the old master would wait
        // there forever, and a write there fails READONLY or is lost.
        moving_ = true;
        for_each_data_link([&](Connection& c) {
            if (moved) {
                c.reconnect(Error(errc::connection_lost, "master moved to " + ep.to_string()));
            } else if (c.state() == ConnState::down) {
                c.reconnect(Error(errc::connection_lost, "master confirmed"));
            }
        });
        moving_ = false;
        learn_sentinels();
        if (again_) {
            again_ = false;
            resolve(false);
            return;
        }
        refresh_timer_.start(static_cast<std::uint64_t>(kRefreshEvery.count()),
                             [this] { resolve(false); });
    }

    void start_data_links() {
        if (known_) return;
        known_ = true;
        main_->start();
        for (auto& w : dedicated_) {
            if (auto c = w.lock()) c->start();
        }
    }

    template <class F>
    void for_each_data_link(F&& f) {
        auto keep = main_;
        f(*keep);
        auto links = dedicated_;
        for (auto& w : links) {
            if (auto c = w.lock()) f(*c);
        }
    }

    // So the seed sentinels may all die later: the answer lists the others.
    void learn_sentinels() {
        ask_->send({"SENTINEL", "sentinels", address_.master_name}, [this](Result<Reply> r) {
            if (closed_ || !r.ok() || !r->is_array()) return;
            for (const auto& s : r->elements()) {
                if (!s.is_array()) continue;
                std::string_view ip, port;
                for (std::size_t i = 0; i + 1 < s.size(); i += 2) {
                    auto k = s[i].as_string().value_or("");
                    if (k == "ip") ip = s[i + 1].as_string().value_or("");
                    if (k == "port") port = s[i + 1].as_string().value_or("");
                }
                auto ep = endpoint_of(ip, port);
                if (ep &&
                    std::find(sentinels_.begin(), sentinels_.end(), *ep) == sentinels_.end()) {
                    log().debug("sentinel {}: learned sentinel {}", address_.master_name,
                                ep->to_string());
                    sentinels_.push_back(std::move(*ep));
                }
            }
        });
    }

    // ---- +switch-master ----

    void subscribe(const ConnectionOptions& opts) {
        sub_ = Connection::create(rt_, sentinel_config(), opts);
        sub_->set_endpoint_source([this]() -> Result<Endpoint> { return sentinels_[sub_at_]; });
        sub_->on_message([this](const Reply& m) {
            // "+switch-master <name> <old ip> <old port> <new ip> <new port>"
            auto text = m[2].as_string().value_or("");
            if (text.substr(0, text.find(' ')) != address_.master_name) return;
            log().info("sentinel {}: +switch-master {}", address_.master_name, text);
            resolve(true);
        });
        sub_->on_state([this](ConnState st, const Error*) {
            if (closed_) return;
            if (st == ConnState::down) {
                sub_at_ = (sub_at_ + 1) % sentinels_.size();  // that one may be gone for good
            } else if (st == ConnState::ready) {
                sub_->send({"SUBSCRIBE", "+switch-master"}, [](Result<Reply>) {});
                // A switch may have happened while we were not listening.
                resolve(false);
            }
        });
        sub_->start();
    }

    Runtime& rt_;
    Address address_;
    ConnectionOptions options_;
    std::vector<Endpoint> sentinels_;  // seeds first, then learned ones
    std::size_t ask_at_ = 0;           // the sentinel asked next
    std::size_t sub_at_ = 0;           // the sentinel subscribed to
    std::shared_ptr<Connection> main_;
    std::vector<std::weak_ptr<Connection>> dedicated_;
    std::shared_ptr<Connection> ask_;    // questions to a sentinel
    std::shared_ptr<Connection> sub_;    // +switch-master subscription
    std::shared_ptr<Connection> probe_;  // ROLE of a candidate master
    std::optional<Endpoint> master_;     // last confirmed master
    bool confirmed_ = false;             // master_ is believed now
    bool known_ = false;                 // a master was confirmed once: data links started
    bool started_ = false;
    bool closed_ = false;
    bool asking_ = false;  // a round of questions is running
    bool again_ = false;   // ask again when it ends
    bool moving_ = false;  // we are resetting the data links ourselves
    std::size_t tried_ = 0, unknown_ = 0;
    unsigned failures_ = 0;
    std::uint64_t switches_ = 0;
    std::string problem_;         // why the last round failed, for errors
    std::optional<Error> fatal_;  // the URL names no master any sentinel knows
    std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // for callbacks outliving us
    std::uint64_t stop_hook_ = 0;
    Timer retry_timer_;
    Timer refresh_timer_;
};

}  // namespace

std::unique_ptr<Topology> make_sentinel_topology(Runtime& rt, Address address,
                                                 ConnectionOptions options) {
    return std::make_unique<SentinelTopology>(rt, std::move(address), std::move(options));
}

}  // namespace streamfleet::detail::redis
