// Listener: reads this client's notification stream and resolves the tracked task handles.
#pragma once

// A dedicated connection runs XREADGROUP ... BLOCK 5000 on PREFIXreceiver:{id}
// (its own connection, so the blocking read never holds up the shared
// pipeline). Read entries are XACKed and trimmed; NOGROUP (stream deleted,
// Redis restarted empty) recreates stream and group; a notification for a
// task this client does not track is counted and logged at debug. A read
// that fails (refused, or NOGROUP again because the group cannot be created)
// is tried again after a backoff that grows with each failure in a row, so a
// refused command never becomes a busy loop; a good read resets it.
//
// NOGROUP is also how a Redis that restarted without persistence shows: the
// tasks it held are gone and no notification will ever come for them, so a
// wait() would hang; and tasks the outbox resent to the new server may finish
// before the stream exists again, their notifications dropped (servers notify
// only into a stream that exists). So on NOGROUP the listener first recreates
// the stream, then reads the state of every open handle's task (get.lua): a
// final state resolves the handle; a task Redis had confirmed whose state is
// gone too is lost (a stream deleted by hand leaves the
// records, and those handles wait on); a confirmed task without a record
// cannot be checked and is taken as lost. Lost handles resolve as
// TaskStatus::lost. Tasks not yet confirmed are still in the outbox and are
// sent to the new server, where the recreated stream hears of them.
//
// The tracked handles live on the loop thread alone: they are registered
// there before their task is sent, and notifications are read there too, so
// no lock guards them. Loop thread only, except unknown().

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "client/context.hpp"
#include "client/handle_state.hpp"
#include "core/random.hpp"
#include "core/retry_backoff.hpp"
#include "redis/connection.hpp"
#include "redis/streams.hpp"

namespace streamfleet::detail::client {

class Listener {
public:
    /// On the loop thread; reads nothing until start().
    explicit Listener(ClientContext& ctx);

    /// Creates the stream and group (if need be), then reads.
    void start();
    /// Resolves `handle` when its notification comes.
    void track(std::shared_ptr<HandleState> handle);
    /// The handles not resolved yet; the listener forgets them.
    std::vector<std::shared_ptr<HandleState>> take_open();
    /// Resolves the handle of task `id` (if tracked) now, with `out`: Redis
    /// refused the task, so no notification will come.
    void resolve_now(const std::string& id, TaskOutcome out);

    /// Stops reading: a reply that arrives later is dropped.
    void stop();
    /// Deletes the notification stream (its group goes with it); `done` runs
    /// once with the reply.
    void delete_stream(redis::CommandOptions opts, std::function<void()> done);
    /// Stops and closes the dedicated connection and the retry timer.
    void close();

    /// Notifications for tasks not tracked (or unreadable). Any thread.
    std::uint64_t unknown() const noexcept { return unknown_.load(); }

private:
    void read();
    void watch();
    void on_read(Result<redis::Reply> res, bool backlog);
    void handle_entry(const redis::StreamEntry& entry);
    void create_group(std::function<void(bool created)> then);
    void retry_later();
    void check_records();
    void on_record(const std::string& id, const redis::Reply& reply);

    ClientContext& ctx_;
    std::shared_ptr<redis::Connection> conn_;
    std::unique_ptr<Timer> retry_;
    SeededRandom random_;
    RetryBackoff backoff_{random_};
    bool stopping_ = false;
    // After every (re)connect, the entries delivered to this client whose
    // reply was lost with the link (they wait in its pending list and ">"
    // never returns them again) are read first, from backlog_from_ on.
    bool backlog_ = true;
    std::string backlog_from_ = "0";
    std::unordered_map<std::string, std::shared_ptr<HandleState>> tracked_;
    std::atomic<std::uint64_t> unknown_{0};
};

}  // namespace streamfleet::detail::client
