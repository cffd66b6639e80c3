'use strict';
// bee-queue peer driver: the same scenarios and JSON line as streamfleet_bench,
// with a producer Queue (isWorker: false) and a worker Queue processing with
// concurrency C, both in one process.
//
//   node bench/peers/beequeue.js --redis URL --scenario e2e|enqueue|latency
//        --tasks N --concurrency C [--rate R] [--payload-bytes B] [--timeout S]
//
// e2e      createJob × 1000 then Queue.saveAll (one pipelined batch), chunk
//          after chunk; time until the handler has run for all N jobs.
// enqueue  saveAll only; time until every batch has been acknowledged.
// latency  createJob(...).save() one job at a time, paced at R/s; then as e2e.
// The worker queue has removeOnSuccess/removeOnFailure: true. Nobody listens
// for job events, so the worker does not publish them (sendEvents: false) and
// the producer neither subscribes (getEvents: false) nor keeps job objects
// (storeJobs: false). Keys bq:benchpeer:* are deleted before the run.

const fs = require('fs');
const path = require('path');
const c = require('./common');

const PROG = 'beequeue.js';
const CHUNK = 1000;

async function main() {
  const args = c.parseArgs(PROG, process.argv.slice(2));
  c.startWatchdog(PROG, args.timeout + 30);
  const BeeQueue = require('bee-queue');
  const version = JSON.parse(
    fs.readFileSync(path.join(path.dirname(require.resolve('bee-queue')), 'package.json'), 'utf8')
  ).version;

  const admin = await c.adminClient(args.redis);
  await c.deleteKeys(admin, `bq:${c.QUEUE}:*`);

  // bee-queue makes (and on close() quits) its own node_redis connections from { url }.
  const producer = new BeeQueue(c.QUEUE, {
    redis: { url: args.redis },
    isWorker: false,
    getEvents: false,
    storeJobs: false,
  });
  producer.on('error', (e) => c.fail(PROG, `producer: ${e.message}`));
  await producer.ready();

  const tally = new c.Tally(args.tasks);
  let worker = null;
  if (args.scenario !== 'enqueue') {
    worker = new BeeQueue(c.QUEUE, {
      redis: { url: args.redis },
      isWorker: true,
      getEvents: false,
      sendEvents: false,
      storeJobs: false,
      removeOnSuccess: true,
      removeOnFailure: true,
    });
    worker.on('error', (e) => c.fail(PROG, `worker: ${e.message}`));
    worker.on('failed', (job, e) => c.fail(PROG, `job ${job && job.id} failed: ${e.message}`));
    await worker.ready();
    worker.process(args.concurrency, async (job) => {
      tally.record(job.id, job.data);
    });
  }

  const payload = c.makePayload(args.payload);

  const cpuBefore = await c.redisCpuUs(admin);
  const t0 = process.hrtime.bigint();
  if (args.scenario === 'latency') {
    await c.paced(args.tasks, args.rate, () => producer.createJob(payload()).save());
  } else {
    for (let done = 0; done < args.tasks; done += CHUNK) {
      const n = Math.min(CHUNK, args.tasks - done);
      const jobs = new Array(n);
      for (let i = 0; i < n; ++i) jobs[i] = producer.createJob(payload());
      const errors = await producer.saveAll(jobs);
      if (errors.size) {
        const first = errors.values().next().value;
        throw new Error(`saveAll failed for ${errors.size} of ${n} jobs: ${first.message}`);
      }
    }
  }
  if (worker) {
    try {
      await c.waitUntil(() => tally.complete(), args.timeout, `${args.tasks} handled tasks`);
    } catch (e) {
      throw new Error(`${e.message}; only ${tally.count} of ${args.tasks} were handled`);
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpuAfter = await c.redisCpuUs(admin);

  if (worker) await worker.close(10000);
  await producer.close(10000);
  await admin.quit();

  c.report({
    peer: 'bee-queue',
    version,
    args,
    seconds,
    latencies: tally.latencies,
    cpuUs: cpuAfter - cpuBefore,
    extra: { handled: worker ? tally.count : 0, duplicates: tally.duplicates },
  });
  c.exitSoonAfterCleanup(PROG);
}

main().catch((e) => c.fail(PROG, e));
