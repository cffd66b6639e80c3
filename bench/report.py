#!/usr/bin/env python3
"""Turns bench/run's results (one JSON object per line, with "label" and
"contender") into docs/benchmarks.md on stdout, and a gnuplot script + data
for docs/benchmarks.png in --plot-dir. Medians per (label, contender)."""
import argparse
import collections
import datetime
import json
import os
import platform
import statistics

ap = argparse.ArgumentParser()
ap.add_argument("results")
ap.add_argument("--count", type=int, required=True)
ap.add_argument("--tasks", type=int, required=True)
ap.add_argument("--rq-tasks", type=int, required=True)
ap.add_argument("--repeats", type=int, required=True)
ap.add_argument("--redis", required=True)
ap.add_argument("--cores", required=True)
ap.add_argument("--plot-dir", required=True)
a = ap.parse_args()

runs = collections.defaultdict(list)
for line in open(a.results):
    d = json.loads(line)
    runs[(d["label"], d["contender"])].append(d)

NAMES = {"streamfleet": "streamfleet", "bare": "bare hiredis loop", "bullmq": "BullMQ",
         "bee-queue": "bee-queue", "rq": "rq", "redis-benchmark": "redis-benchmark"}
PEERS = ["bullmq", "bee-queue", "rq"]


def have(label, who="streamfleet"):
    return (label, who) in runs


def med(label, who, key):
    vals = [r[key] for r in runs.get((label, who), []) if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def ratio(x, y):
    return None if x is None or y in (None, 0) else x / y


def rfmt(r):
    return "—" if r is None else f"{r:.2f}×"


def verdict(value, goal, higher_is_better=True):
    if value is None:
        return "not measured"
    ok = value >= goal if higher_is_better else value <= goal
    if ok:
        return "**met**"
    miss = (goal - value) / goal if higher_is_better else (value - goal) / goal
    return f"**missed by {miss:.0%}**"


out = []
w = out.append
w("# Benchmarks")
w("")
w("Written by `bench/run` (one command; see the README); do not edit by hand.")
w("Every contender runs against the same throwaway redis-server (no persistence),")
w("with the same number of tasks, 16-byte payloads and the same concurrency; each")
w(f"round alternates the contenders and Redis is flushed before every run. Medians of")
w(f"{a.repeats} rounds. Absolute numbers drift with the machine's load; the ratios")
w("within one run are what to read. Raw results: `docs/benchmarks.jsonl`.")
w("")
w(f"Run: {datetime.date.today()} · {platform.machine()} · {a.cores} cores · "
  f"redis {a.redis.split(' ')[2].removeprefix('v=')} · {a.tasks:,} tasks per run "
  f"(rq: {a.rq_tasks:,}, it is ~100× slower)")
w("")
w("![throughput and latency](benchmarks.png)")
w("")

# ---- goals ----
rb_tiny = med("rb-tiny", "redis-benchmark", "tasks_per_s")
rb_entry = med("rb-entry", "redis-benchmark", "tasks_per_s")
sf = lambda label, key="tasks_per_s": med(label, "streamfleet", key)
bare = lambda label, key="tasks_per_s": med(label, "bare", key)
e2e64, e2e_bull = sf("e2e-c64"), med("e2e-c64", "bullmq", "tasks_per_s")
w("## Goals")
w("")
w("| goal | measured | verdict |")
w("|---|---|---|")
r = ratio(e2e64, e2e_bull)
w(f"| fire-and-forget e2e ≥ 10× BullMQ (c=64) | {fmt(e2e64)} vs {fmt(e2e_bull)}/s = {rfmt(r)} | {verdict(r, 10)} |")
for c in (16, 64):
    r = ratio(sf(f"e2e-c{c}"), bare(f"e2e-c{c}"))
    w(f"| fire-and-forget e2e ≥ 0.8× bare loop (c={c}) | {fmt(sf(f'e2e-c{c}'))} vs {fmt(bare(f'e2e-c{c}'))}/s = {rfmt(r)} | {verdict(r, 0.8)} |")
    r = ratio(sf(f"e2e-c{c}-nostate"), bare(f"e2e-c{c}"))
    w(f"| the same without state tracking (c={c}) | {fmt(sf(f'e2e-c{c}-nostate'))}/s = {rfmt(r)} | {verdict(r, 0.8)} |")
for c in (16, 64):
    r = ratio(sf(f"tracked-c{c}"), bare(f"tracked-c{c}"))
    w(f"| tracked ≥ 0.8× bare loop with notifications (c={c}) | {fmt(sf(f'tracked-c{c}'))} vs {fmt(bare(f'tracked-c{c}'))}/s = {rfmt(r)} | {verdict(r, 0.8)} |")
cpu = sf("e2e-c64", "redis_cpu_us_per_task")
w(f"| Redis CPU per task ≤ 7 µs (e2e c=64) | {fmt(cpu, 1)} µs (bare loop {fmt(bare('e2e-c64', 'redis_cpu_us_per_task'), 1)}) | {verdict(cpu, 7, False)} |")
cpu_ns = sf("e2e-c64-nostate", "redis_cpu_us_per_task")
w(f"| the same without state tracking | {fmt(cpu_ns, 1)} µs | {verdict(cpu_ns, 7, False)} |")
enq = sf("enqueue")
r = ratio(enq, rb_entry)
w(f"| enqueue from one client ≥ 0.8× redis-benchmark -P 16 XADD of the same entry | {fmt(enq)} vs {fmt(rb_entry)}/s = {rfmt(r)} | {verdict(r, 0.8)} |")
r = ratio(sf("enqueue-nostate"), rb_entry)
w(f"| the same without state tracking | {fmt(sf('enqueue-nostate'))}/s = {rfmt(r)} | {verdict(r, 0.8)} |")
mem_entry = med("rb-entry", "redis-benchmark", "redis_mem_bytes_per_task")
mem_q = sf("enqueue", "redis_mem_bytes_per_task")
r = ratio(mem_q, mem_entry)
w(f"| Redis memory per queued task ≤ 1.3× the entry alone | {fmt(mem_q)} vs {fmt(mem_entry)} bytes = {rfmt(r)} | {verdict(r, 1.3, False)} |")
mem_fin = sf("e2e-c64", "redis_mem_bytes_per_task")
w(f"| Redis memory per finished task kept for its retention ≤ 64 bytes | {fmt(mem_fin)} bytes | {verdict(mem_fin, 64, False)} |")
p99 = sf("latency-1000", "lat_p99_ms")
w(f"| p99 enqueue → start at 1,000/s ≤ 0.5 ms | {fmt(p99, 2)} ms | {verdict(p99, 0.5, False)} |")
lat100k = sf("delayed-100000", "lat_p99_ms")
early_all = sum(r.get("early", 0) for k, v in runs.items() if k[0].startswith("delayed-") for r in v)
w(f"| delayed: p99 lateness ≤ 5 ms with 100,000 scheduled, never early | {fmt(lat100k, 2)} ms, {early_all} early | "
  f"{verdict(lat100k, 5, False) if early_all == 0 else '**missed: early runs**'} |")
rss = sf("worker-c16", "max_rss_kb")
w(f"| worker RSS at concurrency 16 ≤ 16 MB | {fmt(rss and rss / 1024, 1)} MB | {verdict(rss and rss / 1024, 16, False)} |")
if have("gateway"):
    ga, gp = sf("gateway", "add_per_s"), sf("gateway", "pop_finish_per_s")
    w(f"| HTTP gateway: add ≥ 20,000/s (16 keep-alive clients) | {fmt(ga)}/s | {verdict(ga, 20000)} |")
    w(f"| HTTP gateway: pop + finish ≥ 10,000/s (16 keep-alive clients) | {fmt(gp)}/s | {verdict(gp, 10000)} |")
w("")

# ---- throughput ----
w("## Throughput (tasks/s, median)")
w("")
contenders = ["streamfleet", "bare"] + [p for p in PEERS if any(k[1] == p for k in runs)]
w("| scenario | " + " | ".join(NAMES[c] for c in contenders) + " | streamfleet ÷ best peer |")
w("|---|" + "---|" * (len(contenders) + 1))
rows = [("enqueue", "enqueue only (2× tasks)"), ("e2e-c1", "end to end, concurrency 1"),
        ("e2e-c16", "end to end, concurrency 16"), ("e2e-c64", "end to end, concurrency 64"),
        ("tracked-c1", "tracked (bare: + notification), c=1"),
        ("tracked-c16", "tracked (bare: + notification), c=16"),
        ("tracked-c64", "tracked (bare: + notification), c=64")]
for label, title in rows:
    vals = {c: med(label, c, "tasks_per_s") for c in contenders}
    best_peer = max((vals[p] for p in PEERS if vals.get(p)), default=None)
    w(f"| {title} | " + " | ".join(fmt(vals[c]) for c in contenders) +
      f" | {rfmt(ratio(vals['streamfleet'], best_peer))} |")
w("")
w("bare = `bench/bare_loop`: plain hiredis, no features: XADD in windows of 100,")
w("XREADGROUP COUNT min(100, C), one pipelined XACK + XDEL per batch, a no-op handled")
w("inline (so its \"concurrency\" is only the read size). rq has no 64-process run:")
w("64 Python workers on this machine measure the scheduler. The enqueue runs of")
w("the bare loop are not separate: its producer is part of its e2e run.")
w("")

# ---- limits ----
w("## The limits of the design (same run)")
w("")
w("| what | tasks/s | Redis CPU µs/task |")
w("|---|---|---|")
w(f"| `redis-benchmark -c 50 -P 16 XADD s * f vvv` | {fmt(rb_tiny)} | — |")
w(f"| the same with our 10-field task entry | {fmt(rb_entry)} | — |")
w(f"| lib/redis alone: one connection, 800 in flight (`bench/redis_pipeline`) | {fmt(med('pipeline', 'streamfleet', 'ops_per_s'))} | — |")
w(f"| Lua: one task's whole life per EVALSHA (XADD, XREADGROUP, XACK, XDEL) | {fmt(med('lua', 'bare', 'tasks_per_s'))} | {fmt(med('lua', 'bare', 'redis_cpu_us_per_task'), 1)} |")
w(f"| Lua, with a notification XADD | {fmt(med('lua-notify', 'bare', 'tasks_per_s'))} | {fmt(med('lua-notify', 'bare', 'redis_cpu_us_per_task'), 1)} |")
for c in (1, 16, 64):
    w(f"| bare hiredis loop, c={c} | {fmt(bare(f'e2e-c{c}'))} | {fmt(bare(f'e2e-c{c}', 'redis_cpu_us_per_task'), 1)} |")
for c in (16, 64):
    w(f"| bare hiredis loop + notification, c={c} | {fmt(bare(f'tracked-c{c}'))} | {fmt(bare(f'tracked-c{c}', 'redis_cpu_us_per_task'), 1)} |")
w("")

# ---- cost ----
w("## What each task costs")
w("")
w("| contender | Redis CPU µs/task (e2e c=16) | (e2e c=64) | Redis bytes per queued task | worker RSS MB (e2e c=16) |")
w("|---|---|---|---|---|")
for c in contenders:
    rss_c = med("worker-c16", c, "max_rss_kb") if c == "streamfleet" else med("e2e-c16", c, "max_rss_kb")
    w(f"| {NAMES[c]} | {fmt(med('e2e-c16', c, 'redis_cpu_us_per_task'), 1)} | "
      f"{fmt(med('e2e-c64', c, 'redis_cpu_us_per_task'), 1)} | {fmt(med('enqueue', c, 'redis_bytes_per_task'))} | "
      f"{fmt(rss_c and rss_c / 1024, 1)} |")
w("")
w("streamfleet's RSS is a worker process on its own (`--scenario worker`, a Server")
w("with 16 handler threads draining a queue filled beforehand); the peers' is their")
w("worker side in the e2e run (Node: one process; rq: the largest worker process).")
w("Redis bytes per queued task: `used_memory` growth over an enqueue-only run of")
w("2× tasks, divided by the tasks (the tasks are still queued).")
w("")

# ---- latency ----
w("## Latency, enqueue → handler start (ms)")
w("")
w("| contender | p50 @ 1,000/s | p99 @ 1,000/s | rate = half its peak | p50 there | p99 there |")
w("|---|---|---|---|---|---|")
for c in contenders:
    w(f"| {NAMES[c]} | {fmt(med('latency-1000', c, 'lat_p50_ms'), 2)} | {fmt(med('latency-1000', c, 'lat_p99_ms'), 2)} | "
      f"{fmt(med('latency-half', c, 'rate'))}/s | {fmt(med('latency-half', c, 'lat_p50_ms'), 2)} | "
      f"{fmt(med('latency-half', c, 'lat_p99_ms'), 2)} |")
w("")
w("Half of peak is half of each contender's own median e2e rate at c=16, for")
w("3 s. Where a contender cannot sustain 1,000/s (rq), its latency is queueing delay.")
w("")

# ---- state cost ----
if have("e2e-c64-nostate"):
    w("## What state tracking costs the fast path")
    w("")
    w("Every task's state is kept by default (`ClientOptions::track_state`), so")
    w("`Client::get()` and `Client::cancel()` can find it: enqueues go as one script")
    w("call per loop turn (an XADD per task, and one HSET of the turn's task ids ->")
    w("entry ids into `P{Q}:index`), and finished states as one MULTI block per loop")
    w("turn (one HDEL from the index, one DEL of any records, an HSET per task into a")
    w("small shared bucket kept 24 h). Without state, enqueues are one MULTI block per")
    w("loop turn (the XADDs and one ZADD into the client's ledger). The same runs")
    w("without state:")
    w("")
    w("| scenario | tasks/s with | without | ratio | Redis CPU µs/task with | without | Redis bytes/queued task with | without |")
    w("|---|---|---|---|---|---|---|---|")
    for lbl, title in (("e2e-c16", "e2e c=16"), ("e2e-c64", "e2e c=64"), ("enqueue", "enqueue only")):
        no = lbl + "-nostate"
        w(f"| {title} | {fmt(sf(lbl))} | {fmt(sf(no))} | {rfmt(ratio(sf(lbl), sf(no)))} | "
          f"{fmt(sf(lbl, 'redis_cpu_us_per_task'), 1)} | {fmt(sf(no, 'redis_cpu_us_per_task'), 1)} | "
          f"{fmt(sf(lbl, 'redis_bytes_per_task'))} | {fmt(sf(no, 'redis_bytes_per_task'))} |")
    w("")
    w("Finished states kept for 24 h also hold memory: a field of a small bucket per task")
    w("(the task id and ~15 bytes) finished in the window; set `retention = 0` (per task)")
    w("to keep none.")
    w("")

# ---- delayed ----
w("## Delayed tasks")
w("")
w("`streamfleet_bench --scenario delayed`: N tasks scheduled with `run_at`, due evenly")
w("over max(2 s, N/10 ms) starting once all are in `P{Q}:delayed`; lateness is")
w("handler start minus due time. The promoter sleeps until the earliest due time")
w("(a uv timer), is woken through `P{Q}:nudge` when a client schedules something")
w("earlier, and re-checks once a second; it never polls.")
w("")
w("| scheduled | scheduling tasks/s | lateness p50 ms | p99 ms | max ms | early runs | Redis CPU µs/task |")
w("|---|---|---|---|---|---|---|")
for n in (10000, 100000):
    lbl = f"delayed-{n}"
    if not have(lbl):
        continue
    early = sum(r.get("early", 0) for r in runs[(lbl, "streamfleet")])
    w(f"| {n:,} | {fmt(sf(lbl))} | {fmt(sf(lbl, 'lat_p50_ms'), 2)} | {fmt(sf(lbl, 'lat_p99_ms'), 2)} | "
      f"{fmt(sf(lbl, 'lat_max_ms'), 2)} | {early} (all runs) | {fmt(sf(lbl, 'redis_cpu_us_per_task'), 1)} |")
w("")
w("Goal: p99 lateness ≤ 5 ms with 100,000 scheduled and no early run (seqdelay's time")
w("wheel ticks every 1 ms; asynq and Sidekiq poll every 5 s). Redis CPU per task is")
w("high here because the tasks trickle in at ~10k/s over the window, so each")
w("promotion, read and ack batch is small; the peers are not measured on this")
w("scenario.")
w("")

# ---- gateway ----
if have("gateway"):
    w("## HTTP gateway")
    w("")
    w("`bench/gateway_bench` against `streamfleet serve` (defaults: 4 HTTP threads): 16")
    w("keep-alive HTTP/1.1 connections, driven from one thread with epoll as wrk does,")
    w(f"first add {fmt(sf('gateway', 'tasks'))} tasks (`POST /add`, answered once Redis has the task), then pop")
    w("and finish until all are done (`POST /pop` long poll, then `POST /finish` of what it")
    w("got); the pop phase ends with the last finish. The load generator, the gateway and")
    w("Redis share the 2 cores, so the generator is kept lean: libcurl cost ~50 µs of CPU")
    w("per request here, as much as the gateway itself (the first runs of this table used it,")
    w("and measured 9.5k adds/s and 3.9k pop + finish/s).")
    w("")
    w("| | tasks/s | p50 ms | p99 ms | the C++ API, same machine |")
    w("|---|---|---|---|---|")
    w(f"| add | {fmt(sf('gateway', 'add_per_s'))} | {fmt(sf('gateway', 'add_p50_ms'), 2)} | {fmt(sf('gateway', 'add_p99_ms'), 2)} | "
      f"enqueue {fmt(sf('enqueue'))}/s |")
    w(f"| pop + finish | {fmt(sf('gateway', 'pop_finish_per_s'))} | {fmt(sf('gateway', 'pop_finish_p50_ms'), 2)} | "
      f"{fmt(sf('gateway', 'pop_finish_p99_ms'), 2)} | e2e c=16 {fmt(sf('e2e-c16'))}/s |")
    w("")

# ---- recovery / outage ----
if have("recovery"):
    rec = [r["recovery_ms"] for r in runs[("recovery", "streamfleet")]]
    w("## Failures")
    w("")
    w("- Recovery from a worker SIGKILL to its 4 in-flight tasks restarted on a live peer, default")
    w(f"  heartbeat (1 s) and dead-after (3 s): median {statistics.median(rec) / 1000:.2f} s "
      f"(runs: {', '.join(f'{v / 1000:.2f}' for v in rec)}; asynq, BullMQ and River need 30 s to 1 h).")
if have("outage"):
    w("- Enqueue while Redis is down (`streamfleet enqueue --lines`, 20,000 tasks into the client's")
    w(f"  buffer): {fmt(sf('outage', 'during_per_s'))}/s accepted; once Redis starts, the buffer drains")
    w(f"  at {fmt(sf('outage', 'after_per_s'))}/s (including Redis start-up and the reconnect backoff, ≤ 1 s).")
w("")

# ---- notes on misses ----
w("## Where the gaps are, and why")
w("")
w("Profiled with `perf record --call-graph dwarf` on this machine (2 cores shared by")
w("Redis, the client's loop, the server's loop and the handler threads):")
w("")
w("- **State** is the largest cost with the default options. `INFO commandstats`")
w("  of one e2e c=64 run (50,000 tasks), per task: the enqueue script 5.1 µs (its")
w("  XADD 1.15 µs, its share of the index's HSET ~0.9 µs, the rest Lua: each of")
w("  the ~22 arguments per task is converted into Lua and back); the final-state")
w("  block 2.3 µs (HDEL from the index 0.7, the DEL of records 0.2, the bucket's")
w("  HSET ~0.85); then what the path without state pays too: XREADGROUP 1.9 µs,")
w("  the ack 1.5 µs (`ack.lua`: XACK, XTRIM MINID below the oldest pending entry;")
w("  an XDEL per entry cost 1.6 µs alone), and ~3.5 µs of network I/O and parsing. A per-task")
w("  record (a new key, then a TTL) cost 3 µs more and ~100 more bytes per queued")
w("  task; it is written now only when a task leaves the hot path (delayed,")
w("  retried, dead, canceled or asked to stop). What would close most of the rest:")
w("  an enqueue without Lua (plain XADDs in a MULTI block, the index written from")
w("  their replies in a second step, which leaves a moment in which cancel() cannot")
w("  find the entry it must remove: not done). Memory per finished task is a field")
w("  of a listpack-encoded bucket (≤ 128 fields each): the task id, ~15 bytes of")
w("  state, and the bucket's own overhead shared by ~96 tasks.")
w(f"- **Enqueue** is bounded first by what Redis pays for our entry: it has 10 fields")
w(f"  (the v1 wire format plus `x_enqueued_ts`), and Redis itself manages")
w(f"  {fmt(rb_entry)} XADD/s of that entry from redis-benchmark (50 connections), against")
w(f"  {fmt(rb_tiny)}/s for a 1-field entry. Our client reaches {rfmt(ratio(enq, rb_entry))} of that")
w(f"  same-entry ceiling with state and {rfmt(ratio(sf('enqueue-nostate'), rb_entry))} without, from one thread,")
w("  with the caller, the client's loop and Redis sharing 2 cores.")
w(f"- **Redis CPU per task**: {fmt(cpu, 1)} µs ({fmt(cpu_ns, 1)} µs without state) against the bare loop's"
  f" {fmt(bare('e2e-c64', 'redis_cpu_us_per_task'), 1)} µs. Beyond the state, the")
w("  difference is the entry size (XADD and XREADGROUP move ~10× the bytes of")
w("  the bare loop's 1-field entry); acks and deletes are batched like the bare")
w("  loop's (which XDELs each acked entry; we trim instead).")
w("- **End to end** costs per task on the worker side: a hand-off to a handler")
w("  thread and back (the bare loop handles inline). The handler pool spins before")
w("  parking and keeps one outstanding wake-up, so most hand-offs cost no context")
w("  switch; reads gather up to half the slots (or 1 ms) under a backlog, and the")
w("  hand-offs are batched already: one push per read, one loop wake-up for every")
w("  handler that finished before the loop ran. At c=64 the run is bound by no")
w("  single CPU: over a 50,000-task run Redis was busy 57–72% of the time and the")
w("  worker's loop thread ~30% (`perf record`; the bench process used 0.8 of the")
w("  2 cores). What bounds it is the slots' turnaround: 64 slots at ~45k/s turn")
w("  over every ~1.4 ms (the read's round trip, queued behind the enqueue")
w("  scripts; the hand-off; the handler; the hand-back; the next read). Two")
w("  changes aimed at it measured nothing (A/B, 3 runs each, same redis-server):")
w("  reading at a quarter of the slots free instead of half (39.6–41.4k/s against")
w("  39.7–41.5k/s), and enqueue scripts of 64 tasks instead of 256, so a read")
w("  waits less behind one (38.6–40.4k/s against 38.2–41.6k/s). The bare loop's")
w("  cycle has neither a hand-off nor a script in Redis's queue, and its")
w("  \"concurrency\" is only its read size; ≥ 10× BullMQ and ≥ 0.8× the bare")
w("  loop need that cycle shorter, which these did not find.")
mem_s = med('enqueue', 'streamfleet', 'redis_mem_bytes_per_task')
mem_n = med('enqueue-nostate', 'streamfleet', 'redis_mem_bytes_per_task')
w(f"- **Memory per queued task**: {fmt(mem_s)} bytes with state, {fmt(mem_n)} without, against")
w(f"  {fmt(mem_entry)} for redis-benchmark's entry of the same fields. The state's")
w(f"  {fmt((mem_s or 0) - (mem_n or 0))} bytes are the index's field per task in a large hash (a dict entry,")
w("  the task id and the entry id as separate strings, a table slot, allocator")
w("  rounding). Reaching 1.3× would need the index split into listpack-sized")
w("  shards like the finished-state buckets, their count following the queue's")
w("  depth (a reader finds a task's shard by hash): not built. The gap without")
w("  state was not profiled further; unlike redis-benchmark's repeated entry,")
w("  each of ours carries its own task id and times.")
if p99 is not None and p99 > 0.5:
    w(f"- **p99 enqueue → start at 1,000/s**: {fmt(med('latency-1000', 'streamfleet', 'lat_p99_ms'), 2)} ms against the bare loop's")
    w(f"  {fmt(bare('latency-1000', 'lat_p99_ms'), 2)} ms (p50 {fmt(med('latency-1000', 'streamfleet', 'lat_p50_ms'), 2)} against"
      f" {fmt(bare('latency-1000', 'lat_p50_ms'), 2)}). At 1,000/s each task travels alone: the")
    w("  client's loop turn, the enqueue script, the server's blocked read waking,")
    w("  and a handler thread unparking (at this rate the pool parks between tasks:")
    w("  a futex wake and a context switch, which the bare loop, handling inline,")
    w("  does not pay); the tail is the scheduler of 2 shared cores. This row moved")
    w("  between 0.57 and 0.84 ms over the last runs of bench/run.")
if lat100k is not None and lat100k > 5:
    w(f"- **Delayed lateness**: p99 {fmt(lat100k, 2)} ms with 100,000 scheduled (p50 "
      f"{fmt(sf('delayed-100000', 'lat_p50_ms'), 2)} ms). The promoter's uv timer fires at the earliest due")
    w("  millisecond and one script moves every due member (256 a call); the rest is the")
    w("  server's read, the hand-off and the handler thread's wake-up, as for any task, while")
    w("  the 100,000 arrive at ~10k/s on 2 shared cores. This row has measured 4.8–6.9 ms")
    w("  over the last runs of the same design; never early.")
ga_, gp_ = sf("gateway", "add_per_s"), sf("gateway", "pop_finish_per_s")
if have("gateway") and ((ga_ is not None and ga_ < 20000) or (gp_ is not None and gp_ < 10000)):
    w("- **HTTP gateway**: the machine is the bound. Per request the gateway spends")
    w("  ~20–25 µs in libmicrohttpd and the kernel (an endpoint that answers at once, an")
    w("  unknown topic's 400, serves 56k–62k requests/s with this generator), and an add")
    w("  ~49 µs in all, the rest being its hand-off to the client's loop and back and its")
    w("  share of the enqueue script; Redis spends ~17 µs per add (batches stay small with")
    w("  16 requests in flight). On this virtual machine a wake-up of a sleeping thread is")
    w("  the dearest part: `perf record` put a third of the gateway's samples in the")
    w("  kernel's interrupt-enable path of context switches (`pvm_irq_enable`). The")
    w("  measured runs of the final code: 17k–24k adds/s, 13k–19k pop + finish/s, moving")
    w("  with the VM. Not built: libmicrohttpd on the library's own loop (one thread for")
    w("  HTTP and Redis, no hand-off), which needs the Client and Server to share a loop.")
w("")
print("\n".join(out))

# ---- plot ----
os.makedirs(a.plot_dir, exist_ok=True)
with open(os.path.join(a.plot_dir, "throughput.dat"), "w") as f:
    f.write("scenario " + " ".join(f'"{NAMES[c]}"' for c in contenders) + "\n")
    for label, title in rows:
        vals = [med(label, c, "tasks_per_s") or 0 for c in contenders]
        f.write(f'"{label}" ' + " ".join(f"{max(v, 1):.0f}" for v in vals) + "\n")
with open(os.path.join(a.plot_dir, "latency.dat"), "w") as f:
    f.write("contender p50 p99\n")
    for c in contenders:
        f.write(f'"{NAMES[c]}" {med("latency-1000", c, "lat_p50_ms") or 0:.3f} '
                f'{med("latency-1000", c, "lat_p99_ms") or 0:.3f}\n')
n = len(contenders)
with open(os.path.join(a.plot_dir, "plot.gp"), "w") as f:
    f.write(f"""set terminal pngcairo size 1200,900 font ",10"
set output "{os.path.join(a.plot_dir, 'benchmarks.png')}"
set multiplot layout 2,1
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set grid ytics
set key top right
set ylabel "tasks/s (log scale)"
set title "Throughput, median of {a.repeats} (same redis-server, same run)"
plot for [i=2:{n + 1}] "{os.path.join(a.plot_dir, 'throughput.dat')}" using i:xtic(1) title columnheader(i)
set title "Enqueue -> handler start at 1,000 tasks/s (ms, log scale)"
set ylabel "ms"
plot "{os.path.join(a.plot_dir, 'latency.dat')}" using 2:xtic(1) title "p50", "" using 3 title "p99"
unset multiplot
""")
