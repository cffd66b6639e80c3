// ClusterTopology's slot map: asking the nodes in turn, reading CLUSTER SHARDS / CLUSTER SLOTS,
// and closing links to nodes that left it (see cluster_topology.hpp).

#include <algorithm>

#include "core/log.hpp"
#include "redis/cluster_topology.hpp"
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

}  // namespace

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
        expire_early();
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
                auto e = parse_address(host + ":" + std::to_string(*port), asked);
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
            auto e = parse_address(text_of(&master[0]) + ":" + text_of(&master[1]), asked);
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
    g_refreshes.fetch_add(1, std::memory_order_relaxed);
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

}  // namespace streamfleet::detail::redis
