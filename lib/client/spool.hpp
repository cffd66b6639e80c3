#pragma once

// Spool: responsible for keeping accepted tasks on local disk until Redis has
// them, so that a client process that dies during a Redis outage loses
// nothing: the next client opened on the same spool sends what is left.
//
// File format: a sequence of records, each
//   u32 little-endian length of the rest | u8 kind | body
// kind 'T': a task; body = msgpack array [queue, field, value, field, value, ...]
// kind 'A': Redis confirmed the task; body = task id
// A crash can leave a torn last record; it is ignored (its enqueue never
// returned). The file is compacted when it is opened and whenever every task
// in it is confirmed.

#include <cstdint>
#include <memory>
#include <mutex>
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
    Status append(std::string_view queue, const TaskMessage& msg);
    /// Records that Redis has the task (no fsync: a lost ack record only means
    /// a resend). Compacts the file when nothing is left unconfirmed.
    void confirm(const std::string& task_id);

private:
    Spool(std::string path, int fd, SpoolSync sync)
        : path_(std::move(path)), fd_(fd), sync_(sync) {}
    Status write_record(char kind, std::string_view body, bool fsync);

    std::string path_;
    int fd_;
    SpoolSync sync_;
    std::mutex mutex_;
    std::unordered_set<std::string> unconfirmed_;  // guarded by mutex_
};

}  // namespace streamfleet::detail
