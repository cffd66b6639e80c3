// Outcome writer: outcomes made durable, then acked in batches (see outcome_writer.hpp).

#include "server/outcome_writer.hpp"

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

OutcomeWriter::OutcomeWriter(ServerContext& ctx, Queues queues, Hooks hooks)
    : ctx_(ctx),
      queues_(queues),
      hooks_(std::move(hooks)),
      batches_(queues.size()),
      writes_(ctx, hooks_.changed),
      flusher_(ctx.rt.loop(), [this] { flush_acks(); }) {}

void OutcomeWriter::stop() {
    writes_.stop();
    flusher_.close();
}

void OutcomeWriter::tick() {
    flush_acks();
    writes_.resend();
}

// Writes the task to `dest` (XADD fields, or ZADD score member), then acks and deletes the entry,
// atomically and in that order (lib/scripts/move.lua); `note` goes out once that is done.
void OutcomeWriter::move(const Job& job, const std::string& dest, calls::Move::To to,
                         std::span<const std::string_view> payload, std::string what,
                         StateChange sc, Argv note) {
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
                  .retention_ms = tracked ? retention_of(*sc.msg) : 0};
    if (tracked && (sc.state == "ready" || sc.state == "failed")) {
        // The task would run again: move.lua ends it canceled instead (reply 2) when a cancel
        // reached it while it ran, and then its client hears that rather than `note`.
        writes_.write(calls::move(job.queue->keys, m), std::move(what),
                      [this, note = std::move(note), canceled = notification(
                                                         *sc.msg, NotificationType::canceled, {})](
                          const redis::Reply& reply) {
                          bool was_canceled = reply.as_integer().value_or(0) == 2;
                          if (was_canceled) ++ctx_.counters.canceled;
                          const Argv& n = was_canceled ? canceled : note;
                          if (!n.empty()) writes_.write(n, "notification");
                      });
        return;
    }
    Done then;
    if (!note.empty())
        then = [this, note = std::move(note)] { writes_.write(note, "notification"); };
    writes_.write(calls::move(job.queue->keys, m), std::move(what), std::move(then));
}

OutcomeWriter::Argv OutcomeWriter::notification(const TaskMessage& msg, NotificationType type,
                                                std::string_view err) const {
    if (!msg.send_notif) return {};
    Notification n{msg.id, type, std::string(err), {}, ctx_.consumer};
    auto f = encode(n);
    // In Go-compatible mode this write must create the stream when it is missing: a Go client
    // may not have made it yet. (A notify-only-if-it-exists script must be told:
    // opts.go_compatible.)
    Argv argv{"XADD",
              receiver_key(ctx_.opts.prefix, msg.client_id, key_style(ctx_.opts.go_compatible)),
              "*"};
    argv.insert(argv.end(), f.views().begin(), f.views().end());
    return argv;
}

// Finished tasks are acked in batches per queue and loop turn: one XACK and one XDEL with all
// their ids. A task with a state record has its final state (`state`) written by one
// lib/scripts/finish.lua call for the batch first, and its notification waits for that too, so a
// client that hears of the outcome finds the record final.
void OutcomeWriter::finish(const Job& job, NotificationType type, std::string_view state) {
    auto& b = batches_[job.queue->index];
    if (b.acks.empty()) to_flush_.push_back(job.queue->index);
    b.acks.push_back(job.entry_id);
    auto note = notification(job.msg, type, {});
    if (job.msg.state) {
        if (!b.states) b.states.emplace(job.queue->keys);
        b.states->add(job.msg.id, state, {}, job.msg.retries, retention_of(job.msg));
        if (!note.empty()) b.notes.push_back(std::move(note));
    } else if (!note.empty()) {
        writes_.write(std::move(note), "notification");
    }
    ++unflushed_;  // a pending write until flushed: shutdown waits for it
    flusher_.arm();
}

void OutcomeWriter::flush_acks() {
    auto list = std::move(to_flush_);
    to_flush_.clear();
    for (auto i : list) {
        auto& b = batches_[i];
        auto ids = std::exchange(b.acks, {});
        auto notes = std::exchange(b.notes, {});
        if (b.states && !b.states->empty()) {
            // The acks wait for the states: a resent call (NOSCRIPT, a lost link) would otherwise
            // land after them, and a refused one would leave acked tasks with no final state.
            writes_.write(b.states->take(ctx_.clock.now_ms()), "task states",
                          [this, i, ids, notes] {
                              for (const auto& n : notes) writes_.write(n, "notification");
                              write_acks(queues_[i], ids);
                          });
        } else {
            write_acks(queues_[i], ids);
        }
    }
    unflushed_ = 0;
    if (hooks_.changed) hooks_.changed();
}

void OutcomeWriter::write_acks(const QueueContext& q, const std::vector<std::string>& ids) {
    const auto& s = q.keys.stream();
    Argv ack{"XACK", s, std::string(kServerGroup)};
    Argv del{"XDEL", s};
    ack.insert(ack.end(), ids.begin(), ids.end());
    del.insert(del.end(), ids.begin(), ids.end());
    writes_.write(std::move(ack), "XACK");
    writes_.write(std::move(del), "XDEL");
}

void OutcomeWriter::completed(const Job& job) {
    ++ctx_.counters.succeeded;
    finish(job, NotificationType::completed, "completed");
}

void OutcomeWriter::canceled(const Job& job) {
    ++ctx_.counters.canceled;
    finish(job, NotificationType::canceled, "canceled");
}

void OutcomeWriter::expired(const Job& job) {
    ++ctx_.counters.expired;
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
    const auto& m = job.msg;
    TaskMessage d = m;
    d.error = error;
    d.history = history_add(m.history, ctx_.clock.now_ms(), error);
    auto f = encode(d);
    move(job, job.queue->keys.dead(), calls::Move::To::stream, f.views(), "dead-letter " + m.id,
         StateChange{&m, "dead", error, m.retries},
         notification(m, NotificationType::error, error));
}

// Dead-letters an entry as it was read (raw fields, whatever they hold) with `why` as its x_error.
void OutcomeWriter::dead_letter_raw(const Job& job, const std::string& why, std::string what,
                                    const TaskMessage* msg, Argv note) {
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
                    nullptr, {});
}

void OutcomeWriter::poison(const Job& job, std::uint64_t deliveries) {
    ++ctx_.counters.dead;
    auto why = "exceeded " + std::to_string(ctx_.opts.max_deliveries) + " deliveries (" +
               std::to_string(deliveries) + ")";
    // A tracked task's client hears of it; the fields may be garbage, so only when they decode.
    auto m = decode_task(job.raw);
    Argv note = m.ok() ? notification(*m, NotificationType::error, why) : Argv{};
    dead_letter_raw(job, why, "dead-letter poison " + job.entry_id, m.ok() ? &*m : nullptr,
                    std::move(note));
}

}  // namespace streamfleet::detail
