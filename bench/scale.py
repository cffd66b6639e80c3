#!/usr/bin/env python3
"""bench/scale: what Redis Sentinel and Redis Cluster cost and give (issue 12).

Runs on this machine, against real redis-server processes it starts on free
loopback ports and stops:

  1. throughput of 6 queues on one node vs the same 6 queues on a 3-primary
     cluster (2 queues per primary), e2e fire-and-forget at concurrency 64,
     with the Redis CPU per task on each node (what scales with machines);
  2. the pause in processing during a cluster failover (CLUSTER FAILOVER on a
     replica, then SIGKILL of a primary) and during a Sentinel failover
     (SENTINEL FAILOVER), under a steady 1,000 tasks/s: the longest
     enqueue -> start latency of the run;
  3. the cost of the WAIT option (wait_replicas = 1) against a primary with
     one replica.

Writes the tables between the `scale` markers of docs/benchmarks.md (bench/run
keeps them) and prints them. Usage: bench/scale [--tasks N] [--repeats R]
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# SF_BUILD_DIR: another build of the project (default: build/, what bench/scale builds).
SFB = os.path.join(ROOT, os.environ.get("SF_BUILD_DIR", "build"), "bench", "streamfleet_bench")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
BEGIN, END = "<!-- scale:begin -->", "<!-- scale:end -->"


def free_port():
    # Cluster nodes also need their bus port free; keep both below 55535.
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port < 50000:
            return port


class Node:
    """One redis-server (or sentinel) in a temp dir, killed on exit."""

    def __init__(self, root, extra=(), sentinel=False, name="node"):
        self.port = free_port()
        self.dir = os.path.join(root, f"{name}-{self.port}")
        os.makedirs(self.dir)
        conf = [f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}",
                "save \"\"", "appendonly no", f"logfile {self.dir}/log"]
        conf += list(extra)
        path = os.path.join(self.dir, "redis.conf")
        with open(path, "w") as f:
            f.write("\n".join(conf) + "\n")
        args = ["redis-server", path] + (["--sentinel"] if sentinel else [])
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(400):
            if self.cli("PING", check=False).strip() == "PONG":
                break
            time.sleep(0.025)
        else:
            raise RuntimeError(f"redis on {self.port} did not start")

    def cli(self, *args, check=True):
        r = subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                           capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"redis-cli {args}: {r.stderr}")
        return r.stdout

    def cpu_us(self):
        info = self.cli("INFO", "CPU")
        total = 0.0
        for key in ("used_cpu_sys:", "used_cpu_user:"):
            m = re.search(key + r"([0-9.]+)", info)
            total += float(m.group(1)) if m else 0.0
        return total * 1e6

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def url(self):
        return f"redis://127.0.0.1:{self.port}"


def wait_for(pred, limit=60, what="condition"):
    end = time.time() + limit
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def cluster(root, primaries=3, replicas=0):
    nodes = []
    for _ in range(primaries * (1 + replicas)):
        bus = free_port()
        nodes.append(Node(root, ["cluster-enabled yes", f"cluster-port {bus}",
                                 "cluster-node-timeout 1000",
                                 "cluster-config-file nodes.conf"], name="cluster"))
    addrs = [f"127.0.0.1:{n.port}" for n in nodes]
    subprocess.run(["redis-cli", "--cluster", "create"] + addrs +
                   ["--cluster-replicas", str(replicas), "--cluster-yes"],
                   check=True, capture_output=True)
    wait_for(lambda: all("cluster_state:ok" in n.cli("CLUSTER", "INFO") for n in nodes),
             what="cluster_state:ok")
    # Every node must know every other before clients ask for the map.
    wait_for(lambda: all(n.cli("CLUSTER", "NODES").count("connected") == len(nodes)
                         for n in nodes), what="a full cluster")
    return nodes


def owner_port(nodes, key):
    slot = int(nodes[0].cli("CLUSTER", "KEYSLOT", key))
    for line in nodes[0].cli("CLUSTER", "NODES").splitlines():
        parts = line.split()
        if "master" not in parts[2]:
            continue
        for rng in parts[8:]:
            if rng.startswith("["):
                continue
            lo, _, hi = rng.partition("-")
            if int(lo) <= slot <= int(hi or lo):
                return int(parts[1].split(":")[1].split("@")[0])
    raise RuntimeError(f"no owner for {key}")


def queues_spread(nodes, per_node=2):
    """Queue names whose keys land `per_node` on each primary."""
    primaries = sorted({owner_port(nodes, f"streamfleet:{{q{i}}}") for i in range(64)})
    chosen = {p: [] for p in primaries}
    i = 0
    while any(len(v) < per_node for v in chosen.values()):
        name = f"q{i}"
        p = owner_port(nodes, f"streamfleet:{{{name}}}")
        if len(chosen[p]) < per_node:
            chosen[p].append(name)
        i += 1
    return [q for p in primaries for q in chosen[p]], chosen


def bench(url, *args):
    out = subprocess.run([SFB, "--redis", url] + [str(a) for a in args],
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"streamfleet_bench {args}: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def throughput(root, tasks, repeats):
    rows = {"one node": [], "3-primary cluster": []}
    per_node = {"one node": [], "3-primary cluster": []}
    for _ in range(repeats):
        single = Node(root, name="single")
        queues = [f"q{i}" for i in range(6)]
        before = single.cpu_us()
        r = bench(single.url(), "--scenario", "e2e", "--tasks", tasks, "--concurrency", 64,
                  "--queues", ",".join(queues))
        cpu = (single.cpu_us() - before) / tasks
        rows["one node"].append((r["tasks_per_s"], cpu))
        per_node["one node"].append([cpu])
        single.kill()

        nodes = cluster(root)
        queues, by_port = queues_spread(nodes)
        seeds = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
        before = {n.port: n.cpu_us() for n in nodes}
        r = bench(f"redis-cluster://{seeds}", "--scenario", "e2e", "--tasks", tasks,
                  "--concurrency", 64, "--queues", ",".join(queues))
        spent = {n.port: n.cpu_us() - before[n.port] for n in nodes}
        # Tasks go round-robin over the 6 queues, 2 per primary: a third each.
        node_cpu = [spent[p] / (tasks / 3) for p in sorted(by_port)]
        rows["3-primary cluster"].append((r["tasks_per_s"], sum(spent.values()) / tasks))
        per_node["3-primary cluster"].append(node_cpu)
        for n in nodes:
            n.kill()
    return rows, per_node


def pause_run(url, seconds, rate, trigger, at):
    """A latency run at `rate` for `seconds`; `trigger` fires `at` s in."""
    timer = threading.Timer(at, trigger)
    timer.start()
    try:
        return bench(url, "--scenario", "latency", "--tasks", int(rate * seconds),
                     "--concurrency", 16, "--rate", rate)
    finally:
        timer.cancel()


def cluster_pauses(root, rate):
    out = {}
    nodes = cluster(root, 3, 1)
    seeds = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
    url = f"redis-cluster://{seeds}"
    owner = owner_port(nodes, "streamfleet:{bench}")
    by_port = {n.port: n for n in nodes}
    replica = None
    for line in by_port[owner].cli("CLUSTER", "NODES").splitlines():
        parts = line.split()
        if "slave" in parts[2] and parts[3] == line_id(by_port[owner]):
            replica = by_port[int(parts[1].split(":")[1].split("@")[0])]
    if replica is None:
        raise RuntimeError("no replica for the bench queue's primary")
    baseline = bench(url, "--scenario", "latency", "--tasks", rate * 3, "--concurrency", 16,
                     "--rate", rate)
    out["cluster, no failover"] = baseline
    out["cluster, CLUSTER FAILOVER"] = pause_run(
        url, 8, rate, lambda: replica.cli("CLUSTER", "FAILOVER"), 3)
    # Now `replica` is the primary; SIGKILL it and let its old primary take over.
    wait_for(lambda: "role:master" in replica.cli("INFO", "replication"), what="failover")
    out["cluster, primary SIGKILLed"] = pause_run(url, 12, rate, replica.kill, 3)
    for n in nodes:
        n.kill()
    return out


def line_id(node):
    return node.cli("CLUSTER", "MYID").strip()


def sentinel_setup(root):
    primary = Node(root, name="primary")
    replica = Node(root, [f"replicaof 127.0.0.1 {primary.port}"], name="replica")
    wait_for(lambda: "master_link_status:up" in replica.cli("INFO", "replication"),
             what="replication")
    sentinels = []
    for _ in range(3):
        sentinels.append(Node(root, [
            f"sentinel monitor m 127.0.0.1 {primary.port} 2",
            "sentinel down-after-milliseconds m 1000",
            "sentinel failover-timeout m 5000"], sentinel=True, name="sentinel"))
    wait_for(lambda: all("slaves=1" in s.cli("INFO", "sentinel") and
                         "sentinels=3" in s.cli("INFO", "sentinel") for s in sentinels),
             what="sentinels to agree")
    return primary, replica, sentinels


def sentinel_pause(root, rate):
    primary, replica, sentinels = sentinel_setup(root)
    url = "redis-sentinel://" + ",".join(f"127.0.0.1:{s.port}" for s in sentinels) + "/m"
    out = {"sentinel, SENTINEL FAILOVER": pause_run(
        url, 10, rate, lambda: sentinels[0].cli("SENTINEL", "FAILOVER", "m"), 3)}
    for n in [primary, replica] + sentinels:
        n.kill()
    return out


def wait_cost(root, tasks, repeats):
    primary = Node(root, name="primary")
    replica = Node(root, [f"replicaof 127.0.0.1 {primary.port}"], name="replica")
    wait_for(lambda: "master_link_status:up" in replica.cli("INFO", "replication"),
             what="replication")
    res = {"without WAIT": [], "wait_replicas = 1": []}
    for _ in range(repeats):
        for label, extra in (("without WAIT", []), ("wait_replicas = 1", ["--wait-replicas", 1])):
            primary.cli("FLUSHALL")
            r = bench(primary.url(), "--scenario", "e2e", "--tasks", tasks, "--concurrency", 64,
                      *extra)
            res[label].append(r["tasks_per_s"])
    primary.kill()
    replica.kill()
    return res


def fmt(v):
    return f"{v:,.0f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=50000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rate", type=int, default=1000)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="streamfleet-scale-")
    lines = []
    try:
        rows, per_node = throughput(root, args.tasks, args.repeats)
        version = subprocess.run(["redis-server", "--version"], capture_output=True,
                                 text=True).stdout.split()[2]
        lines += ["### Scale-out: one node vs a 3-primary cluster", "",
                  f"Measured by `bench/scale` ({version}, {os.cpu_count()} cores). 6 queues, e2e fire-and-forget, concurrency 64, {args.tasks:,} no-op tasks, "
                  f"default options, median of {args.repeats}; every node on this 2-core "
                  "machine, so the cluster's nodes share the same cores as the one node: the "
                  "figure that scales with more machines is the Redis CPU per task on each node.",
                  "",
                  "| deployment | tasks/s | Redis CPU µs/task (all nodes) | Redis CPU µs per task it served, per node |",
                  "|---|---|---|---|"]
        for label in rows:
            tps = statistics.median(r[0] for r in rows[label])
            cpu = statistics.median(r[1] for r in rows[label])
            nodes = [statistics.median(run[i] for run in per_node[label])
                     for i in range(len(per_node[label][0]))]
            lines.append(f"| {label} | {fmt(tps)} | {cpu:.1f} | "
                         + ", ".join(f"{c:.1f}" for c in nodes) + " |")
        one = statistics.median(r[1] for r in rows["one node"])
        worst = max(statistics.median(run[i] for run in per_node["3-primary cluster"])
                    for i in range(3))
        lines += ["", f"With a machine per node, Redis alone could serve about "
                  f"{fmt(1e6 / one)} tasks/s on one node and {fmt(3e6 / worst)} on the cluster "
                  f"(each primary serves a third; the busiest sets the pace): "
                  f"{3e6 / worst / (1e6 / one):.2f}×. A node of the cluster spends more per task "
                  "than the one node: each gets a third of the tasks in as many calls, so "
                  "per-call costs (script calls, reads, syscalls) are spread over fewer tasks."]
        pauses = {}
        pauses.update(cluster_pauses(root, args.rate))
        pauses.update(sentinel_pause(root, args.rate))
        lines += ["", "### Failover pauses", "",
                  f"A steady {args.rate:,} tasks/s (one queue, concurrency 16); the pause is "
                  "the longest enqueue → handler-start latency of the run, which spans the "
                  "failover. Nodes time out after 1 s (cluster-node-timeout, "
                  "down-after-milliseconds).", "",
                  "| run | tasks | p50 ms | p99 ms | longest (the pause) ms |", "|---|---|---|---|---|"]
        for label, r in pauses.items():
            lines.append(f"| {label} | {r['tasks']:,} | {r['lat_p50_ms']:.2f} | "
                         f"{r['lat_p99_ms']:.2f} | {r['lat_max_ms']:,.0f} |")
        w = wait_cost(root, args.tasks, args.repeats)
        base = statistics.median(w["without WAIT"])
        lines += ["", "### The WAIT option", "",
                  "e2e fire-and-forget, concurrency 64, one primary with one replica; "
                  "`wait_replicas = 1` sends `WAIT 1` after each enqueue batch and each "
                  "outcome batch.", "", "| | tasks/s | vs without |", "|---|---|---|"]
        for label, v in w.items():
            m = statistics.median(v)
            lines.append(f"| {label} | {fmt(m)} | {m / base:.2f}× |")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    block = "\n".join(lines)
    print(block)
    doc = open(DOC).read() if os.path.exists(DOC) else ""
    if BEGIN in doc and END in doc:
        doc = doc[:doc.index(BEGIN) + len(BEGIN)] + "\n" + block + "\n" + doc[doc.index(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + BEGIN + "\n" + block + "\n" + END + "\n"
    with open(DOC, "w") as f:
        f.write(doc)


if __name__ == "__main__":
    sys.exit(main())
