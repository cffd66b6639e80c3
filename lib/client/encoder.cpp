// Encoder: a task's wire form: a plain XADD, batched enqueue-script args, or a schedule call.
#include "client/encoder.hpp"

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
    if (m.state) o.record_key = keys.task(m.id);
    o.script = std::make_unique<ScriptCall>(
        calls::schedule(keys, m.run_at_ms, encode_msgpack(parts), m.state ? &rec : nullptr));
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
        // This task's part of a scripts::enqueue call (see command_for):
        // created, notify, retention, the field count, then the fields.
        o.form = Outgoing::Form::batched;
        o.record_key = keys.task(m.id);
        o.cmd.reserve(size + 32 * nfields + 128);
        r::CommandWriter w(o.cmd);
        w.arg(m.enqueued_ts);
        w.arg(notify);
        w.arg(m.retention_ms);
        w.arg(static_cast<std::int64_t>(2 * nfields));
        visit_fields(m, [&w](std::string_view f, auto v) {
            w.arg(f);
            w.arg(v);
        });
        o.batch_args = 4 + 2 * nfields;
        return o;
    }
    r::CommandWriter w(o.cmd, 3 + 2 * nfields, size);
    w.arg("XADD");
    w.arg(*o.stream);
    w.arg("*");
    visit_fields(m, [&w](std::string_view f, auto v) {
        w.arg(f);
        w.arg(v);
    });
    return o;
}

std::string_view route_key(const Outgoing& task) {
    return task.script ? task.script->route_key() : std::string_view(*task.stream);
}

bool joins_batch(const Outgoing& first, std::size_t count, std::size_t bytes,
                 const Outgoing& next) {
    return first.form == Outgoing::Form::batched && next.form == Outgoing::Form::batched &&
           first.stream == next.stream && count < kMaxBatch &&
           bytes + next.cmd.size() <= kMaxBatchBytes;
}

std::string_view command_for(std::span<Outgoing* const> tasks, bool by_body, std::string& scratch) {
    const Outgoing& first = *tasks.front();
    scratch.clear();
    switch (first.form) {
        case Outgoing::Form::xadd:
            return first.cmd;
        case Outgoing::Form::script:
            r::append_command(scratch, first.script->argv(by_body));
            return scratch;
        case Outgoing::Form::batched:
            break;
    }
    // KEYS: the stream, then each task's record; ARGV: each task's part, in
    // the same order (lib/scripts/enqueue.lua).
    std::size_t nargs = 0, bytes = 0;
    for (const auto* o : tasks) {
        nargs += o->batch_args;
        bytes += o->cmd.size() + o->record_key.size() + 16;
    }
    scratch.reserve(bytes + first.stream->size() + 128 +
                    (by_body ? scripts::enqueue.body.size() : 0));
    r::append_script_head(scratch, scripts::enqueue, by_body, 1 + tasks.size(), nargs);
    r::CommandWriter w(scratch);
    w.arg(*first.stream);
    for (const auto* o : tasks) w.arg(o->record_key);
    for (const auto* o : tasks) scratch += o->cmd;
    return scratch;
}

}  // namespace streamfleet::detail::client
