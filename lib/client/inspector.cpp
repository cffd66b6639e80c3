#include "streamfleet/inspector.hpp"

#include <algorithm>
#include <cstdlib>
#include <future>

#include "core/clock.hpp"
#include "core/keys.hpp"
#include "core/script_calls.hpp"
#include "core/stream_id.hpp"
#include "core/wire.hpp"
#include "redis/streams.hpp"
#include "redis/sync.hpp"
#include "redis/topology.hpp"
#include "runtime/runtime.hpp"
#include "streamfleet/codec.hpp"

namespace streamfleet {
inline namespace v1 {

using namespace detail;
namespace r = detail::redis;

namespace {

// The task fields a DeadLetter and a DelayedTask both show, from one
// field/value pair of a stored task (entry or delayed member). Lenient: the
// stored task may be malformed, which is often why it is dead.
template <class Task>
void take_task_field(Task& t, std::string_view f, std::string_view v) {
    if (f == "id")
        t.id = std::string(v);
    else if (f == "data")
        t.data = std::string(v);
    else if (f == "x_error")
        t.error = std::string(v);
    else if (f == "retries")
        t.retries = static_cast<std::uint32_t>(std::strtoul(std::string(v).c_str(), nullptr, 10));
}

DeadLetter to_dead_letter(const r::StreamEntry& e) {
    DeadLetter d;
    d.entry_id = std::string(e.id);
    d.died_at_ms = std::atoll(d.entry_id.c_str());
    for (const auto& [f, v] : e.fields) {
        d.fields.emplace_back(std::string(f), std::string(v));
        take_task_field(d, f, v);
        if (f == "x_history") d.history = history_entries(v);
    }
    return d;
}

}  // namespace

struct Inspector::Impl {
    std::string prefix;
    KeyStyle style = KeyStyle::native;
    std::unique_ptr<r::Topology> topo;
    // Declared last: destroyed first, closing the topology's connections.
    std::unique_ptr<Runtime> rt;

    // Every command the inspector sends names one key, second (XRANGE key ...),
    // which routes it.
    Result<r::Reply> call(std::vector<std::string> argv) {
        auto route = argv.size() > 1 ? argv[1] : std::string();
        return r::call(*rt, *topo, std::move(route), std::move(argv));
    }

    QueueKeys keys(std::string_view queue) const {
        if (auto st = validate_queue_name(queue, style); !st) throw_error(st.error());
        return QueueKeys(prefix, queue, style);
    }

    // One page of the dead letters after `after` (exclusive), oldest first.
    std::vector<DeadLetter> page(const QueueKeys& k, std::string_view after, std::size_t limit,
                                 std::string_view until = "+") {
        std::string from = after.empty() ? "-" : "(" + std::string(after);
        auto reply =
            call({"XRANGE", k.dead(), from, std::string(until), "COUNT", std::to_string(limit)})
                .value();
        std::vector<DeadLetter> out;
        for (const auto& e : reply.elements()) {
            if (auto entry = r::parse_entry(e)) out.push_back(to_dead_letter(*entry));
        }
        return out;
    }

    std::size_t requeue(const QueueKeys& k, const std::vector<std::string>& entry_ids) {
        auto reply = r::call(*rt, *topo,
                             calls::requeue_dead(k, entry_ids, SystemClock::instance().now_ms()));
        return static_cast<std::size_t>(reply.value().integer());
    }
};

Inspector::Inspector(std::string redis, std::string prefix, bool go_compatible)
    : impl_(std::make_unique<Impl>()) {
    impl_->style = key_style(go_compatible);
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

std::vector<std::string> Inspector::queues() {
    if (impl_->style != KeyStyle::native) {
        throw Unsupported("listing queues needs the native key names, not go_compatible");
    }
    // The prefix as a glob, its own glob characters escaped.
    std::string match;
    for (char c : impl_->prefix) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') match.push_back('\\');
        match.push_back(c);
    }
    match += "{*}";
    // The registry names every queue a client or server opened, wherever its keys live; the
    // SCAN (of one node) adds queues whose clients came before the registry.
    std::vector<std::string> out;
    if (auto reg = impl_->call({"SMEMBERS", queue_registry_key(impl_->prefix)}); reg.ok()) {
        if (reg->is_array())
            for (const auto& m : reg->elements()) out.emplace_back(m.str());
    }
    std::string cursor = "0";
    do {
        auto reply =
            impl_->call({"SCAN", cursor, "MATCH", match, "COUNT", "1000", "TYPE", "stream"})
                .value();
        if (!reply.is_array() || reply.size() != 2) break;
        cursor = std::string(reply[0].str());
        for (const auto& k : reply[1].elements()) {
            std::string_view key = k.str();
            // PREFIX{NAME} exactly: P{Q}:dead and the like are not queues.
            if (key.size() < impl_->prefix.size() + 3 || key.back() != '}') continue;
            auto name = key.substr(impl_->prefix.size() + 1, key.size() - impl_->prefix.size() - 2);
            if (name.find_first_of("{}") != std::string_view::npos) continue;
            out.emplace_back(name);
        }
    } while (cursor != "0");
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

QueueStats Inspector::stats(std::string_view queue, std::chrono::milliseconds live_window) {
    auto k = impl_->keys(queue);
    auto since = std::to_string(SystemClock::instance().now_ms() - live_window.count());
    std::vector<std::vector<std::string>> cmds = {
        {"XLEN", k.stream()},
        {"XINFO", "GROUPS", k.stream()},
        {"ZCARD", k.delayed()},
        {"XLEN", k.dead()},
        {"ZCOUNT", k.clients(), since, "+inf"},
        {"ZCOUNT", k.servers(), since, "+inf"},
        {"HMGET", k.finished(), "completed", "dead", "expired", "canceled"},
    };
    // All of them leave in one write: one post, one loop turn.
    std::vector<std::promise<Result<r::Reply>>> promises(cmds.size());
    impl_->rt->post([&] {
        for (std::size_t i = 0; i < cmds.size(); ++i) {
            std::vector<std::string_view> argv(cmds[i].begin(), cmds[i].end());
            // Each by its own key: the Go-style receivers set is not in the stream's slot.
            auto key = argv[0] == "XINFO" ? argv[2] : argv[1];
            impl_->topo->send(r::Route{key}, argv, [&p = promises[i]](Result<r::Reply> res) {
                p.set_value(std::move(res));
            });
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
            std::int64_t consumers = 0, pending = 0, read = -1;
            for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
                auto name = kv[i].str();
                if (name == "name")
                    ours = kv[i + 1].str() == kServerGroup;
                else if (name == "consumers")
                    consumers = kv[i + 1].integer();
                else if (name == "pending")
                    pending = kv[i + 1].integer();
                else if (name == "entries-read" && kv[i + 1].is_integer())
                    read = kv[i + 1].integer();
            }
            if (ours) {
                s.consumers = consumers;
                s.pending = pending;
                s.delivered = read;
            }
        }
    } else if (replies[1].error().message().find("no such key") == std::string::npos) {
        throw_error(replies[1].error());
    }
    s.delayed = replies[2].value().integer();
    s.dead = replies[3].value().integer();
    s.clients = replies[4].value().integer();
    s.servers = replies[5].value().integer();
    auto ended = replies[6].value();
    auto count = [&](std::size_t i) -> std::int64_t {
        if (i >= ended.size() || ended[i].is_nil()) return 0;
        return std::atoll(std::string(ended[i].str()).c_str());
    };
    s.completed = count(0);
    s.dead_total = count(1);
    s.expired = count(2);
    s.canceled = count(3);
    s.node = impl_->rt->call([&] { return impl_->topo->node_of(k.stream()); });
    return s;
}

std::vector<DelayedTask> Inspector::delayed(std::string_view queue, std::size_t limit,
                                            std::size_t offset) {
    auto k = impl_->keys(queue);
    if (limit == 0) return {};
    auto reply = impl_->call({"ZRANGE", k.delayed(), std::to_string(offset),
                              std::to_string(offset + limit - 1), "WITHSCORES"})
                     .value();
    std::vector<DelayedTask> out;
    for (std::size_t i = 0; i + 1 < reply.size(); i += 2) {
        DelayedTask t;
        t.due_ms = std::atoll(std::string(reply[i + 1].str()).c_str());
        // The member is the msgpack field list the promoter will XADD.
        std::vector<std::string> parts;
        try {
            parts = decode_msgpack<std::vector<std::string>>(reply[i].str());
        } catch (const InvalidArgument&) {
            // Not ours to judge here: the promoter dead-letters what it cannot use.
        }
        for (std::size_t j = 0; j + 1 < parts.size(); j += 2)
            take_task_field(t, parts[j], parts[j + 1]);
        out.push_back(std::move(t));
    }
    return out;
}

std::vector<PendingTask> Inspector::pending(std::string_view queue, std::size_t limit,
                                            std::string_view after) {
    auto k = impl_->keys(queue);
    if (limit == 0) return {};
    // "(" makes the start exclusive: the page begins past the last one shown.
    auto start = after.empty() ? std::string("-") : "(" + std::string(after);
    auto reply = impl_->call({"XPENDING", k.stream(), std::string(kServerGroup), start, "+",
                              std::to_string(limit)});
    // NOGROUP: no server ever read this queue, so nothing is pending.
    if (!reply.ok() && reply.error().message().starts_with("NOGROUP")) return {};
    auto rows = reply.value();
    std::vector<PendingTask> out;
    for (const auto& row : rows.elements()) {
        if (row.size() < 4) continue;
        PendingTask p;
        p.entry_id = std::string(row[0].str());
        p.server = std::string(row[1].str());
        p.idle_ms = row[2].integer();
        p.deliveries = static_cast<std::uint64_t>(row[3].integer());
        auto entry = impl_->call({"XRANGE", k.stream(), p.entry_id, p.entry_id}).value();
        if (entry.size() == 1) {
            if (auto e = r::parse_entry(entry[0])) {
                for (const auto& [f, v] : e->fields) {
                    if (f == "id") p.id = std::string(v);
                }
            }
        }
        out.push_back(std::move(p));
    }
    return out;
}

std::vector<ReadyTask> Inspector::ready(std::string_view queue, std::size_t limit,
                                        std::string_view after) {
    auto k = impl_->keys(queue);
    if (limit == 0) return {};
    // Undelivered = after the group's last-delivered id (everything, before any server read).
    std::string from = "0-0";
    auto groups = impl_->call({"XINFO", "GROUPS", k.stream()});
    if (groups.ok()) {
        for (const auto& g : groups->elements()) {
            const auto& kv = g.elements();
            std::string name, last;
            for (std::size_t i = 0; i + 1 < kv.size(); i += 2) {
                if (kv[i].str() == "name") name = std::string(kv[i + 1].str());
                if (kv[i].str() == "last-delivered-id") last = std::string(kv[i + 1].str());
            }
            if (name == kServerGroup && !last.empty()) from = last;
        }
    } else if (groups.error().message().find("no such key") != std::string::npos) {
        return {};
    } else {
        throw_error(groups.error());
    }
    if (!after.empty() && stream_id_less(from, after)) from = std::string(after);
    auto reply =
        impl_->call({"XRANGE", k.stream(), "(" + from, "+", "COUNT", std::to_string(limit)})
            .value();
    std::vector<ReadyTask> out;
    for (const auto& e : reply.elements()) {
        auto entry = r::parse_entry(e);
        if (!entry) continue;
        ReadyTask t;
        t.entry_id = std::string(entry->id);
        for (const auto& [f, v] : entry->fields) {
            if (f == "id")
                t.id = std::string(v);
            else if (f == "data")
                t.data = std::string(v);
            else if (f == "retries")
                t.retries = static_cast<std::uint32_t>(std::atoll(std::string(v).c_str()));
            else if (f == "x_enqueued_ts")
                t.enqueued_ms = std::atoll(std::string(v).c_str());
        }
        out.push_back(std::move(t));
    }
    return out;
}

std::vector<DeadLetter> Inspector::dead_letters(std::string_view queue, std::size_t limit,
                                                std::string_view after) {
    auto k = impl_->keys(queue);
    if (limit == 0) return {};
    return impl_->page(k, after, limit);
}

bool Inspector::requeue_dead(std::string_view queue, std::string_view task_id) {
    auto k = impl_->keys(queue);
    // Dead letters are found by scanning: they are few (bounded by the
    // servers' dead_max) and this is an operator's action, not a hot path.
    std::string after;
    for (;;) {
        auto batch = impl_->page(k, after, 500);
        if (batch.empty()) return false;
        for (const auto& d : batch) {
            if (d.id == task_id) return impl_->requeue(k, {d.entry_id}) == 1;
        }
        after = batch.back().entry_id;
    }
}

std::size_t Inspector::requeue_all_dead(std::string_view queue) {
    auto k = impl_->keys(queue);
    // Only what is there now: letters dying meanwhile stay for the next call.
    auto last = impl_->call({"XREVRANGE", k.dead(), "+", "-", "COUNT", "1"}).value();
    if (last.size() == 0) return 0;
    auto until = std::string(last[0][0].str());
    std::size_t moved = 0;
    std::string after;
    for (;;) {
        auto batch = impl_->page(k, after, 100, until);
        if (batch.empty()) return moved;
        std::vector<std::string> ids;
        for (const auto& d : batch) ids.push_back(d.entry_id);
        moved += impl_->requeue(k, ids);
        after = ids.back();
    }
}

std::size_t Inspector::purge_dead(std::string_view queue) {
    auto k = impl_->keys(queue);
    return static_cast<std::size_t>(
        r::call(*impl_->rt, *impl_->topo, calls::purge_dead(k)).value().integer());
}

}  // namespace v1
}  // namespace streamfleet
