// Reader: XREADGROUP BLOCK per shard group into the shared free slots (see reader.hpp).

#include "server/reader.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "redis/streams.hpp"

namespace streamfleet::detail {

namespace r = redis;
using namespace std::chrono_literals;

namespace {

// While the stream has a backlog, a read for the one slot that just freed costs a round trip and
// a Redis call for a single task. So with a backlog the reader waits until half the slots are
// free -- or kGatherMs has passed, so slow handlers never leave slots idle for long. Without a
// backlog it reads at once (the read blocks anyway, and latency is what counts).
constexpr std::uint64_t kGatherMs = 1;

// While a reading link is not ready: how often the topology is asked where its streams live now.
constexpr std::uint64_t kRelinkPollMs = 100;

}  // namespace

Reader::Reader(ServerContext& ctx, Queues queues, Slots& slots, TaskSink& sink, Hooks hooks)
    : ctx_(ctx),
      queues_(queues),
      slots_(slots),
      sink_(sink),
      hooks_(std::move(hooks)),
      link_of_(queues.size(), nullptr),
      backoff_(ctx.random),
      retry_timer_(ctx.rt.loop()),
      gather_timer_(ctx.rt.loop()) {}

void Reader::create_groups(Done then) {
    auto join = Join::make([this, then = std::move(then)] {
        if (!stopped_ && then) then();
    });
    for (auto& q : queues_) {
        join->add();
        // Id 0: tasks enqueued before any server existed are processed too.
        r::ensure_group(ctx_.topo, q.keys.stream(), kServerGroup, "0", [this, join](Status st) {
            if (!st) {
                log_limited(spdlog::level::warn, "server " + ctx_.consumer + ": create group",
                            "server {}: creating group failed: {}", ctx_.consumer,
                            st.error().message());
            }
            join->arrive();
        });
    }
    join->arrive();
}

void Reader::start() {
    started_ = true;
    ctx_.topo.when_ready([this] {
        if (stopped_) return;
        plan();
        read_next(false);
    });
}

// Groups the queues by the shard of their stream, in queue order, and opens one blocking
// connection per group, routed by the group's first stream.
void Reader::plan() {
    if (!links_.empty()) return;
    for (auto& queues : shard_groups(ctx_.topo, queues_, &QueueKeys::stream)) {
        links_.push_back(std::make_unique<Link>());
        for (auto* q : queues) link_of_[q->index] = links_.back().get();
        links_.back()->queues = std::move(queues);
    }
    for (auto& link : links_) open(*link);
}

// A connection of its own to the node holding the group's streams; called again when they
// move to another node (a slot handed over, a replica promoted).
void Reader::open(Link& link) {
    auto* l = &link;
    if (l->conn) l->conn->close();
    l->client_id = -1;
    l->conn = ctx_.topo.dedicated(r::Route{l->queues.front()->keys.stream()}, "reader");
    // Asked now, so it is answered before the first read blocks; asked again on every later
    // connect (the first ready edge finds this question still queued).
    l->ask_client_id();
    l->conn->on_state([this, l, conn = l->conn.get()](r::ConnState st, const Error*) {
        if (st != r::ConnState::ready || conn != l->conn.get()) return;
        if (!l->asking_id) l->ask_client_id();
        // Back from an outage: read now rather than at the end of a long backoff.
        backoff_.succeeded();
        if (retry_timer_.active()) {
            retry_timer_.stop();
            read_next(false);
        }
    });
}

// The id changes on every connect, and CLIENT UNBLOCK needs the current one.
void Reader::Link::ask_client_id() {
    asking_id = true;
    conn->send({"CLIENT", "ID"}, [this](Result<r::Reply> res) {
        asking_id = false;
        if (res.ok()) client_id = res->as_integer().value_or(-1);
    });
}

void Reader::stop() {
    stopped_ = true;
    retry_timer_.stop();
    gather_timer_.stop();
    unblock();
}

void Reader::close() {
    stopped_ = true;
    retry_timer_.close();
    gather_timer_.close();
    for (auto& link : links_) link->conn->close();
}

void Reader::unblock() {
    for (auto& link : links_) {
        if (!link->reading || link->client_id < 0) continue;
        auto id = std::to_string(link->client_id);
        // To the node of the blocked connection: the one holding the streams it reads.
        ctx_.topo.send(r::Route{link->queues.front()->keys.stream()}, {"CLIENT", "UNBLOCK", id},
                       [](Result<r::Reply>) {});
    }
}

bool Reader::reading() const noexcept {
    return std::any_of(links_.begin(), links_.end(), [](const auto& l) { return l->reading; });
}

void Reader::read_next(bool gathered) {
    if (!started_ || stopped_ || slots_.free() == 0) return;
    bool idle =
        std::any_of(links_.begin(), links_.end(), [](const auto& l) { return !l->reading; });
    if (!idle) return;
    if (backlog_ && !gathered && slots_.free() < std::max(1u, slots_.total() / 2)) {
        if (!gather_timer_.active()) gather_timer_.start(kGatherMs, [this] { read_next(true); });
        return;
    }
    gather_timer_.stop();
    // Recovery of others' tasks goes before new work; each claim calls read_next() again when
    // it is done.
    if (slots_.run_waiter()) return;
    if (retry_timer_.active()) return;  // backing off after a failure; the timer reads
    auto picks = pick();
    for (auto& link : links_) {
        std::vector<Pick> mine;
        for (const auto& p : picks) {
            if (p.link == link.get()) mine.push_back(p);
        }
        if (mine.empty()) continue;
        if (r::moved_away(ctx_.topo, link->queues.front()->keys.stream(), *link->conn)) {
            open(*link);
        } else if (link->conn->state() != r::ConnState::ready) {
            // Not queued on a link that may never return (its node died): the ready edge reads,
            // or a short poll that finds the promoted replica in the map (looking costs no
            // command, so it does not back off).
            if (!stopped_ && !retry_timer_.active()) {
                retry_timer_.start(kRelinkPollMs, [this] { read_next(false); });
            }
            continue;
        }
        read(*link, mine);
    }
    if (hooks_.changed) hooks_.changed();
}

// Picks up to `free` streams of idle groups, round-robin over every queue, and shares the free
// slots among them. A group whose last read found nothing gets one slot per stream while another
// group has work: otherwise it would sit for a whole BLOCK on slots the busy group could use. With
// one group this is the plain split: free / streams picked.
std::vector<Reader::Pick> Reader::pick() {
    std::size_t n = queues_.size();
    std::vector<Pick> picks;
    std::size_t last = 0;
    for (std::size_t i = 0; i < n && picks.size() < slots_.free(); ++i) {
        auto* q = &queues_[(rr_ + i) % n];
        auto* link = link_of_[q->index];
        if (!link || link->reading || q->pulled) continue;  // pulled: read for pops only
        picks.push_back(Pick{link, q, 0});
        last = i;
    }
    if (picks.empty()) return picks;
    rr_ = (rr_ + last + 1) % n;
    bool busy = std::any_of(links_.begin(), links_.end(), [](const auto& l) { return !l->quiet; });
    auto limited =
        busy ? static_cast<unsigned>(std::count_if(picks.begin(), picks.end(),
                                                   [](const Pick& p) { return p.link->quiet; }))
             : 0u;
    // picks.size() <= free, so every stream not limited gets at least one slot.
    unsigned share =
        (slots_.free() - limited) / std::max(1u, static_cast<unsigned>(picks.size()) - limited);
    for (auto& p : picks) p.count = busy && p.link->quiet ? 1 : share;
    return picks;
}

void Reader::read(Link& link, const std::vector<Pick>& picks) {
    // Every stream of one group gets the same count: they share the group's quietness.
    unsigned count = picks.front().count;
    unsigned reserved = slots_.take(count * static_cast<unsigned>(picks.size()));
    link.reading = true;
    auto count_s = std::to_string(count);
    auto block_s = std::to_string(ctx_.opts.read_block.count());
    std::vector<std::string_view> argv{"XREADGROUP", "GROUP", kServerGroup, ctx_.consumer, "COUNT",
                                       count_s,      "BLOCK", block_s,      "STREAMS"};
    for (const auto& p : picks) argv.push_back(p.queue->keys.stream());
    for (std::size_t i = 0; i < picks.size(); ++i) argv.push_back(">");
    link.conn->send(
        argv,
        [this, l = &link, reserved](Result<r::Reply> res) {
            on_read(*l, std::move(res), reserved);
        },
        r::CommandOptions{.timeout = 0ms, .block = ctx_.opts.read_block});
}

void Reader::on_read(Link& link, Result<r::Reply> res, unsigned reserved) {
    link.reading = false;
    if (!res.ok()) {
        slots_.give(reserved);
        if (hooks_.changed) hooks_.changed();
        const auto& e = res.error();
        if (e.is(errc::closed)) return;
        log_limited(e.is(reply_errc::nogroup) ? spdlog::level::info : spdlog::level::warn,
                    "server " + ctx_.consumer + ": read", "server {}: read failed: {}",
                    ctx_.consumer, e.message());
        if (r::is_redirect(e)) {
            // The topology did not see this reply: a routed command lets it learn the move.
            r::relearn(ctx_.topo, std::string(link.queues.front()->keys.stream()), [] {});
        }
        if (e.is(reply_errc::nogroup)) {
            // The stream or its group is gone (deleted, Redis restarted empty): create them, then
            // read after the backoff, since a group that cannot be created (NOPERM) says NOGROUP
            // again.
            create_groups([this] { retry_later(); });
            return;
        }
        retry_later();
        return;
    }
    backoff_.succeeded();
    unsigned used = 0;
    auto source = std::make_shared<const r::Reply>(std::move(*res));
    r::for_each_entry(*source, [&](std::string_view stream, const r::StreamEntry& e) {
        ++used;
        QueueContext* q = nullptr;
        for (auto* c : link.queues) {
            if (c->keys.stream() == stream) q = c;
        }
        if (!q || !sink_.accept(*q, source, e, 1)) slots_.give(1);  // not run: its slot is free
    });
    sink_.dispatch();
    slots_.give(reserved - std::min(used, reserved));
    backlog_ = used >= reserved && reserved > 0;
    link.quiet = used == 0;
    if (hooks_.changed) hooks_.changed();
    read_next(false);
}

void Reader::retry_later() {
    if (stopped_ || retry_timer_.active()) return;
    retry_timer_.start(static_cast<std::uint64_t>(backoff_.failed().count()),
                       [this] { read_next(false); });
}

}  // namespace streamfleet::detail
