#pragma once

// Notes: notifications to tracking clients, as plain XADDs in redis::Blocks,
// one block per client and loop turn.
//
// A tracking client creates its stream (with its group) when it opens and
// deletes it when it closes, so an absent stream means nobody will read the
// notification: XADD NOMKSTREAM writes only into a stream that exists (a
// plain XADD would recreate one nobody ever deletes), and under a key of
// another type it fails alone inside the EXEC, leaving the key as it was.
// Clients of the Go library create their stream lazily and clean up by
// heartbeat, so with `even_if_absent` (Go-compatible mode) the stream is
// written regardless. No script: a script call costs Redis a conversion of
// every field into Lua and back, several times the XADD itself.

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "redis/block.hpp"

namespace streamfleet::detail {

/// Adds one notification (`fields`) for `receiver` to `block`.
void add_note(redis::Block& block, std::string_view receiver,
              std::span<const std::string_view> fields, bool even_if_absent);

/// One block holding one notification.
redis::Block note_block(std::string receiver, std::span<const std::string_view> fields,
                        bool even_if_absent);

/// A loop turn's notifications, grouped by client.
class Notes {
public:
    explicit Notes(bool even_if_absent) : even_(even_if_absent) {}
    void add(const std::string& receiver, std::span<const std::string_view> fields);
    bool empty() const noexcept { return blocks_.empty(); }
    /// The blocks, one per client; empty afterwards.
    std::vector<redis::Block> take() { return std::exchange(blocks_, {}); }

private:
    bool even_;
    std::vector<redis::Block> blocks_;  // few clients per turn: a linear search is enough
};

}  // namespace streamfleet::detail
