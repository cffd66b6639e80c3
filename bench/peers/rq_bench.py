#!/usr/bin/python3
"""rq peer driver: the same scenarios and JSON line as streamfleet_bench.

    /usr/bin/python3 bench/peers/rq_bench.py --redis URL --scenario e2e|enqueue|latency
        --tasks N --concurrency C [--rate R] [--payload-bytes B] [--timeout S]
        [--rq-worker simple|fork]

rq runs one job at a time per worker process, so concurrency C means C worker
processes, each this file started again in worker mode and running rq's own
work loop (Worker.work) on the queue "benchpeer":
  simple  rq.SimpleWorker (default): runs each job in the worker process itself,
          as `rq worker --worker-class rq.SimpleWorker` does;
  fork    rq.Worker, what plain `rq worker` runs: forks a work horse per job,
          which also opens fresh Redis connections per job (about 3x slower).
The driver process is the producer:
  e2e      Queue.prepare_data × 1000 then Queue.enqueue_many (one pipeline per
           chunk); time until the handler has run for all N jobs.
  enqueue  enqueue_many only, no workers; time until every pipeline has returned.
  latency  Queue.enqueue one job at a time, paced at R/s; then as e2e.
Jobs have result_ttl=0 (deleted on success, like removeOnComplete). The handler
writes "job_id latency_ns" to a file of its worker (inherited descriptor,
O_APPEND); the driver reads those files to count distinct handled jobs.

rq is Debian's python3-rq, seen by /usr/bin/python3 only: started by another
python3 that cannot import rq, this script runs itself again under /usr/bin/python3.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

QUEUE = "benchpeer"
FUNC = "rq_bench.handle"  # this file, imported by name in the workers
STAMP_HEX = 16  # time.monotonic_ns() (CLOCK_MONOTONIC) as 16 hex digits
CHUNK = 1000
LAT_FD_ENV = "BENCHPEER_LAT_FD"
SYSTEM_PYTHON = "/usr/bin/python3"
PROG = "rq_bench.py"


# ---------------------------------------------------------------- the job

def handle(payload):
    """The no-op task: records enqueue → start latency for the driver."""
    now = time.monotonic_ns()
    from rq import get_current_job

    latency = now - int(payload[:STAMP_HEX], 16)
    os.write(int(os.environ[LAT_FD_ENV]), b"%s %d\n" % (get_current_job().id.encode(), latency))


# ---------------------------------------------------------------- helpers

def die(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def ensure_rq():
    """Imports rq, or re-runs this script under the system python that has it."""
    try:
        import rq  # noqa: F401
        import redis  # noqa: F401
    except ImportError as e:
        here = os.path.realpath(sys.executable)
        if (os.path.exists(SYSTEM_PYTHON) and here != os.path.realpath(SYSTEM_PYTHON)
                and not os.environ.get("BENCHPEER_REEXEC")):
            os.environ["BENCHPEER_REEXEC"] = "1"
            os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, os.path.abspath(__file__)] + sys.argv[1:])
        die(f"cannot import rq with {sys.executable} ({e}); run bench/peers/install.sh "
            f"(Debian's python3-rq) and use {SYSTEM_PYTHON}")


def parse_args(argv):
    class Parser(argparse.ArgumentParser):
        def error(self, message):
            self.print_usage(sys.stderr)
            print(f"{PROG}: {message}", file=sys.stderr)
            sys.exit(2)

    def nonneg(v):
        if not v.isdigit():
            raise argparse.ArgumentTypeError("needs a non-negative integer")
        return int(v)

    p = Parser(prog=PROG, description="rq peer benchmark driver")
    p.add_argument("--redis", required=True)
    p.add_argument("--scenario", required=True, choices=["e2e", "enqueue", "latency"])
    p.add_argument("--tasks", type=nonneg, default=10000)
    p.add_argument("--concurrency", type=nonneg, default=16)
    p.add_argument("--rate", type=nonneg, default=0)
    p.add_argument("--payload-bytes", dest="payload", type=nonneg, default=16)
    p.add_argument("--timeout", type=nonneg, default=0,
                   help="seconds to wait for all tasks (default: generous, from N)")
    p.add_argument("--rq-worker", dest="worker", choices=["simple", "fork"], default="simple")
    a = p.parse_args(argv)
    if a.scenario == "latency" and a.rate <= 0:
        p.error("scenario 'latency' needs --rate R > 0")
    if a.tasks <= 0 or a.concurrency <= 0:
        p.error("--tasks and --concurrency must be positive")
    a.payload = max(a.payload, STAMP_HEX)
    if a.timeout <= 0:
        # a minute plus 20 ms per task, plus the paced run's own length
        a.timeout = 60 + -(-a.tasks // 50) + (-(-a.tasks // a.rate) if a.rate else 0)
    return a


def make_payload(nbytes):
    pad = "x" * (nbytes - STAMP_HEX)
    return lambda: "%016x%s" % (time.monotonic_ns(), pad)


def percentile(sorted_values, p):
    """Same rank rule as streamfleet_bench: element floor(p * (n - 1))."""
    if not sorted_values:
        return 0.0
    return sorted_values[int(p * (len(sorted_values) - 1))]


def redis_cpu_us(conn):
    info = conn.info("cpu")
    return (float(info["used_cpu_sys"]) + float(info["used_cpu_user"])) * 1e6


def delete_keys(conn):
    """Deletes this queue's rq keys: queue, registries, jobs (ids benchpeer-*),
    results, and our workers' keys and registrations."""
    batch = []
    for key in conn.scan_iter(match=f"rq:*{QUEUE}*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            conn.delete(*batch)
            batch = []
    if batch:
        conn.delete(*batch)
    stale = [m for m in conn.smembers("rq:workers") if QUEUE.encode() in m]
    if stale:
        conn.srem("rq:workers", *stale)


class LatencyFiles:
    """Reads the workers' "job_id latency_ns" lines as they grow."""

    def __init__(self, paths):
        self.files = [open(p, "rb") for p in paths]
        self.rest = [b""] * len(paths)
        self.seen = set()
        self.latencies_ms = []
        self.duplicates = 0

    def poll(self):
        for i, f in enumerate(self.files):
            data = f.read()
            if not data:
                continue
            data = self.rest[i] + data
            lines = data.split(b"\n")
            self.rest[i] = lines.pop()
            for line in lines:
                job_id, ns = line.split(b" ")
                if job_id in self.seen:
                    self.duplicates += 1
                    continue
                self.seen.add(job_id)
                self.latencies_ms.append(int(ns) / 1e6)
        return len(self.seen)

    def close(self):
        for f in self.files:
            f.close()


# ---------------------------------------------------------------- worker mode

def worker_main(url, queue_name, name, lat_path, kind):
    """One rq worker process: rq's own work loop until SIGTERM (warm shutdown)."""
    from redis import Redis
    from redis.exceptions import RedisError
    from rq import Queue, SimpleWorker, Worker

    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    import rq_bench  # noqa: F401  # the task module, loaded once: work horses inherit it

    fd = os.open(lat_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.environ[LAT_FD_ENV] = str(fd)
    conn = Redis.from_url(url)
    cls = Worker if kind == "fork" else SimpleWorker
    worker = cls([Queue(queue_name, connection=conn)], connection=conn, name=name)
    try:
        worker.work(logging_level="WARNING")
    except RedisError as e:
        die(f"worker {name}: redis error: {e}")


# ---------------------------------------------------------------- driver

def stop_workers(procs, grace_s):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)  # rq: warm shutdown, finishes the job in hand
    deadline = time.monotonic() + grace_s
    clean = True
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            clean = False
            p.kill()
            p.wait()
    return clean


def run(a):
    from redis import Redis
    from redis.exceptions import RedisError
    import rq
    from rq import Queue, Worker

    try:
        conn = Redis.from_url(a.redis, socket_connect_timeout=5)
        conn.ping()
    except (RedisError, ValueError) as e:
        die(f"cannot reach redis at {a.redis}: {e}")
    delete_keys(conn)

    queue = Queue(QUEUE, connection=conn)
    tmp = tempfile.mkdtemp(prefix="benchpeer-rq-")
    procs = []
    lat = None
    try:
        if a.scenario != "enqueue":
            paths = [os.path.join(tmp, f"w{i}.lat") for i in range(a.concurrency)]
            for i, path in enumerate(paths):
                open(path, "wb").close()
                procs.append(subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "--worker-process", a.redis, QUEUE,
                     f"{QUEUE}-w{i}-{os.getpid()}", path, a.worker],
                    stdin=subprocess.DEVNULL))
            lat = LatencyFiles(paths)
            # Ready when every worker has registered with the queue (in Worker.work).
            deadline = time.monotonic() + 60 + a.concurrency
            while Worker.count(connection=conn, queue=queue) < a.concurrency:
                dead = [p for p in procs if p.poll() is not None]
                if dead:
                    die(f"worker {dead[0].args[5]} exited before the run (status {dead[0].returncode})")
                if time.monotonic() > deadline:
                    die(f"only {Worker.count(connection=conn, queue=queue)} of {a.concurrency} "
                        "rq workers registered within the startup time")
                time.sleep(0.05)

        payload = make_payload(a.payload)
        cpu_before = redis_cpu_us(conn)
        t0 = time.monotonic_ns()
        if a.scenario == "latency":
            interval = 1e9 / a.rate
            for i in range(a.tasks):
                ahead = t0 + i * interval - time.monotonic_ns()
                if ahead > 0:
                    time.sleep(ahead / 1e9)
                queue.enqueue(FUNC, args=(payload(),), job_id=f"{QUEUE}-{i}", result_ttl=0)
        else:
            for start in range(0, a.tasks, CHUNK):
                datas = [Queue.prepare_data(FUNC, args=(payload(),), job_id=f"{QUEUE}-{i}", result_ttl=0)
                         for i in range(start, min(start + CHUNK, a.tasks))]
                jobs = queue.enqueue_many(datas)
                if len(jobs) != len(datas):
                    die(f"enqueue_many stored {len(jobs)} of {len(datas)} jobs")
        if lat is not None:
            deadline = time.monotonic() + a.timeout
            while lat.poll() < a.tasks:
                if time.monotonic() > deadline:
                    die(f"timed out after {a.timeout} s: only {len(lat.seen)} of {a.tasks} tasks handled")
                dead = [p for p in procs if p.poll() is not None]
                if dead:
                    die(f"worker {dead[0].args[5]} died (status {dead[0].returncode}) after "
                        f"{len(lat.seen)} of {a.tasks} tasks")
                time.sleep(0.002)
        seconds = (time.monotonic_ns() - t0) / 1e9
        cpu_after = redis_cpu_us(conn)

        clean = stop_workers(procs, 30)
        procs = []
        if not clean:
            print(f"{PROG}: some rq workers ignored SIGTERM for 30 s and were killed", file=sys.stderr)
    finally:
        if procs:
            stop_workers(procs, 5)
        if lat is not None:
            lat.close()
        shutil.rmtree(tmp, ignore_errors=True)

    # Peak RSS of the driver (producer) and of every waited-for descendant: the
    # workers and, under rq.Worker, their work horses. KiB on Linux.
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    latencies = sorted(lat.latencies_ms) if lat is not None else []
    out = {
        "peer": "rq",
        "peer_version": rq.__version__,
        "rq_worker": a.worker,
        "scenario": a.scenario,
        "tasks": a.tasks,
        "concurrency": a.concurrency,
        "rate": a.rate,
        "payload_bytes": a.payload,
        "seconds": round(seconds, 4),
        "tasks_per_s": round(a.tasks / seconds),
        "lat_p50_ms": round(percentile(latencies, 0.50), 3),
        "lat_p99_ms": round(percentile(latencies, 0.99), 3),
        "max_rss_kb": rss,
        "redis_cpu_us_per_task": round((cpu_after - cpu_before) / a.tasks, 2),
        "handled": len(lat.seen) if lat is not None else 0,
        "duplicates": lat.duplicates if lat is not None else 0,
    }
    conn.close()
    print(json.dumps(out, separators=(",", ":")), flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker-process":
        if len(sys.argv) != 7:
            die("--worker-process URL QUEUE NAME LATFILE fork|simple")
        worker_main(*sys.argv[2:7])
        return
    ensure_rq()
    from redis.exceptions import RedisError

    try:
        run(parse_args(sys.argv[1:]))
    except RedisError as e:
        die(f"redis error: {e}")


if __name__ == "__main__":
    main()
