#pragma once

// Block: plain commands on one slot's keys sent as one MULTI ... EXEC
// transaction, one callback for all (CommandOptions::replies).
//
// Why not a script: a script call costs Redis a conversion of every argument
// into Lua and back, which for the hot path's few writes per task costs more
// than the writes themselves; a transaction costs one queued copy. Why not a
// bare pipeline: Redis runs nothing of a transaction a command of which it
// refuses at queue time (OOM, NOPERM, a redirection), and inside MULTI an
// ASKING covers every command of the block, so a block moved during a slot
// migration is redirected whole.

#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include "redis/connection.hpp"

namespace streamfleet::detail::redis {

class Block {
public:
    /// `route`: a key of the slot every command's keys share.
    explicit Block(std::string route);

    void add(std::span<const std::string_view> argv);
    void add(std::initializer_list<std::string_view> argv) {
        add(std::span<const std::string_view>(argv.begin(), argv.size()));
    }

    /// Commands added so far.
    std::size_t size() const noexcept { return n_; }
    bool empty() const noexcept { return n_ == 0; }
    const std::string& route() const noexcept { return route_; }
    /// MULTI, the commands, EXEC.
    std::string resp() const;
    /// What the block's command asks for: its replies, MULTI's and EXEC's included.
    CommandOptions options(CommandOptions base = {}) const;

private:
    std::string route_;
    std::string body_;  // the commands, RESP-encoded
    std::size_t n_ = 0;
};

}  // namespace streamfleet::detail::redis
