#pragma once

// Reader: responsible for reading new entries (XREADGROUP BLOCK) into free handler slots.
//
// It also wakes its own blocked reads (CLIENT UNBLOCK) when the slots are needed elsewhere.
//
// Shards: one XREADGROUP may only name streams that share a shard (Topology::shard: one plain
// Redis is one shard; a cluster node shards by hash slot). So once the topology knows its layout
// (when_ready), the queues are grouped by the shard of their stream and each group gets a
// dedicated blocking connection of its own. The slots are one pool for every group: the server
// never holds more tasks than `concurrency`, however many groups read at once.
//
// Slots: a read reserves the slots it asks for (COUNT × the streams it names) while it is
// outstanding; entries not run (malformed, expired) give their slot back at once. With more
// queues than free slots, the queues are read round-robin across all groups.
//
// Failures: a read that fails (refused, NOGROUP that the group's creation does not cure, link
// trouble) is tried again after a backoff that grows with each failure in a row and starts over
// on a good read or a reconnect, so a refused command never becomes a busy loop. Its log lines
// are rate-limited.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/retry_backoff.hpp"
#include "redis/connection.hpp"
#include "server/job.hpp"

namespace streamfleet::detail {

class Reader {
public:
    struct Hooks {
        /// Whether a read is outstanding changed (shutdown waits for none).
        std::function<void()> changed;
    };

    Reader(ServerContext& ctx, Queues queues, Slots& slots, TaskSink& sink, Hooks hooks);

    /// Creates each queue's stream and consumer group if missing, then runs `then` (also when
    /// some failed: a read then says NOGROUP and tries again).
    void create_groups(Done then);
    /// Plans the shard groups once the topology knows its layout, then starts reading.
    void start();
    /// Reads no more; a blocked read is woken so that its answer (nil, or entries that raced in)
    /// comes back and is handed to the sink, never lost in a closed socket.
    void stop();
    /// Closes the reading connections and timers. Loop thread, when the runtime stops.
    void close();
    /// Issues reads for the free slots, or runs a claim waiting for slots first.
    void tick() { read_next(false); }

    /// Wakes every blocked read so its slots come back (a claim waits for them).
    void unblock();
    /// A read is outstanding.
    bool reading() const noexcept;
    /// Shard groups planned (one reading connection each); 0 before the topology is ready.
    std::size_t groups() const noexcept { return links_.size(); }

private:
    // One shard group: its streams and the connection that blocks on them.
    struct Link {
        std::vector<QueueContext*> queues;
        std::shared_ptr<redis::Connection> conn;
        long long client_id = -1;  // CLIENT ID on the current connection, for CLIENT UNBLOCK
        bool asking_id = false;    // a CLIENT ID question is on its way
        bool reading = false;
        bool quiet = false;  // its last read timed out with nothing

        void ask_client_id();
    };
    void open(Link& link);
    // A stream picked for the next read, and how many entries to ask of it.
    struct Pick {
        Link* link;
        QueueContext* queue;
        unsigned count;
    };

    void plan();
    void read_next(bool gathered);
    std::vector<Pick> pick();
    void read(Link& link, const std::vector<Pick>& picks);
    void on_read(Link& link, Result<redis::Reply> res, unsigned reserved);
    void retry_later();

    ServerContext& ctx_;
    Queues queues_;
    Slots& slots_;
    TaskSink& sink_;
    Hooks hooks_;
    bool started_ = false;
    bool stopped_ = false;
    std::vector<std::unique_ptr<Link>> links_;
    std::vector<Link*> link_of_;  // by QueueContext::index
    std::size_t rr_ = 0;          // round-robin position in queues_
    bool backlog_ = false;        // the last read filled every slot it asked for
    // Reads refused or failing in a row wait longer each time; a good read resets it.
    RetryBackoff backoff_;
    Timer retry_timer_;
    Timer gather_timer_;
};

}  // namespace streamfleet::detail
