#pragma once

// RESP encoding and decoding, free of I/O so it can be tested alone.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "redis/reply.hpp"

struct redisReader;

namespace streamfleet::detail::redis {

/// Appends `argv` to `out` as one RESP multi-bulk command. Binary-safe; writes
/// straight into the connection's output buffer, so a command costs no
/// allocation of its own once the buffer has grown.
void append_command(std::string& out, std::span<const std::string_view> argv);

/// Writes one RESP command argument by argument, for callers that have their
/// arguments as fields rather than as an argv array (no views vector, numbers
/// formatted in place). The caller promises exactly `nargs` arg() calls.
class CommandWriter {
public:
    CommandWriter(std::string& out, std::size_t nargs, std::size_t size_hint = 0);
    /// Writes arguments only, no array header: for a part of a command that is
    /// put together later (the header then counts these arguments too).
    explicit CommandWriter(std::string& out) : out_(out) {}
    void arg(std::string_view a);
    void arg(std::int64_t n);

private:
    void put_len(char prefix, std::size_t n);
    std::string& out_;
};

/// Incremental RESP2 parser over hiredis's redisReader. The reader builds
/// Reply objects directly through custom object functions.
class ReplyParser {
public:
    ReplyParser();
    ~ReplyParser();
    ReplyParser(const ReplyParser&) = delete;
    ReplyParser& operator=(const ReplyParser&) = delete;

    /// Feeds bytes. Returns an error for an out-of-memory condition only;
    /// protocol errors surface from next().
    Status feed(const char* data, std::size_t len);

    /// Next complete reply: a Reply, or nullptr when more bytes are needed,
    /// or an error (errc::protocol) when the stream is not valid RESP; after an
    /// error the parser must be reset().
    Result<std::unique_ptr<Reply>> next();

    /// Drops buffered bytes and any partial reply.
    void reset();

private:
    redisReader* reader_;
};

}  // namespace streamfleet::detail::redis
