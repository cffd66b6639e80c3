// Outcome writer: outcomes made durable, then acked in batches (see outcome_writer.hpp).

#include "server/outcome_writer.hpp"

#include <cstdio>
#include <utility>

#include "core/backoff.hpp"
#include "core/log.hpp"

namespace streamfleet::detail {

namespace r = redis;

namespace {

std::int64_t retention_of(const TaskMessage& m) {
    return m.retention_ms >= 0 ? m.retention_ms : kDefaultRetentionMs;
}

}  // namespace

OutcomeWriter::OutcomeWriter(ServerContext& ctx, Queues queues, Hooks hooks, Notify notify)
    : ctx_(ctx),
      queues_(queues),
      hooks_(std::move(hooks)),
      notify_(notify),
      batches_(queues.size(), Batch{{}, Notes(notify == Notify::always), {}}),
      held_(queues.size()),
      writes_(ctx, hooks_.changed),
      flusher_(ctx.rt.loop(), [this] { flush_acks(); }) {
    // Bucket families are named by a tag drawn anew by each server instance: a restarted server
    // with the same id must not write into its predecessor's families, whose expiry is set.
    char tag[9];
    std::snprintf(tag, sizeof tag, "%08x", static_cast<unsigned>(ctx.random.next()));
    states_.reserve(queues.size());
    for (const auto& q : queues) states_.emplace_back(q.keys, tag);
}

void OutcomeWriter::stop() {
    writes_.stop();
    flusher_.close();
}

void OutcomeWriter::tick() {
    flush_acks();
    writes_.resend();
}

std::vector<std::string> OutcomeWriter::held(const QueueContext& q) const {
    std::vector<std::string> ids;
    ids.reserve(held_[q.index].size());
    for (const auto& [id, _] : held_[q.index]) ids.push_back(id);
    return ids;
}

bool OutcomeWriter::holds(const QueueContext& q, std::string_view entry_id) const {
    return held_[q.index].count(std::string(entry_id)) > 0;
}

void OutcomeWriter::hold(std::size_t queue, const std::string& entry_id) {
    ++held_[queue][entry_id];
}

void OutcomeWriter::release(std::size_t queue, const std::vector<std::string>& entry_ids) {
    auto& h = held_[queue];
    for (const auto& id : entry_ids) {
        auto it = h.find(id);
        if (it != h.end() && --it->second == 0) h.erase(it);
    }
}

// Writes the task to `dest` (XADD fields, or ZADD score member), then acks and deletes the entry,
// atomically and in that order (lib/scripts/move.lua); `note` goes out once that is done.
void OutcomeWriter::move(const Job& job, const std::string& dest, calls::Move::To to,
                         std::span<const std::string_view> payload, std::string what,
                         StateChange sc, std::optional<redis::Block> note) {
    bool tracked = sc.msg && sc.msg->state && !sc.state.empty();
    calls::Move m{.dest = dest,
                  .to = to,
                  .entry_id = job.entry_id,
                  .payload = payload,
                  .task_id = tracked ? std::string_view(sc.msg->id) : std::string_view(),
                  .state = tracked ? sc.state : std::string_view(),
                  .now_ms = ctx_.clock.now_ms(),
                  .error = sc.error,
                  .retries = sc.retries,
                  .retention_ms = tracked ? retention_of(*sc.msg) : 0,
                  .history = tracked ? std::string_view(sc.msg->history) : std::string_view(),
                  .ends_as = dest == job.queue->keys.dead() ? "dead" : std::string_view()};
    auto q = job.queue->index;
    hold(q, job.entry_id);
    auto note_ptr = note ? std::make_shared<redis::Block>(std::move(*note)) : nullptr;
    // A task that would run again: move.lua ends it canceled instead (reply 2) when a cancel
    // reached it while it ran, and then its client hears that rather than `note`.
    bool may_cancel = tracked && (sc.state == "ready" || sc.state == "failed");
    std::shared_ptr<redis::Block> canceled_ptr;
    if (may_cancel) {
        if (auto c = notification(*sc.msg, NotificationType::canceled, {}))
            canceled_ptr = std::make_shared<redis::Block>(std::move(*c));
    }
    writes_.write(
        calls::move(job.queue->keys, m), std::move(what),
        [this, q, id = job.entry_id, may_cancel, note_ptr,
         canceled_ptr](const redis::Reply& reply) {
            release(q, {id});
            bool was_canceled = may_cancel && reply.as_integer().value_or(0) == 2;
            if (was_canceled) {
                ++ctx_.counters.canceled;
                count(ctx_.counters, q, &QueueMetrics::canceled);
            }
            const auto& n = was_canceled ? canceled_ptr : note_ptr;
            if (n) writes_.write(std::move(*n), "notification");
        },
        [this, q, id = job.entry_id] { release(q, {id}); });
}

std::optional<redis::Block> OutcomeWriter::notification(const TaskMessage& msg,
                                                        NotificationType type,
                                                        std::string_view err) const {
    if (!msg.send_notif) return std::nullopt;
    Notification n{msg.id, type, std::string(err), {}, ctx_.consumer};
    auto f = encode(n);  // views into n
    return note_block(receiver_of(msg), f.views(), notify_ == Notify::always);
}

std::string OutcomeWriter::receiver_of(const TaskMessage& msg) const {
    return receiver_key(ctx_.opts.prefix, msg.client_id, key_style(ctx_.opts.go_compatible));
}

// Finished tasks are acked in batches per queue and loop turn: one XACK and one XDEL with all
// their ids, sent once the batch's final states (one FinalStates transaction for the tasks
// with a state record) and then its notifications are in Redis.
void OutcomeWriter::finish(const Job& job, NotificationType type, std::string_view state) {
    auto& b = batches_[job.queue->index];
    if (b.acks.empty()) to_flush_.push_back(job.queue->index);
    b.acks.push_back(job.entry_id);
    ++b.ended[std::string(state)];
    hold(job.queue->index, job.entry_id);
    if (job.msg.state) {
        states_[job.queue->index].add(job.msg.id, state, job.msg.enqueued_ts, job.msg.retries,
                                      retention_of(job.msg));
    }
    if (job.msg.send_notif) {
        Notification n{job.msg.id, type, {}, {}, ctx_.consumer};
        auto f = encode(n);  // views into n
        b.notes.add(receiver_of(job.msg), f.views());
    }
    ++unflushed_;  // a pending write until flushed: shutdown waits for it
    flusher_.arm();
}

void OutcomeWriter::flush_acks() {
    auto list = std::move(to_flush_);
    to_flush_.clear();
    for (auto i : list) {
        auto& b = batches_[i];
        auto c = std::make_shared<Chain>();
        c->queue = i;
        c->ids = std::exchange(b.acks, {});
        for (const auto& [how, n] : std::exchange(b.ended, {}))
            c->ended += (c->ended.empty() ? "" : " ") + how + " " + std::to_string(n);
        c->notes = b.notes.take();
        if (auto& s = states_[i]; !s.empty()) c->states = s.take(ctx_.clock.now_ms());
        write_states(c);
    }
    unflushed_ = 0;
    if (hooks_.changed) hooks_.changed();
}

// A step refused for good ends the chain without its ack: the entries are released (their lease
// lapses) and delivered again, rather than acked with no outcome written.
void OutcomeWriter::write_states(const ChainPtr& c) {
    if (!c->states) {
        write_notes(c);
        return;
    }
    auto call = std::move(*c->states);
    c->states.reset();
    writes_.write(
        std::move(call), "task states", [this, c] { write_notes(c); },
        [this, c] { release(c->queue, c->ids); });
}

void OutcomeWriter::write_notes(const ChainPtr& c) {
    if (c->notes.empty()) {
        write_acks(c);
        return;
    }
    auto notes = std::exchange(c->notes, {});
    c->notes_left = notes.size();
    auto arrived = [this, c] {
        if (--c->notes_left > 0) return;
        if (c->note_refused) {
            release(c->queue, c->ids);
        } else {
            write_acks(c);
        }
    };
    for (auto& n : notes) {
        writes_.write(std::move(n), "notification", arrived, [c, arrived] {
            c->note_refused = true;
            arrived();
        });
    }
}

void OutcomeWriter::write_acks(const ChainPtr& c) {
    // One script acks the batch and only then takes entries out of the stream (ack.lua): deleted
    // first, a still-pending entry would vanish from the PEL at its next XCLAIM, an ack in all
    // but name.
    writes_.write(
        calls::ack(queues_[c->queue].keys, c->ids, c->ended), "XACK",
        [this, c] { release(c->queue, c->ids); }, [this, c] { release(c->queue, c->ids); });
}

void OutcomeWriter::completed(const Job& job) {
    ++ctx_.counters.succeeded;
    count(ctx_.counters, job.queue->index, &QueueMetrics::completed);
    finish(job, NotificationType::completed, "completed");
}

void OutcomeWriter::canceled(const Job& job) {
    ++ctx_.counters.canceled;
    count(ctx_.counters, job.queue->index, &QueueMetrics::canceled);
    finish(job, NotificationType::canceled, "canceled");
}

void OutcomeWriter::expired(const Job& job) {
    ++ctx_.counters.expired;
    count(ctx_.counters, job.queue->index, &QueueMetrics::expired);
    finish(job, NotificationType::expired, "expired");
}

void OutcomeWriter::returned(const Job& job) {
    ++ctx_.counters.returned;
    std::vector<std::string_view> fields;
    for (const auto& [f, v] : job.raw) {
        fields.push_back(f);
        fields.push_back(v);
    }
    move(job, job.queue->keys.stream(), calls::Move::To::stream, fields, "return " + job.entry_id,
         StateChange{&job.msg, "ready", job.msg.error, job.msg.retries});
}

// The retry is made durable in the same script that acks the original: there is no instant at
// which the task exists nowhere.
void OutcomeWriter::retry(const Job& job, const std::string& error) {
    ++ctx_.counters.retried;
    count(ctx_.counters, job.queue->index, &QueueMetrics::retried);
    auto& q = *job.queue;
    auto now = ctx_.clock.now_ms();
    TaskMessage next = job.msg;
    next.retries += 1;
    next.error = error;
    next.history = history_add(job.msg.history, now, error);
    auto delay = retry_delay_ms(job.msg.backoff, job.msg.retry_delay_ms, job.msg.backoff_max_ms,
                                job.msg.retries, ctx_.random.next());
    auto due = now + delay;
    next.run_at_ms = delay > 0 ? due : 0;
    auto f = encode(next);
    if (delay <= 0) {
        move(job, q.keys.stream(), calls::Move::To::stream, f.views(), "retry " + next.id,
             StateChange{&next, "ready", error, next.retries});
        return;
    }
    std::vector<std::string> parts(f.views().begin(), f.views().end());
    std::string member = encode_msgpack(parts);
    auto due_s = std::to_string(due);
    std::string_view zadd[] = {due_s, member};
    move(job, q.keys.delayed(), calls::Move::To::delayed, zadd, "delayed retry " + next.id,
         StateChange{&next, "failed", error, next.retries});
    if (hooks_.delayed) hooks_.delayed(q, due);
}

void OutcomeWriter::dead(const Job& job, const std::string& error) {
    ++ctx_.counters.dead;
    count(ctx_.counters, job.queue->index, &QueueMetrics::dead);
    const auto& m = job.msg;
    TaskMessage d = m;
    d.error = error;
    d.history = history_add(m.history, ctx_.clock.now_ms(), error);
    auto f = encode(d);
    move(job, job.queue->keys.dead(), calls::Move::To::stream, f.views(), "dead-letter " + m.id,
         StateChange{&d, "dead", error, m.retries},
         notification(m, NotificationType::error, error));
}

// Dead-letters an entry as it was read (raw fields, whatever they hold) with `why` as its x_error.
void OutcomeWriter::dead_letter_raw(const Job& job, const std::string& why, std::string what,
                                    const TaskMessage* msg, std::optional<redis::Block> note) {
    log().warn("server {}: entry {} in {} dead-lettered: {}", ctx_.consumer, job.entry_id,
               job.queue->keys.stream(), why);
    std::vector<std::string_view> fields;
    for (const auto& [f, v] : job.raw) {
        if (f == "x_error") continue;
        fields.push_back(f);
        fields.push_back(v);
    }
    fields.push_back("x_error");
    fields.push_back(why);
    move(job, job.queue->keys.dead(), calls::Move::To::stream, fields, std::move(what),
         StateChange{msg, "dead", why, msg ? msg->retries : 0}, std::move(note));
}

void OutcomeWriter::malformed(const Job& job, const std::string& reason) {
    ++ctx_.counters.malformed;
    dead_letter_raw(job, "malformed entry: " + reason, "dead-letter malformed " + job.entry_id,
                    nullptr, std::nullopt);
}

void OutcomeWriter::poison(const Job& job, std::uint64_t deliveries) {
    ++ctx_.counters.dead;
    count(ctx_.counters, job.queue->index, &QueueMetrics::dead);
    auto why = "exceeded " + std::to_string(ctx_.opts.max_deliveries) + " deliveries (" +
               std::to_string(deliveries) + ")";
    // A tracked task's client hears of it; the fields may be garbage, so only when they decode.
    auto m = decode_task(job.raw);
    auto note = m.ok() ? notification(*m, NotificationType::error, why) : std::nullopt;
    dead_letter_raw(job, why, "dead-letter poison " + job.entry_id, m.ok() ? &*m : nullptr,
                    std::move(note));
}

}  // namespace streamfleet::detail
