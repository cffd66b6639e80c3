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

// A burst of MOVED replies (a slot handed over, a failover) asks for the map once.
constexpr auto kRefreshGap = 200ms;
// While a primary's link is down, how often the map is asked for again.
constexpr auto kDownRefresh = 500ms;
// One node's answer to CLUSTER SHARDS; a dead node must not hold the refresh up for long.
constexpr auto kAskTimeout = 1000ms;
// TRYAGAIN / CLUSTERDOWN backoff: doubling from the first step up to the last.
constexpr auto kRetryFirst = 25ms;
constexpr auto kRetryMax = 500ms;

// "host:port" (or "[v6]:port") into an endpoint; an empty host is the one asked.
std::optional<Endpoint> parse_hostport(std::string_view s, const Endpoint& asked) {
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

// The value of `name` in a RESP2 flattened map (key, value, key, value...).
const Reply* field(const Reply& map, std::string_view name) {
    const auto* items = map.as_array();
    if (!items) return nullptr;
    for (std::size_t i = 0; i + 1 < items->size(); i += 2) {
        if ((*items)[i].as_string() == name) return &(*items)[i + 1];
    }
    return nullptr;
}

std::string text_of(const Reply* r) {
    if (!r) return {};
    if (auto s = r->as_string()) return std::string(*s);
    if (auto n = r->as_integer()) return std::to_string(*n);
    return {};
}

// Every topology of the process, for tests that cannot reach the one inside a Client or Server.
struct Totals {
    std::atomic<std::uint64_t> moved{0}, ask{0}, tryagain{0}, clusterdown{0}, rerouted{0},
        refreshes{0};
} g_totals;

}  // namespace

ClusterCounters ClusterTopology::totals() noexcept {
    ClusterCounters c;
    c.moved = g_totals.moved.load();
    c.ask = g_totals.ask.load();
    c.tryagain = g_totals.tryagain.load();
    c.clusterdown = g_totals.clusterdown.load();
    c.rerouted = g_totals.rerouted.load();
    c.refreshes = g_totals.refreshes.load();
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
            sp == std::string::npos ? std::nullopt : parse_hostport(text.substr(sp + 1), asked);
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

// ---- the slot map ----

void ClusterTopology::refresh_soon() {
    if (closed_) return;
    if (refreshing_) {
        refresh_again_ = true;
        return;
    }
    auto since = Clock::now() - last_refresh_;
    if (since >= kRefreshGap) {
        refresh();
        return;
    }
    if (!refresh_timer_.active()) {
        auto ms = std::chrono::ceil<milliseconds>(kRefreshGap - since).count();
        refresh_timer_.start(static_cast<std::uint64_t>(std::max<long long>(ms, 1)),
                             [this] { refresh(); });
    }
}

// Asks the nodes with a live link first, then the others it knows, then the seeds.
void ClusterTopology::refresh() {
    if (closed_ || refreshing_) return;
    refreshing_ = true;
    refresh_again_ = false;
    last_refresh_ = Clock::now();
    auto candidates = std::make_shared<std::vector<std::string>>();
    auto add = [&](const std::string& hp) {
        if (std::find(candidates->begin(), candidates->end(), hp) == candidates->end()) {
            candidates->push_back(hp);
        }
    };
    for (const auto& [hp, n] : nodes_) {
        if (n.primary && n.conn && n.conn->state() == ConnState::ready) add(hp);
    }
    for (const auto& [hp, n] : nodes_) {
        if (n.conn && n.conn->state() == ConnState::ready) add(hp);
    }
    for (const auto& e : address_.endpoints) {
        node_at(e.to_string(), e);
        add(e.to_string());
    }
    for (const auto& [hp, n] : nodes_) add(hp);
    ask_next(std::move(candidates), 0);
}

void ClusterTopology::ask_next(std::shared_ptr<std::vector<std::string>> candidates,
                               std::size_t i) {
    if (closed_) return;
    if (i >= candidates->size()) {
        refreshing_ = false;
        log_limited(spdlog::level::warn, "cluster map " + describe(),
                    "{}: no node answered CLUSTER SHARDS / CLUSTER SLOTS; asking again",
                    describe());
        refresh_timer_.start(static_cast<std::uint64_t>(kRefreshGap.count()),
                             [this] { refresh(); });
        return;
    }
    auto& node = nodes_.at((*candidates)[i]);
    auto asked = node.endpoint;
    std::weak_ptr<bool> alive = alive_;
    auto on_slots = [this, alive, candidates, i, asked](Result<Reply> res) {
        if (alive.expired() || closed_) return;
        if (res.ok() && load_map(*res, false, asked)) return;
        ask_next(candidates, i + 1);
    };
    conn_of(node).send(
        {"CLUSTER", "SHARDS"},
        [this, alive, candidates, i, asked, on_slots](Result<Reply> res) {
            if (alive.expired() || closed_) return;
            if (res.ok() && load_map(*res, true, asked)) return;
            if (!res.ok() && res.error().is(reply_errc::other)) {
                // Before Redis 7.0: no CLUSTER SHARDS.
                auto it = nodes_.find(asked.to_string());
                if (it != nodes_.end()) {
                    conn_of(it->second)
                        .send({"CLUSTER", "SLOTS"}, on_slots, CommandOptions{kAskTimeout, 0ms});
                    return;
                }
            }
            ask_next(candidates, i + 1);
        },
        CommandOptions{kAskTimeout, 0ms});
}

bool ClusterTopology::load_map(const Reply& reply, bool shards, const Endpoint& asked) {
    const auto* items = reply.as_array();
    if (!items) return false;
    std::vector<std::string> owners(kSlots);
    std::vector<std::pair<std::string, Endpoint>> found;
    auto assign = [&](long long from, long long to, const Endpoint& e) {
        if (from < 0 || to >= kSlots || from > to) return;
        auto hp = e.to_string();
        for (auto s = from; s <= to; ++s) owners[static_cast<std::size_t>(s)] = hp;
        found.emplace_back(hp, e);
    };
    for (const auto& item : *items) {
        if (shards) {
            const auto* slots = field(item, "slots");
            const auto* nodes = field(item, "nodes");
            if (!slots || !nodes || !slots->as_array() || !nodes->as_array()) continue;
            std::optional<Endpoint> primary;
            for (const auto& n : *nodes->as_array()) {
                if (text_of(field(n, "role")) != "master") continue;
                auto host = text_of(field(n, "endpoint"));
                if (host.empty() || host == "?") host = text_of(field(n, "ip"));
                auto port = field(n, "port") ? field(n, "port")->as_integer() : std::nullopt;
                if (!port) continue;
                auto e = parse_hostport(host + ":" + std::to_string(*port), asked);
                if (e && (!primary || text_of(field(n, "health")) == "online")) primary = e;
            }
            if (!primary) continue;
            const auto& ranges = *slots->as_array();
            for (std::size_t r = 0; r + 1 < ranges.size(); r += 2) {
                assign(ranges[r].as_integer().value_or(-1), ranges[r + 1].as_integer().value_or(-1),
                       *primary);
            }
        } else {
            const auto* range = item.as_array();
            if (!range || range->size() < 3 || !(*range)[2].as_array()) continue;
            const auto& master = *(*range)[2].as_array();
            if (master.size() < 2) continue;
            auto e = parse_hostport(text_of(&master[0]) + ":" + text_of(&master[1]), asked);
            if (!e) continue;
            assign((*range)[0].as_integer().value_or(-1), (*range)[1].as_integer().value_or(-1),
                   *e);
        }
    }
    if (found.empty()) return false;
    bool changed = owners != owner_of_;
    owner_of_ = std::move(owners);
    for (auto& [hp, n] : nodes_) n.primary = false;
    for (const auto& [hp, e] : found) node_at(hp, e).primary = true;
    counters_.refreshes += 1;
    g_totals.refreshes.fetch_add(1, std::memory_order_relaxed);
    refreshing_ = false;
    retire_departed();
    if (!known_) {
        known_ = true;
        auto early = std::move(early_);
        early_.clear();
        auto waiting = std::move(waiting_);
        waiting_.clear();
        for (auto& c : early) submit(std::move(c));
        notify(ConnState::ready, nullptr);
        for (auto& cb : waiting) cb();
    } else if (changed) {
        std::string list;
        for (const auto& hp : primaries()) list += (list.empty() ? "" : ",") + hp;
        log().info("{}: slot map changed; primaries now {}", describe(), list);
        notify(ConnState::ready, nullptr);
    }
    std::vector<std::uint16_t> slots;
    for (const auto& [s, _] : gates_) slots.push_back(s);
    for (auto s : slots) pump(s);
    if (refresh_again_) {
        refresh_soon();
    } else if (primary_down() && !refresh_timer_.active()) {
        // A primary's link is down (dead, or being failed over): the map is asked again until it
        // names a promoted replica, whether or not traffic for its slots asks for it meanwhile
        // (a blocking reader's link is not the topology's to watch).
        refresh_timer_.start(static_cast<std::uint64_t>(kDownRefresh.count()),
                             [this] { refresh(); });
    }
    return true;
}

// Closes links to nodes that no longer hold slots, once nothing is in flight on them: what
// is still queued there (its node died) fails with errc::closed and is sent to the new owner.
void ClusterTopology::retire_departed() {
    std::vector<std::shared_ptr<Connection>> going;
    for (auto& [hp, n] : nodes_) {
        if (n.primary || !n.conn) continue;
        if (n.conn->state() == ConnState::ready && n.conn->pending() > 0) continue;
        going.push_back(std::move(n.conn));
        n.conn.reset();
    }
    for (auto& c : going) c->close();
}

bool ClusterTopology::primary_down() const {
    for (const auto& [hp, n] : nodes_) {
        if (n.primary && n.conn && n.conn->state() == ConnState::down) return true;
    }
    return false;
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
