// Dispatcher: delivered entries → handler runs on the pool → outcomes (see dispatcher.hpp).

#include "server/dispatcher.hpp"

#include <algorithm>
#include <iterator>

#include "core/log.hpp"
#include "redis/sync.hpp"

namespace streamfleet {
inline namespace v1 {

const TaskId& TaskContext::id() const noexcept { return d_.msg->id; }
const std::string& TaskContext::queue() const noexcept { return *d_.queue; }
std::string_view TaskContext::data() const noexcept { return d_.msg->data; }
std::uint32_t TaskContext::retries() const noexcept { return d_.msg->retries; }
std::uint64_t TaskContext::deliveries() const noexcept { return d_.deliveries; }
std::stop_token TaskContext::cancel_token() const noexcept { return d_.token; }
std::optional<std::chrono::system_clock::time_point> TaskContext::deadline() const noexcept {
    if (d_.msg->expires_ts == 0) return std::nullopt;
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(d_.msg->expires_ts));
}

}  // namespace v1
}  // namespace streamfleet

namespace streamfleet::detail {

namespace {

// How long a cancel heard is remembered for entries delivered later, and how many at most. A
// redelivery after that is caught by the record check in accept().
constexpr std::int64_t kRememberCancelMs = 10 * 60 * 1000;
constexpr std::size_t kRememberCancels = 100'000;

std::string cancel_key(const QueueContext& q, std::string_view task_id) {
    return std::to_string(q.index) + ":" + std::string(task_id);
}

}  // namespace

Dispatcher::Dispatcher(ServerContext& ctx, Slots& slots, OutcomeWriter& writer, Hooks hooks)
    : ctx_(ctx), slots_(slots), writer_(writer), hooks_(std::move(hooks)) {}

void Dispatcher::start(unsigned threads) {
    pool_.start(threads, [this](JobPtr& job) { run(job); });
}

void Dispatcher::stop() {
    stopped_ = true;
    for (auto& job : pool_.take_unstarted()) {
        running_.erase(job.get());
        slots_.give(1);
        writer_.returned(*job);
    }
    if (hooks_.changed) hooks_.changed();
}

void Dispatcher::interrupt() {
    for (auto& [_, job] : running_) {
        job->interrupted = true;
        job->stop.request_stop();
    }
}

void Dispatcher::close() {
    stopped_ = true;
    for (auto& [_, job] : running_) job->run_timer.reset();
}

bool Dispatcher::accept(QueueContext& q, const std::shared_ptr<const redis::Reply>& source,
                        const redis::StreamEntry& entry, std::uint64_t deliveries) {
    auto job = std::make_shared<Job>();
    job->queue = &q;
    job->entry_id = std::string(entry.id);
    job->source = source;
    job->raw = entry.fields;

    if (deliveries > ctx_.opts.max_deliveries) {
        // A task that keeps killing (or hanging) its servers: stop the cycle.
        writer_.poison(*job, deliveries);
        return false;
    }
    auto decoded = decode_task(job->raw);
    if (!decoded.ok()) {
        writer_.malformed(*job, decoded.error().message());
        return false;
    }
    job->msg = std::move(*decoded);
    if (stopped_) {
        writer_.returned(*job);
        return false;
    }
    if (job->msg.state && remembered_cancel(q, job->msg.id)) {
        // Its cancel came before its entry (the read's reply and the cancel race on two links).
        writer_.canceled(*job);
        return false;
    }
    if (job->msg.expires_ts != 0 && ctx_.clock.now_ms() > job->msg.expires_ts) {
        writer_.expired(*job);
        return false;
    }
    job->ctx.msg = &job->msg;
    job->ctx.queue = &q.keys.queue();
    job->ctx.deliveries = deliveries;
    job->ctx.token = job->stop.get_token();
    if (job->msg.timeout_ms > 0 && !q.pulled) {
        job->run_timer = std::make_unique<Timer>(ctx_.rt.loop());
        job->run_timer->start(delay_ms(job->msg.timeout_ms), [j = job.get()] {
            // Still running (finish() closes this timer): cancel the run, which then counts as a
            // failure whatever the handler returns.
            j->timed_out = true;
            j->stop.request_stop();
        });
    }
    running_.emplace(job.get(), job);
    to_run_.push_back(std::move(job));  // pushed by dispatch(), with its batch
    return true;
}

bool Dispatcher::remembered_cancel(const QueueContext& q, const std::string& task_id) {
    return !canceled_.empty() && canceled_.count(cancel_key(q, task_id)) != 0;
}

// Handler thread. A cancel that reached the task since this entry was written is in its record
// (cancel.lua); the cancel request itself may not have reached this server yet, and may even
// predate this server. Asked right before the run starts, so a cancel acknowledged earlier is
// always seen. First runs skip it (nothing can have been canceled before the entry was read and
// the request not be remembered yet); a failed check runs the task: at-least-once comes first.
bool Dispatcher::canceled_in_record(const Job& job) {
    auto key = job.queue->keys.task(job.msg.id);
    auto res = redis::call(ctx_.rt, ctx_.topo, key, {"HEXISTS", key, "cancel"});
    return res.ok() && res->as_integer().value_or(0) == 1;
}

void Dispatcher::dispatch() {
    auto pulled = std::partition(to_run_.begin(), to_run_.end(),
                                 [](const JobPtr& j) { return !j->queue->pulled; });
    std::vector<JobPtr> handed(std::make_move_iterator(pulled),
                               std::make_move_iterator(to_run_.end()));
    to_run_.erase(pulled, to_run_.end());
    pool_.push(to_run_);
    for (auto& job : handed) hooks_.pulled(std::move(job));
}

void Dispatcher::settle(const JobPtr& job, Outcome outcome) {
    job->outcome = std::move(outcome);
    finish(job);
    if (hooks_.slots_freed) hooks_.slots_freed();
}

std::vector<std::string> Dispatcher::running_entries(const QueueContext& q) const {
    std::vector<std::string> ids;
    for (const auto& [_, job] : running_) {
        if (job->queue == &q) ids.push_back(job->entry_id);
    }
    return ids;
}

bool Dispatcher::is_running(const QueueContext& q, std::string_view entry_id) const {
    for (const auto& [_, job] : running_) {
        if (job->queue == &q && job->entry_id == entry_id) return true;
    }
    return false;
}

void Dispatcher::cancel(const QueueContext& q, std::string_view task_id) {
    auto now = ctx_.clock.now_ms();
    while (!canceled_order_.empty() && (canceled_order_.front().first < now - kRememberCancelMs ||
                                        canceled_order_.size() >= kRememberCancels)) {
        canceled_.erase(canceled_order_.front().second);
        canceled_order_.pop_front();
    }
    if (auto key = cancel_key(q, task_id); canceled_.insert(key).second) {
        canceled_order_.emplace_back(now, std::move(key));
    }
    for (auto& [_, job] : running_) {
        if (job->queue == &q && job->msg.id == task_id && !job->canceled) {
            log().info("server {}: canceling running task {}", ctx_.consumer, task_id);
            job->canceled = true;
            job->stop.request_stop();
            if (job->queue->pulled) {
                auto keep = job;  // settling erases it from running_
                hooks_.pulled_canceled(keep);
                break;
            }
        }
    }
}

void Dispatcher::run(JobPtr& job) {
    TaskContext tc(job->ctx);
    try {
        // Canceled, timed out or interrupted while it waited for a thread: finish() decides the
        // outcome from those flags; the handler never starts.
        if (job->stop.stop_requested()) {
            job->outcome = Outcome::failure("stopped before it started");
        } else if (job->msg.state && (job->msg.retries > 0 || job->ctx.deliveries > 1) &&
                   canceled_in_record(*job)) {
            // A retry, return or redelivery of a task canceled meanwhile: it never runs again.
            job->canceled_in_record = true;
            job->outcome = Outcome::failure("canceled");
        } else if (job->stop.stop_requested()) {
            // The cancel request arrived while the record was read.
            job->outcome = Outcome::failure("stopped before it started");
        } else {
            auto* m = ctx_.counters.of(job->queue->index);
            if (m) m->start_latency_seconds.record(start_latency(ctx_.clock, job->msg));
            auto t0 = std::chrono::steady_clock::now();
            job->outcome = job->queue->handler(tc);
            if (m) {
                m->handler_seconds.record(
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
        }
    } catch (const std::exception& e) {
        job->outcome = Outcome::failure(e.what());
    } catch (...) {
        job->outcome = Outcome::failure("handler threw a non-standard exception");
    }
    bool first;
    {
        std::lock_guard lock(done_mutex_);
        first = done_.empty();
        done_.push_back(std::move(job));
    }
    // Only the first finisher of a batch wakes the loop; the drain takes every job that finished
    // until it runs.
    if (first && !ctx_.rt.post([this] { tick(); })) {
        log().error("server {}: a task finished after the loop stopped; it stays pending",
                    ctx_.consumer);
    }
}

void Dispatcher::tick() {
    {
        std::lock_guard lock(done_mutex_);
        done_batch_.swap(done_);
    }
    for (auto& job : done_batch_) finish(job);
    done_batch_.clear();
    if (hooks_.slots_freed) hooks_.slots_freed();
}

void Dispatcher::finish(const JobPtr& job) {
    running_.erase(job.get());
    slots_.give(1);
    job->run_timer.reset();
    if ((job->canceled || job->canceled_in_record) && !job->interrupted) {
        // Canceled while it ran: whatever the handler returned, the caller of cancel() was told
        // the run would stop.
        writer_.canceled(*job);
    } else {
        if (job->timed_out && !job->interrupted) {
            job->outcome = Outcome::failure("run timed out after " +
                                            std::to_string(job->msg.timeout_ms) + " ms");
        }
        const Outcome& out = *job->outcome;
        const auto& m = job->msg;
        if (out.kind() == Outcome::Kind::success) {
            writer_.completed(*job);
        } else if (job->interrupted) {
            // Shutdown cut the run short: not the task's fault, so it goes back as it was,
            // without spending a retry.
            writer_.returned(*job);
        } else {
            ++ctx_.counters.failed;
            count(ctx_.counters, job->queue->index, &QueueMetrics::failed);
            bool retries_left = m.max_retries == 0 || m.retries < m.max_retries;
            if (out.kind() == Outcome::Kind::failure && retries_left) {
                writer_.retry(*job, out.error());
            } else {
                writer_.dead(*job, out.error());
            }
        }
    }
    if (hooks_.changed) hooks_.changed();
}

}  // namespace streamfleet::detail
