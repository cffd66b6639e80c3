'use strict';
// Shared plumbing of the Node peer drivers (bullmq.js, beequeue.js): flags,
// payload stamps, pacing, Redis CPU readings, key cleanup and the one JSON
// line. The queue libraries themselves are only touched by the drivers.

const IORedis = require('ioredis');

const QUEUE = 'benchpeer';
const STAMP_HEX = 16; // a CLOCK_MONOTONIC nanosecond stamp as 16 hex digits

function usage(prog, why) {
  process.stderr.write(
    `${prog}: ${why}\n` +
      `usage: node ${prog} --redis URL --scenario e2e|enqueue|latency --tasks N ` +
      `--concurrency C [--rate R] [--payload-bytes B] [--timeout S]\n`
  );
  process.exit(2);
}

function fail(prog, err) {
  const msg = err && err.stack && process.env.BENCHPEER_DEBUG ? err.stack : String(err && err.message ? err.message : err);
  process.stderr.write(`${prog}: ${msg}\n`);
  process.exit(1);
}

function parseArgs(prog, argv) {
  const a = { redis: '', scenario: '', tasks: 10000, concurrency: 16, rate: 0, payload: 16, timeout: 0 };
  const num = (flag, v) => {
    if (v === undefined) usage(prog, `${flag} needs a value`);
    if (!/^[0-9]+$/.test(v)) usage(prog, `${flag} needs a non-negative integer`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; ++i) {
    const f = argv[i];
    const v = argv[i + 1];
    switch (f) {
      case '--redis':
        if (v === undefined) usage(prog, '--redis needs a value');
        a.redis = v; ++i; break;
      case '--scenario':
        if (v === undefined) usage(prog, '--scenario needs a value');
        a.scenario = v; ++i; break;
      case '--tasks': a.tasks = num(f, v); ++i; break;
      case '--concurrency': a.concurrency = num(f, v); ++i; break;
      case '--rate': a.rate = num(f, v); ++i; break;
      case '--payload-bytes': a.payload = num(f, v); ++i; break;
      case '--timeout': a.timeout = num(f, v); ++i; break;
      default: usage(prog, `unknown flag '${f}'`);
    }
  }
  if (!a.redis) usage(prog, 'missing --redis');
  if (!['e2e', 'enqueue', 'latency'].includes(a.scenario)) {
    usage(prog, '--scenario must be e2e, enqueue or latency');
  }
  if (a.scenario === 'latency' && a.rate <= 0) usage(prog, "scenario 'latency' needs --rate R > 0");
  if (a.tasks <= 0 || a.concurrency <= 0) usage(prog, '--tasks and --concurrency must be positive');
  if (a.payload < STAMP_HEX) a.payload = STAMP_HEX; // room for the stamp
  // Generous default: a minute plus 20 ms per task (rate-paced runs: plus their length).
  if (a.timeout <= 0) a.timeout = 60 + Math.ceil(a.tasks / 50) + (a.rate > 0 ? Math.ceil(a.tasks / a.rate) : 0);
  return a;
}

// The payload: the enqueue moment (process.hrtime.bigint(), CLOCK_MONOTONIC
// like the C++ bench's steady_clock) as 16 hex digits, padded with 'x' to B bytes.
function makePayload(bytes) {
  const pad = 'x'.repeat(bytes - STAMP_HEX);
  return () => process.hrtime.bigint().toString(16).padStart(STAMP_HEX, '0') + pad;
}

// Milliseconds from the payload's stamp until now.
function latencyMs(payload) {
  if (typeof payload !== 'string' || payload.length < STAMP_HEX) {
    throw new Error(`payload without a stamp: ${JSON.stringify(payload)}`);
  }
  const stamp = BigInt('0x' + payload.slice(0, STAMP_HEX));
  return Number(process.hrtime.bigint() - stamp) / 1e6;
}

// Same rank rule as streamfleet_bench: element floor(p * (n - 1)) of the sorted values.
function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.floor(p * (sorted.length - 1))];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Runs send(i) for i in [0, n) one at a time, the i-th due at t0 + i / rate.
// Node's timers have 1 ms granularity: a send within 1 ms of its due time goes
// at once, and a late one is not made up for by skipping, so the average rate
// holds while single gaps can vary by up to a millisecond.
async function paced(n, rate, send) {
  const t0 = process.hrtime.bigint();
  const intervalNs = 1e9 / rate;
  for (let i = 0; i < n; ++i) {
    const due = t0 + BigInt(Math.round(i * intervalNs));
    const aheadMs = Number(due - process.hrtime.bigint()) / 1e6;
    if (aheadMs >= 1) await sleep(Math.floor(aheadMs));
    await send(i);
  }
}

// An admin connection that fails fast instead of retrying forever.
async function adminClient(url) {
  const c = new IORedis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 5000,
  });
  let lastError = null;
  c.on('error', (e) => {
    lastError = e; // surfaced by the failing command instead
  });
  try {
    await c.connect();
    await c.ping();
  } catch (e) {
    c.disconnect();
    throw new Error(`cannot reach redis at ${url}: ${(lastError || e).message}`);
  }
  return c;
}

// used_cpu_sys + used_cpu_user of the redis-server, in microseconds.
async function redisCpuUs(admin) {
  const info = await admin.info('cpu');
  let total = 0;
  for (const key of ['used_cpu_sys', 'used_cpu_user']) {
    const m = info.match(new RegExp(`^${key}:([0-9.]+)`, 'm'));
    if (!m) throw new Error(`INFO CPU has no ${key}`);
    total += Number(m[1]);
  }
  return total * 1e6;
}

// Deletes every key matching pattern; returns how many went.
async function deleteKeys(admin, pattern) {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length) n += await admin.del(...keys);
  } while (cursor !== '0');
  return n;
}

// Resolves when done() turns true (checked every 2 ms), rejects after timeoutS.
function waitUntil(done, timeoutS, what) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutS * 1000;
    const tick = () => {
      if (done()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out after ${timeoutS} s waiting for ${what}`));
      setTimeout(tick, 2);
    };
    tick();
  });
}

// Tracks handled tasks: distinct job ids and their latencies.
class Tally {
  constructor(expected) {
    this.expected = expected;
    this.seen = new Set();
    this.latencies = [];
    this.duplicates = 0;
  }
  record(id, payload) {
    const ms = latencyMs(payload);
    if (this.seen.has(id)) {
      this.duplicates += 1;
      return;
    }
    this.seen.add(id);
    this.latencies.push(ms);
  }
  get count() {
    return this.seen.size;
  }
  complete() {
    return this.seen.size >= this.expected;
  }
}

// Prints the one JSON line, in streamfleet_bench's key order plus the peer's name.
function report({ peer, version, args, seconds, latencies, cpuUs, extra }) {
  const sorted = Float64Array.from(latencies).sort();
  const round = (x, d) => Number(x.toFixed(d));
  const out = {
    peer,
    peer_version: version,
    scenario: args.scenario,
    tasks: args.tasks,
    concurrency: args.concurrency,
    rate: args.rate,
    payload_bytes: args.payload,
    seconds: round(seconds, 4),
    tasks_per_s: Math.round(args.tasks / seconds),
    lat_p50_ms: round(percentile(sorted, 0.5), 3),
    lat_p99_ms: round(percentile(sorted, 0.99), 3),
    max_rss_kb: process.resourceUsage().maxRSS,
    redis_cpu_us_per_task: round(cpuUs / args.tasks, 2),
    ...extra,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

// Fails the run if it is not over within seconds (unref'd: keeps nothing alive).
function startWatchdog(prog, seconds) {
  setTimeout(() => fail(prog, `run not finished after ${seconds} s; giving up`), seconds * 1000).unref();
}

// If something still holds the event loop after a clean shutdown, say so and go.
function exitSoonAfterCleanup(prog) {
  setTimeout(() => {
    process.stderr.write(`${prog}: still running 10 s after shutdown; exiting anyway\n`);
    process.exit(0);
  }, 10000).unref();
}

module.exports = {
  QUEUE,
  parseArgs,
  fail,
  makePayload,
  paced,
  adminClient,
  redisCpuUs,
  deleteKeys,
  waitUntil,
  Tally,
  report,
  exitSoonAfterCleanup,
  startWatchdog,
  sleep,
};
