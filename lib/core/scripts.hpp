#pragma once

// The Lua scripts (lib/scripts/*.lua, embedded at build time by embed.py) and
// ScriptCall, the one way a call of them is built: KEYS and ARGV kept apart,
// so no key count is written by hand and the first key routes the call to the
// node that holds the queue. Each .lua file opens with its contract.
//
// State records (P{Q}:task:ID, a hash) hold: state, retries, error, created,
// updated, finished, run_at, retention (ms to keep it once finished), notify
// (the tracking client's id, "" for fire-and-forget), entry (its id in P{Q}
// while ready or running) and member (its P{Q}:delayed member while delayed).
// A field at its readers' default is left out (docs/wire-format.md).
// "active" is not stored: it is "ready" with the entry in the group's PEL,
// which costs the fast path no write when a server picks a task up.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace streamfleet::detail {

/// Finished states are kept this long unless a task says otherwise.
inline constexpr std::int64_t kDefaultRetentionMs = 24LL * 3600 * 1000;
/// A client's ledger (P{Q}:sent:CLIENT) lives this long after its last
/// write: a client resending later than that (an outage longer than a day)
/// may add a task without a state record twice.
inline constexpr std::int64_t kLedgerTtlMs = 24LL * 3600 * 1000;

/// One embedded script: its file's base name, its text, and the SHA-1 of the
/// text (what EVALSHA names it by), computed at build time.
struct Script {
    std::string_view name;
    std::string_view body;
    std::string_view sha1;
};

namespace scripts {
extern const Script enqueue;         // ready tasks, indexed by task id
extern const Script add;             // ready tasks without records, noted in the client's ledger
extern const Script schedule;        // a delayed task (+ record), nudging promoters
extern const Script unique_claim;    // claim a uniqueness key, or name its holder
extern const Script unique_release;  // give a claimed key back
extern const Script cancel;          // cancel a task wherever it is
extern const Script get;             // read a task's state, deriving "active"
extern const Script promote;         // due delayed tasks → the stream
extern const Script move;            // write a task elsewhere, then ack its entry
extern const Script ack;             // ack finished entries, trim what nobody needs
extern const Script keep;            // renew the leases this server still owns
extern const Script forget;          // drop a dead server that owns nothing
extern const Script beat;            // a server's heartbeat (Redis's clock) and id hold
extern const Script leave;           // a stopping server's registry exit
extern const Script dead;            // servers dead by Redis's clock
extern const Script claim;           // take over entries while the reason holds
extern const Script requeue_dead;    // dead letters → the stream, retries reset
extern const Script purge_dead;      // delete every dead letter
}  // namespace scripts

/// A call of one script, built up key by key and argument by argument.
class ScriptCall {
public:
    explicit ScriptCall(const Script& script) : script_(&script) {}

    ScriptCall& key(std::string_view k) {
        keys_.emplace_back(k);
        nkeys_ = std::to_string(keys_.size());
        return *this;
    }
    ScriptCall& arg(std::string_view a) {
        args_.emplace_back(a);
        return *this;
    }
    ScriptCall& arg(const char* a) { return arg(std::string_view(a)); }
    ScriptCall& arg(const std::string& a) { return arg(std::string_view(a)); }
    ScriptCall& arg(std::int64_t v) {
        args_.push_back(std::to_string(v));
        return *this;
    }
    ScriptCall& args(std::span<const std::string_view> values) {
        args_.insert(args_.end(), values.begin(), values.end());
        return *this;
    }
    ScriptCall& args(std::span<const std::string> values) {
        args_.insert(args_.end(), values.begin(), values.end());
        return *this;
    }

    const Script& script() const noexcept { return *script_; }
    /// The key that routes the call (KEYS[1]); every other key shares its hash tag.
    std::string_view route_key() const noexcept {
        return keys_.empty() ? std::string_view() : std::string_view(keys_.front());
    }
    const std::vector<std::string>& keys() const noexcept { return keys_; }
    const std::vector<std::string>& arguments() const noexcept { return args_; }

    /// "EVALSHA sha1 numkeys KEYS... ARGV..." or, with `by_body`, "EVAL body ...".
    /// The views point into this call and the script.
    std::vector<std::string_view> argv(bool by_body) const {
        std::vector<std::string_view> out;
        out.reserve(3 + keys_.size() + args_.size());
        out.push_back(by_body ? "EVAL" : "EVALSHA");
        out.push_back(by_body ? script_->body : script_->sha1);
        out.push_back(nkeys_);
        out.insert(out.end(), keys_.begin(), keys_.end());
        out.insert(out.end(), args_.begin(), args_.end());
        return out;
    }

private:
    const Script* script_;
    std::string nkeys_ = "0";
    std::vector<std::string> keys_;
    std::vector<std::string> args_;
};

}  // namespace streamfleet::detail
