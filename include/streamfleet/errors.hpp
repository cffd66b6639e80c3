#pragma once

/// @file
/// The exceptions thrown by streamfleet's synchronous calls. Everything derives
/// from streamfleet::Error, so `catch (const streamfleet::Error&)` catches all of
/// them; catch a subclass to react to one kind. docs/errors.md lists them with
/// the situations that raise each.

#include <stdexcept>
#include <string>
#include <utility>

#include "streamfleet/export.hpp"

namespace streamfleet {
inline namespace v1 {

/// @brief Root of every exception streamfleet throws.
class STREAMFLEET_API Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// @brief Network or socket failure talking to Redis (refused, reset, EOF).
class STREAMFLEET_API IoError : public Error {
public:
    using Error::Error;
};

/// @brief Could not establish a connection (refused, unreachable, DNS failure).
class STREAMFLEET_API ConnectionError : public IoError {
public:
    using IoError::IoError;
};

/// @brief An operation did not finish within its time limit.
/// @note A timed-out command may still have run on the server.
class STREAMFLEET_API TimeoutError : public IoError {
public:
    using IoError::IoError;
};

/// @brief Redis rejected the credentials (AUTH failed) or the selected database.
class STREAMFLEET_API AuthError : public Error {
public:
    using Error::Error;
};

/// @brief The object (connection, client, server, runtime) was closed.
class STREAMFLEET_API ClosedError : public Error {
public:
    using Error::Error;
};

/// @brief Redis answered with an error reply (for example `WRONGTYPE ...`).
class STREAMFLEET_API ReplyError : public Error {
public:
    using Error::Error;
};

/// @brief Redis refused to store a task (NOPERM, OOM past
/// `ClientOptions::oom_patience`, WRONGTYPE, a payload over its
/// `proto-max-bulk-len`, ...). The task was not enqueued, is not resent and
/// has left the spool; what() is Redis's reply. task_id() names the task.
class STREAMFLEET_API Refused : public ReplyError {
public:
    Refused(const std::string& what, std::string task_id)
        : ReplyError(what), task_id_(std::move(task_id)) {}
    const std::string& task_id() const noexcept { return task_id_; }

private:
    std::string task_id_;
};

/// @brief Redis sent something that violates the protocol or the expected reply shape.
class STREAMFLEET_API ProtoError : public Error {
public:
    using Error::Error;
};

/// @brief A caller-supplied value is invalid; what() names the offending field.
class STREAMFLEET_API InvalidArgument : public Error {
public:
    using Error::Error;
};

/// @brief The client's local buffer of tasks not yet in Redis is full.
class STREAMFLEET_API QueueFull : public Error {
public:
    using Error::Error;
};

/// @brief The queue was not declared when the Client was created.
class STREAMFLEET_API UnknownQueue : public Error {
public:
    using Error::Error;
};

/// @brief No task with that id is known (never enqueued with state tracking,
/// or its finished state's retention has passed).
class STREAMFLEET_API NotFound : public Error {
public:
    using Error::Error;
};

/// @brief A task with the same `unique_key` was enqueued within its
/// `unique_ttl`; existing_id() is that task's id.
class STREAMFLEET_API Duplicate : public Error {
public:
    Duplicate(const std::string& what, std::string existing_id)
        : Error(what), existing_id_(std::move(existing_id)) {}
    const std::string& existing_id() const noexcept { return existing_id_; }

private:
    std::string existing_id_;
};

/// @brief The feature exists in the API but is not available in this build or topology.
class STREAMFLEET_API Unsupported : public Error {
public:
    using Error::Error;
};

}  // namespace v1
}  // namespace streamfleet
