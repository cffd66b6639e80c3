// Encoder: a task's wire form: batched add- or enqueue-script args, or a schedule call.
#include "client/encoder.hpp"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "core/script_calls.hpp"
#include "redis/resp.hpp"
#include "redis/script_runner.hpp"
#include "streamfleet/codec.hpp"

namespace streamfleet::detail::client {

namespace r = redis;

namespace {

// Delayed: into P{Q}:delayed (and a nudge), as the msgpack array of the
// entry's field/value strings -- the member form the server's retries use, so
// one promoter serves both.
void encode_delayed(Outgoing& o, const TaskMessage& m, const QueueKeys& keys,
                    std::string_view notify) {
    auto fields = encode(m);  // the wire codec's field list
    std::vector<std::string> parts(fields.views().begin(), fields.views().end());
    calls::Record rec{m.id, m.enqueued_ts, notify, m.retention_ms};
    o.form = Outgoing::Form::script;
    if (m.state) {
        o.record_keys = &keys;
    } else {
        o.ledger = keys.sent(m.client_id);
    }
    o.script = std::make_unique<ScriptCall>(calls::schedule(
        keys, m.run_at_ms, encode_msgpack(parts), m.state ? &rec : nullptr, o.ledger));
}

}  // namespace

Outgoing encode_outgoing(const TaskMessage& m, const QueueKeys& keys, std::size_t bytes) {
    Outgoing o;
    o.id = m.id;
    o.stream = &keys.stream();
    o.bytes = bytes;
    const std::string_view notify = m.send_notif ? std::string_view(m.client_id) : "";
    if (m.run_at_ms > 0) {
        encode_delayed(o, m, keys, notify);
        return o;
    }
    std::size_t nfields = 0, size = o.stream->size();
    visit_fields(m, [&](std::string_view f, auto v) {
        nfields += 1;
        size += f.size();
        if constexpr (std::is_same_v<decltype(v), std::string_view>) size += v.size();
    });
    if (m.state) {
        // This task's part of a scripts::enqueue call (see command_for): its
        // id, the field count, then the fields.
        o.form = Outgoing::Form::batched;
        o.record_keys = &keys;
        o.cmd.reserve(size + m.id.size() + 32 * nfields + 128);
        r::CommandWriter w(o.cmd);
        w.arg(m.id);
        w.arg(static_cast<std::int64_t>(2 * nfields));
        visit_fields(m, [&w](std::string_view f, auto v) {
            w.arg(f);
            w.arg(v);
        });
        o.batch_args = 2 + 2 * nfields;
        return o;
    }
    // The entry's fields: the tail of an XADD, or of this task's part of a
    // scripts::add call (see command_for).
    o.form = Outgoing::Form::noted;
    o.ledger = keys.sent(m.client_id);
    o.cmd.reserve(size + 32 * nfields + 32);
    r::CommandWriter w(o.cmd);
    visit_fields(m, [&w](std::string_view f, auto v) {
        w.arg(f);
        w.arg(v);
    });
    o.batch_args = 2 * nfields;
    return o;
}

std::string_view route_key(const Outgoing& task) {
    return task.script ? task.script->route_key() : std::string_view(*task.stream);
}

bool joins_batch(const Outgoing& first, std::size_t count, std::size_t bytes,
                 const Outgoing& next) {
    return first.form != Outgoing::Form::script && next.form == first.form &&
           first.stream == next.stream && first.ledger == next.ledger && count < kMaxBatch &&
           bytes + next.cmd.size() <= kMaxBatchBytes;
}

namespace {

// A resend: KEYS: the stream, the ledger; ARGV: the floor, the ledger's ttl,
// then each task's number, field count and fields (lib/scripts/add.lua), which
// skips a task its ledger already notes.
std::string_view checked_command(std::span<Outgoing* const> tasks, bool by_body, std::uint64_t floor,
                                 std::string& scratch) {
    const Outgoing& first = *tasks.front();
    std::size_t nargs = 2, bytes = 0;
    for (const auto* o : tasks) {
        nargs += 2 + o->batch_args;
        bytes += o->cmd.size() + 48;
    }
    scratch.reserve(bytes + first.stream->size() + first.ledger.size() + 128 +
                    (by_body ? scripts::add.body.size() : 0));
    r::append_script_head(scratch, scripts::add, by_body, 2, nargs);
    r::CommandWriter w(scratch);
    w.arg(*first.stream);
    w.arg(first.ledger);
    w.arg(static_cast<std::int64_t>(floor));
    w.arg(kLedgerTtlMs);
    for (const auto* o : tasks) {
        w.arg(static_cast<std::int64_t>(o->seq));
        w.arg(static_cast<std::int64_t>(o->batch_args));
        scratch += o->cmd;
    }
    return scratch;
}

// A first send: what add.lua does, as plain commands in one transaction
// (kPlainExtraReplies more replies than tasks), which costs Redis far less than
// a script's per-argument work. It needs no check: no earlier send of these
// tasks can have run (see Outgoing::in_doubt).
std::string_view first_command(std::span<Outgoing* const> tasks, std::uint64_t floor,
                               std::string& scratch) {
    const Outgoing& first = *tasks.front();
    const std::string& stream = *first.stream;
    const std::string& ledger = first.ledger;
    std::size_t bytes = 0;
    for (const auto* o : tasks) bytes += o->cmd.size() + stream.size() + 64;
    scratch.reserve(bytes + 2 * ledger.size() + 128);
    auto plain = [&scratch](std::initializer_list<std::string_view> argv) {
        r::append_command(scratch, std::span(argv.begin(), argv.size()));
    };
    plain({"MULTI"});
    const auto low = "(" + std::to_string(floor);
    plain({"ZREMRANGEBYSCORE", ledger, "-inf", low});
    for (const auto* o : tasks) {
        r::CommandWriter w(scratch, 3 + o->batch_args);
        w.arg("XADD");
        w.arg(stream);
        w.arg("*");
        scratch += o->cmd;
    }
    {
        r::CommandWriter w(scratch, 2 + 2 * tasks.size());
        w.arg("ZADD");
        w.arg(ledger);
        for (const auto* o : tasks) {
            w.arg(static_cast<std::int64_t>(o->seq));
            w.arg(static_cast<std::int64_t>(o->seq));
        }
    }
    const auto ttl = std::to_string(kLedgerTtlMs);
    plain({"PEXPIRE", ledger, ttl});
    plain({"EXEC"});
    return scratch;
}

// A delayed task's schedule call; one without a record gets its ledger
// arguments now that its number and the floor are known.
std::string_view script_command(const Outgoing& o, bool by_body, std::uint64_t floor,
                                std::string& scratch) {
    auto argv = o.script->argv(by_body);
    std::string seq, low, ttl;
    if (!o.ledger.empty()) {
        seq = std::to_string(o.seq);
        low = std::to_string(floor);
        ttl = std::to_string(kLedgerTtlMs);
        argv.insert(argv.end(), {seq, low, ttl});
    }
    r::append_command(scratch, argv);
    return scratch;
}

}  // namespace

bool sent_plain(std::span<Outgoing* const> tasks) {
    return tasks.front()->form == Outgoing::Form::noted &&
           std::none_of(tasks.begin(), tasks.end(), [](auto* o) { return o->in_doubt; });
}

unsigned replies_for(std::span<Outgoing* const> tasks) {
    return sent_plain(tasks) ? static_cast<unsigned>(tasks.size() + kPlainExtraReplies) : 1;
}

std::string_view command_for(std::span<Outgoing* const> tasks, bool by_body, std::uint64_t floor,
                             std::string& scratch) {
    const Outgoing& first = *tasks.front();
    scratch.clear();
    switch (first.form) {
        case Outgoing::Form::noted:
            if (sent_plain(tasks)) return first_command(tasks, floor, scratch);
            return checked_command(tasks, by_body, floor, scratch);
        case Outgoing::Form::script:
            return script_command(first, by_body, floor, scratch);
        case Outgoing::Form::batched:
            break;
    }
    // KEYS: the stream, its index, P{Q}:done, the records' prefix; ARGV:
    // whether to look for an earlier send (any task in doubt), then each
    // task's part, in order (lib/scripts/enqueue.lua).
    const bool check = std::any_of(tasks.begin(), tasks.end(), [](auto* o) { return o->in_doubt; });
    std::size_t nargs = 1, bytes = 0;
    for (const auto* o : tasks) {
        nargs += o->batch_args;
        bytes += o->cmd.size();
    }
    const auto& keys = *first.record_keys;
    scratch.reserve(bytes + 4 * keys.stream().size() + 128 +
                    (by_body ? scripts::enqueue.body.size() : 0));
    r::append_script_head(scratch, scripts::enqueue, by_body, 4, nargs);
    r::CommandWriter w(scratch);
    w.arg(keys.stream());
    w.arg(keys.index());
    w.arg(keys.done());
    w.arg(keys.task_prefix());
    w.arg(check ? "1" : "0");
    for (const auto* o : tasks) scratch += o->cmd;
    return scratch;
}

}  // namespace streamfleet::detail::client
