// ClusterTopology: slot map, routing, redirections and retries (see cluster_topology.hpp).

#include "redis/cluster_topology.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>

#include "core/log.hpp"
#include "redis/resp.hpp"
#include "redis/slot.hpp"

namespace streamfleet::detail::redis {

using namespace std::chrono_literals;

namespace {

// TRYAGAIN / CLUSTERDOWN backoff: doubling from the first step up to the last.
constexpr auto kRetryFirst = 25ms;
constexpr auto kRetryMax = 500ms;

// Every topology of the process, for tests that cannot reach the one inside a Client or Server.
struct Totals {
    std::atomic<std::uint64_t> moved{0}, ask{0}, tryagain{0}, clusterdown{0}, rerouted{0};
} g_totals;

}  // namespace

// "host:port" (or "[v6]:port") into an endpoint; an empty host is the one asked.
std::optional<Endpoint> ClusterTopology::parse_address(std::string_view s, const Endpoint& asked) {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    auto host = s.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    unsigned port = 0;
    auto ps = s.substr(colon + 1);
    auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
    if (ec != std::errc() || p != ps.data() + ps.size() || port == 0 || port > 65535) {
        return std::nullopt;
    }
    Endpoint e;
    e.host = host.empty() || host == "?" ? asked.host : std::string(host);
    e.port = static_cast<std::uint16_t>(port);
    return e;
}

std::atomic<std::uint64_t> ClusterTopology::g_refreshes{0};

ClusterCounters ClusterTopology::totals() noexcept {
    ClusterCounters c;
    c.moved = g_totals.moved.load();
    c.ask = g_totals.ask.load();
    c.tryagain = g_totals.tryagain.load();
    c.clusterdown = g_totals.clusterdown.load();
    c.rerouted = g_totals.rerouted.load();
    c.refreshes = g_refreshes.load();
    return c;
}

struct ClusterTopology::Command {
    std::string resp;
    std::string key;
    std::uint16_t slot = 0;
    ReplyCallback cb;
    CommandOptions opts;
    Clock::time_point deadline;
    std::uint64_t seq = 0;  // dispatch order, for gates
    std::string ask_to;     // "host:port" an ASK named, for the next dispatch only
    bool done = false;

    void finish(Result<Reply> res) {
        if (done) return;
        done = true;
        auto f = std::move(cb);
        if (f) f(std::move(res));
    }
};

ClusterTopology::ClusterTopology(Runtime& rt, Address address, ConnectionOptions options)
    : rt_(rt),
      address_(std::move(address)),
      options_(std::move(options)),
      owner_of_(kSlots),
      inflight_(kSlots, 0),
      refresh_timer_(rt.loop()),
      pump_timer_(rt.loop()),
      alive_(std::make_shared<bool>(true)) {}

ClusterTopology::~ClusterTopology() {
    close();
    *alive_ = false;
}

int ClusterTopology::key_slot_of(std::string_view key) { return key_slot(key); }

void ClusterTopology::start() { refresh(); }

void ClusterTopology::when_ready(std::function<void()> cb) {
    if (known_) {
        cb();
        return;
    }
    waiting_.push_back(std::move(cb));
}

std::string ClusterTopology::node_of(std::string_view key) const {
    const auto& owner = owner_of_[key_slot(key)];
    return owner.empty() ? address_.endpoints.front().to_string() : owner;
}

std::vector<std::string> ClusterTopology::primaries() const {
    std::vector<std::string> out;
    for (const auto& [hp, n] : nodes_) {
        if (n.primary) out.push_back(hp);
    }
    return out;
}

ServerConfig ClusterTopology::server_config(const Endpoint& e) const {
    // A cluster has database 0 only.
    return ServerConfig{e, address_.username, address_.password, 0};
}

void ClusterTopology::send(const Route& route, std::span<const std::string_view> argv,
                           ReplyCallback cb, CommandOptions opts) {
    std::string resp;
    append_command(resp, argv);
    send_encoded(route, resp, std::move(cb), opts);
}

void ClusterTopology::send_encoded(const Route& route, std::string_view resp, ReplyCallback cb,
                                   CommandOptions opts) {
    auto cmd = std::make_shared<Command>();
    cmd->resp = std::string(resp);
    cmd->key = std::string(route.key);
    cmd->slot = key_slot(route.key);
    cmd->cb = std::move(cb);
    cmd->opts = opts;
    auto budget = opts.timeout.count() > 0 ? opts.timeout : options_.command_timeout;
    cmd->deadline = Clock::now() + budget + opts.block +
                    milliseconds(static_cast<long long>(resp.size() / kBytesPerMs));
    if (closed_) {
        rt_.post([cmd] { cmd->finish(Error(errc::closed, "cluster topology closed")); });
        return;
    }
    submit(std::move(cmd));
}

void ClusterTopology::submit(std::shared_ptr<Command> cmd) {
    if (!known_) {
        early_.push_back(std::move(cmd));
        return;
    }
    auto g = gates_.find(cmd->slot);
    if (g != gates_.end()) {
        // A reply or the gate's timer moves it on; never a callback inside send().
        g->second.held.push_back(std::move(cmd));
        return;
    }
    Node* node = owner(cmd->slot);
    if (!node) {
        // The slot has no primary in the map (being failed over): wait for a new map.
        refresh_soon();
        redirect_later(cmd, true);
        return;
    }
    dispatch(cmd, node, false);
}

ClusterTopology::Node* ClusterTopology::owner(std::uint16_t slot) {
    const auto& hp = owner_of_[slot];
    if (hp.empty()) return nullptr;
    auto it = nodes_.find(hp);
    return it == nodes_.end() ? nullptr : &it->second;
}

ClusterTopology::Node& ClusterTopology::node_at(const std::string& hostport,
                                                const Endpoint& endpoint) {
    auto it = nodes_.find(hostport);
    if (it == nodes_.end()) it = nodes_.emplace(hostport, Node{endpoint, nullptr, false}).first;
    return it->second;
}

Connection& ClusterTopology::conn_of(Node& node) {
    if (!node.conn || node.conn->state() == ConnState::closed) {
        node.conn = Connection::create(rt_, server_config(node.endpoint), options_);
        std::weak_ptr<bool> alive = alive_;
        auto hp = node.endpoint.to_string();
        node.conn->on_state([this, alive, hp](ConnState st, const Error* why) {
            if (alive.expired() || closed_) return;
            if (st == ConnState::down) {
                auto it = nodes_.find(hp);
                if (it != nodes_.end() && it->second.primary) {
                    refresh_soon();
                    notify(ConnState::down, why);
                }
            } else if (st == ConnState::ready && known_) {
                notify(ConnState::ready, nullptr);
            }
        });
        node.conn->start();
    }
    return *node.conn;
}

void ClusterTopology::dispatch(const std::shared_ptr<Command>& cmd, Node* node, bool asking) {
    auto now = Clock::now();
    if (now >= cmd->deadline) {
        cmd->finish(Error(errc::timeout, "command for slot " + std::to_string(cmd->slot) +
                                             " timed out while the cluster redirected it"));
        return;
    }
    auto& conn = conn_of(*node);
    if (conn.state() == ConnState::down && !asking) {
        // Its node is unreachable (dead, or being failed over): held here rather than queued
        // on a link that may never return, and routed again once a new map names the new owner.
        refresh_soon();
        redirect_later(cmd, true);
        return;
    }
    auto left = std::chrono::ceil<milliseconds>(cmd->deadline - now) - cmd->opts.block;
    CommandOptions o{std::max(left, milliseconds(1)), cmd->opts.block};
    if (asking)
        conn.send(
            {"ASKING"}, [](Result<Reply>) {}, o);
    o.replies = cmd->opts.replies;
    inflight_[cmd->slot] += 1;
    cmd->seq = ++seq_;
    std::weak_ptr<bool> alive = alive_;
    auto hp = node->endpoint.to_string();
    conn.send_encoded(
        cmd->resp,
        [this, alive, cmd, hp](Result<Reply> res) {
            if (alive.expired()) {
                cmd->finish(std::move(res));
                return;
            }
            on_reply(cmd, hp, std::move(res));
        },
        o);
}

void ClusterTopology::on_reply(const std::shared_ptr<Command>& cmd, const std::string& hp,
                               Result<Reply> res) {
    inflight_[cmd->slot] -= 1;
    auto g = gates_.find(cmd->slot);
    bool gated = g != gates_.end();
    if (gated && cmd->seq <= g->second.opened_seq && g->second.older > 0) {
        g->second.older -= 1;
    }
    if (res.ok() || closed_) {
        cmd->finish(std::move(res));
        if (gated) pump(cmd->slot);
        return;
    }
    const auto& e = res.error();
    auto asked = nodes_.count(hp) ? nodes_.at(hp).endpoint : address_.endpoints.front();
    if (e.is(reply_errc::moved) || e.is(reply_errc::ask)) {
        // "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381"
        const auto& text = e.message();
        auto sp = text.rfind(' ');
        auto target =
            sp == std::string::npos ? std::nullopt : parse_address(text.substr(sp + 1), asked);
        if (!target) {
            cmd->finish(std::move(res));
            if (gated) pump(cmd->slot);
            return;
        }
        auto thp = target->to_string();
        node_at(thp, *target);
        if (e.is(reply_errc::moved)) {
            counters_.moved += 1;
            g_totals.moved.fetch_add(1, std::memory_order_relaxed);
            owner_of_[cmd->slot] = thp;
            refresh_soon();
        } else {
            counters_.ask += 1;
            g_totals.ask.fetch_add(1, std::memory_order_relaxed);
            cmd->ask_to = thp;
        }
        redirect_later(cmd, false);
        return;
    }
    if (e.is(reply_errc::tryagain) || e.is(reply_errc::clusterdown)) {
        if (e.is(reply_errc::tryagain)) {
            counters_.tryagain += 1;
            g_totals.tryagain.fetch_add(1, std::memory_order_relaxed);
        } else {
            counters_.clusterdown += 1;
            g_totals.clusterdown.fetch_add(1, std::memory_order_relaxed);
            refresh_soon();
        }
        redirect_later(cmd, true);
        return;
    }
    if (e.is(errc::closed)) {
        // Closed by us (retire_departed) while it waited for its node's link: never written.
        counters_.rerouted += 1;
        g_totals.rerouted.fetch_add(1, std::memory_order_relaxed);
        redirect_later(cmd, false);
        return;
    }
    if (e.is_transient()) refresh_soon();
    cmd->finish(std::move(res));
    if (gated) pump(cmd->slot);
}

// Puts `cmd` in its slot's gate ahead of anything sent after the gate closed; with `backoff`
// the whole slot waits a little (TRYAGAIN: a migration in progress; CLUSTERDOWN: a failover).
void ClusterTopology::redirect_later(const std::shared_ptr<Command>& cmd, bool backoff) {
    auto [it, fresh] = gates_.try_emplace(cmd->slot);
    auto& g = it->second;
    if (fresh) {
        g.opened_seq = seq_;
        g.older = inflight_[cmd->slot];
        log().debug("{}: slot {} gated ({} older in flight)", describe(), cmd->slot, g.older);
    }
    g.again.push_back(cmd);
    if (backoff) {
        auto step =
            std::min<milliseconds>(kRetryFirst * (1u << std::min(g.retries, 5u)), kRetryMax);
        g.retries += 1;
        g.not_before = std::max(g.not_before, Clock::now() + step);
    }
    pump(cmd->slot);
}

void ClusterTopology::pump(std::uint16_t slot) {
    auto it = gates_.find(slot);
    if (it == gates_.end()) return;
    auto& g = it->second;
    auto now = Clock::now();
    if (now < g.not_before) {
        arm_pump();
        return;
    }
    // Taken out first: a dispatch may come back here (an immediate failure) and change the gate.
    auto again = std::move(g.again);
    g.again.clear();
    bool release = g.older == 0;
    std::deque<std::shared_ptr<Command>> held;
    if (release) {
        held = std::move(g.held);
        gates_.erase(it);
        log().debug("{}: slot {} released ({} resent, {} held)", describe(), slot, again.size(),
                    held.size());
    }
    auto send_one = [this](const std::shared_ptr<Command>& c) {
        if (!c->ask_to.empty()) {
            auto target = std::move(c->ask_to);
            c->ask_to.clear();
            auto n = nodes_.find(target);
            if (n != nodes_.end()) {
                dispatch(c, &n->second, true);
                return;
            }
        }
        Node* node = owner(c->slot);
        if (!node) {
            if (Clock::now() >= c->deadline) {
                c->finish(Error(errc::timeout, "no node serves slot " + std::to_string(c->slot)));
                return;
            }
            refresh_soon();
            redirect_later(c, true);
            return;
        }
        dispatch(c, node, false);
    };
    // A send may close a new gate for the slot (its node is down): what follows it then waits
    // in that gate, in order, rather than overtaking it.
    for (auto& c : again) {
        auto reopened = release ? gates_.find(slot) : gates_.end();
        if (reopened != gates_.end()) {
            reopened->second.again.push_back(c);
        } else {
            send_one(c);
        }
    }
    for (auto& c : held) {
        auto reopened = gates_.find(slot);
        if (reopened != gates_.end()) {
            reopened->second.held.push_back(c);
        } else {
            send_one(c);
        }
    }
}

void ClusterTopology::arm_pump() {
    // Every gate with commands to resend counts, even one whose backoff has just passed (the
    // caller saw it still running): skipping it would leave them waiting for nothing. A gate
    // with only held commands waits for replies, not for time.
    auto now = Clock::now();
    auto next = Clock::time_point::max();
    for (const auto& [_, g] : gates_) {
        if (g.again.empty()) continue;
        next = std::min(next, std::max(g.not_before, now));
    }
    if (next == Clock::time_point::max()) return;
    auto ms = std::chrono::ceil<milliseconds>(next - now).count();
    pump_timer_.start(static_cast<std::uint64_t>(std::max<long long>(ms, 1)), [this] {
        std::vector<std::uint16_t> slots;
        for (const auto& [s, _] : gates_) slots.push_back(s);
        for (auto s : slots) pump(s);
    });
}

// Commands sent before any node answered: those past their deadline fail, as on a server that
// cannot be reached, with the last reason a node gave.
void ClusterTopology::expire_early() {
    auto now = Clock::now();
    std::string why;
    for (const auto& [hp, n] : nodes_) {
        if (n.conn && !n.conn->last_error().message().empty()) {
            why = n.conn->last_error().message();
        }
    }
    std::vector<std::shared_ptr<Command>> late;
    auto keep = std::remove_if(early_.begin(), early_.end(), [&](const auto& c) {
        if (c->deadline > now) return false;
        late.push_back(c);
        return true;
    });
    early_.erase(keep, early_.end());
    for (auto& c : late) {
        c->finish(
            Error(errc::connect_failed, "no node of " + describe() + " answered CLUSTER SHARDS" +
                                            (why.empty() ? "" : " (last error: " + why + ")")));
    }
}

void ClusterTopology::notify(ConnState st, const Error* why) {
    for (auto& cb : listeners_) cb(st, why);
}

std::shared_ptr<Connection> ClusterTopology::dedicated(const Route& route,
                                                       std::string_view purpose) {
    auto opts = options_;
    if (!opts.client_name.empty()) {
        opts.client_name += ':';
        opts.client_name += purpose;
    }
    Endpoint e = address_.endpoints.front();
    if (Node* n = owner(key_slot(route.key))) e = n->endpoint;
    auto conn = Connection::create(rt_, server_config(e), std::move(opts));
    conn->start();
    return conn;
}

void ClusterTopology::close() {
    if (closed_) return;
    closed_ = true;
    refresh_timer_.close();
    pump_timer_.close();
    waiting_.clear();
    auto early = std::move(early_);
    early_.clear();
    auto gates = std::move(gates_);
    gates_.clear();
    Error err(errc::closed, "cluster topology closed");
    for (auto& c : early) c->finish(err);
    for (auto& [_, g] : gates) {
        for (auto& c : g.again) c->finish(err);
        for (auto& c : g.held) c->finish(err);
    }
    for (auto& [_, n] : nodes_) {
        if (n.conn) n.conn->close();
    }
    Error why(errc::closed, "cluster topology closed by its owner");
    notify(ConnState::closed, &why);
}

}  // namespace streamfleet::detail::redis
