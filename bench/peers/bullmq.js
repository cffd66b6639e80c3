'use strict';
// BullMQ peer driver: the same scenarios and JSON line as streamfleet_bench,
// with a BullMQ Queue (producer) and Worker (concurrency C) in one process.
//
//   node bench/peers/bullmq.js --redis URL --scenario e2e|enqueue|latency
//        --tasks N --concurrency C [--rate R] [--payload-bytes B] [--timeout S]
//
// e2e      Queue.addBulk in chunks of 1000 as fast as the awaits allow; time
//          until the Worker's processor has run for all N jobs.
// enqueue  addBulk only; time until every chunk's MULTI has been acknowledged.
// latency  Queue.add one job at a time, paced at R/s; then as e2e.
// Jobs carry removeOnComplete/removeOnFail: true. Keys bull:benchpeer:* are
// deleted before the run.

const fs = require('fs');
const path = require('path');
const c = require('./common');

const PROG = 'bullmq.js';
const CHUNK = 1000;

async function main() {
  const args = c.parseArgs(PROG, process.argv.slice(2));
  c.startWatchdog(PROG, args.timeout + 30);
  const { Queue, Worker } = require('bullmq');
  const version = JSON.parse(
    fs.readFileSync(path.join(path.dirname(require.resolve('bullmq')), '..', '..', 'package.json'), 'utf8')
  ).version;

  const admin = await c.adminClient(args.redis);
  await c.deleteKeys(admin, `bull:${c.QUEUE}:*`);

  // BullMQ makes (and on close() quits) its own ioredis connections from these options.
  const connection = { url: args.redis, maxRetriesPerRequest: null };
  const queue = new Queue(c.QUEUE, { connection });
  queue.on('error', (e) => c.fail(PROG, `queue: ${e.message}`));
  await queue.waitUntilReady();

  const tally = new c.Tally(args.tasks);
  let worker = null;
  if (args.scenario !== 'enqueue') {
    worker = new Worker(
      c.QUEUE,
      async (job) => {
        tally.record(job.id, job.data);
      },
      { connection, concurrency: args.concurrency }
    );
    worker.on('error', (e) => c.fail(PROG, `worker: ${e.message}`));
    worker.on('failed', (job, e) => c.fail(PROG, `job ${job && job.id} failed: ${e.message}`));
    await worker.waitUntilReady();
  }

  const payload = c.makePayload(args.payload);
  const opts = { removeOnComplete: true, removeOnFail: true };

  const cpuBefore = await c.redisCpuUs(admin);
  const t0 = process.hrtime.bigint();
  if (args.scenario === 'latency') {
    await c.paced(args.tasks, args.rate, () => queue.add('t', payload(), opts));
  } else {
    for (let done = 0; done < args.tasks; done += CHUNK) {
      const n = Math.min(CHUNK, args.tasks - done);
      const jobs = new Array(n);
      for (let i = 0; i < n; ++i) jobs[i] = { name: 't', data: payload(), opts };
      const added = await queue.addBulk(jobs);
      if (added.length !== n) throw new Error(`addBulk stored ${added.length} of ${n} jobs`);
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

  if (worker) await worker.close();
  await queue.close();
  await admin.quit();

  c.report({
    peer: 'bullmq',
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
