#pragma once

// Spool: responsible for keeping accepted tasks on local disk until Redis has
// them, so that a client process that dies during a Redis outage loses
// nothing: the next client opened on the same spool sends what is left.
//
// File format: records framed and checked by spool_format.hpp, kind 'T' an
// accepted task, kind 'A' a task Redis confirmed. A damaged record (a torn
// write, a flipped bit) costs that record only: the parser resynchronises on
// the next good one. The file is compacted when it is opened and started over
// whenever every task in it is confirmed.
//
// Writes: a task is accepted only once its record is whole in the file (and
// synced, per policy). A write that fails part-way is cut back at once to the
// last good offset, so a half record never sits in front of later ones, and
// the task is refused. A batch is one write: all of it is accepted, or none.
//
// Lock: flock(2) on the spool file, held from open to destruction. flock
// belongs to the open file description, so a second open in the same process
// (another Client) is refused like one in another process, and closing that
// second descriptor does not drop the first's lock (fcntl locks would do both
// wrong). Compaction swaps in a new file; that file is locked before it
// replaces the old one, and an opener that locked the replaced file notices
// (its inode is no longer the path's) and tries again, so the lock is never
// free between two holders.

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/wire.hpp"

namespace streamfleet::detail {

enum class SpoolSync {
    always,  // fsync after every accepted task: survives power loss
    none,    // leave it to the OS: survives a process crash, not a machine crash
};

class Spool {
public:
    struct Pending {
        std::string queue;
        TaskMessage msg;
    };

    /// Opens (creating if needed) and locks the spool; returns the tasks a
    /// previous client left unconfirmed, in the order they were accepted.
    /// errc::invalid_argument if the file is locked by a live client or unusable.
    static Result<std::pair<std::unique_ptr<Spool>, std::vector<Pending>>> open(std::string path,
                                                                                SpoolSync sync);
    ~Spool();
    Spool(const Spool&) = delete;
    Spool& operator=(const Spool&) = delete;

    /// Appends an accepted task (fsync per policy) before enqueue returns.
    /// An error (errc::io, naming the file and the cause) means the task is
    /// not in the spool and must be refused.
    Status append(std::string_view queue, const TaskMessage& msg);
    /// Appends every task of a batch in one write: all of them, or (on an
    /// error) none.
    Status append_many(std::string_view queue, std::span<const TaskMessage> msgs);
    /// Records that Redis has the task (no fsync: a lost ack record only means
    /// a resend). Compacts the file when nothing is left unconfirmed.
    void confirm(const std::string& task_id);

private:
    Spool(std::string path, int fd, SpoolSync sync, std::uint64_t end)
        : path_(std::move(path)), fd_(fd), sync_(sync), end_(end) {}
    // Writes `records` whole after the last good one, or leaves the file as it was. mutex_ held.
    Status write_locked(std::string_view records, bool fsync);

    const std::string path_;
    const int fd_;  // O_APPEND, and holds the lock
    const SpoolSync sync_;
    std::mutex mutex_;
    // Guarded by mutex_:
    std::uint64_t end_;        // the file's length up to the last good record
    bool cut_failed_ = false;  // a failed write could not be cut back: cut before writing more
    std::unordered_set<std::string> unconfirmed_;
};

}  // namespace streamfleet::detail
