#pragma once

// RESP encoding and decoding, free of I/O so it can be tested alone.

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
