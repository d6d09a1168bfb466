// The guard CLI against an unreliable environment:
//   - the broker goes away mid-stream (SIGKILL, then later a clean stop) and comes back: the guard
//     stays up, reports not ready while the broker is away, reconnects and loses nothing;
//   - a slow downstream (every broker response held back by a proxy): the consumer pauses instead
//     of buffering, and the process's memory stays bounded while thousands of records wait.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createTopics, getTestBroker, type TestBroker } from './helpers/broker.ts';
import {
  collect, coverage, decodeResults, guardTopics, httpGet, killIfRunning, metricSum, parseMetrics, produce, rawConfig, samples, sleep,
  startCli, waitFor, within, writeConfigFile, type CliChild, type GuardTopics, type OutMsg,
} from './helpers/guard.ts';
import { startKafkaProxy, type KafkaProxy } from './helpers/proxy.ts';
import { decodeImageRecord, encodeImageRecord } from '../src/records/avro.ts';

/** The ops port the CLI logged. */
async function opsPort(c: CliChild): Promise<number> {
  const line = await waitFor(
    () => c.logs().find((l) => typeof l.port === 'number' && String(l.msg).startsWith('ops server listening')) ?? (c.proc.exitCode !== null ? { exited: true } : undefined),
    90_000,
    () => `ops server port in the guard's log:\n${c.output().slice(-3000)}`,
  );
  if ('exited' in line) throw new Error(`guard exited (${c.proc.exitCode}):\n${c.output().slice(-3000)}`);
  return line.port as number;
}

async function readyz(port: number): Promise<{ ready: boolean; checks?: Record<string, boolean> } | null> {
  try {
    const r = await httpGet(port, '/readyz');
    const body = JSON.parse(r.body) as { status: string; checks: Record<string, boolean> };
    assert.equal(r.status === 200, body.status === 'ready', 'status code agrees with the body');
    return { ready: r.status === 200, checks: body.checks };
  } catch {
    return null; // no answer
  }
}

async function metrics(port: number) {
  return parseMetrics((await httpGet(port, '/metrics')).body).samples;
}

/** Records answered so far by the guard's own counters (outputs + dead letters). */
async function answeredByMetrics(port: number): Promise<number> {
  const s = await metrics(port);
  return metricSum(s, 'vqguard_records_produced_total') + metricSum(s, 'vqguard_records_dead_lettered_total');
}

function messagesOf(values: { id: string; value: Buffer }[], partitions: number): OutMsg[] {
  return values.map((r, i) => ({ key: r.id, value: r.value, partition: i % partitions }));
}

/** Reads outputs and dead letters back until every input offset is answered. */
async function finalCoverage(brokers: string[], t: GuardTopics, n: number) {
  const seen = new Set<string>();
  let scanned = 0;
  const got = await collect(
    brokers,
    [t.output, t.deadLetter],
    (g) => {
      for (; scanned < g.length; scanned++) for (const k of coverage(decodeResults([g[scanned]!], t)).keys()) seen.add(k);
      return seen.size >= n;
    },
    { timeoutMs: 60_000, lingerMs: 1000 },
  );
  return coverage(decodeResults(got, t));
}

describe('resilience (real broker, guard CLI)', { timeout: 600_000 }, () => {
  let broker: TestBroker;
  before(async () => {
    broker = await getTestBroker();
  });
  after(async () => {
    await broker?.stop();
  });

  test('broker killed, later stopped, and restarted mid-stream: not ready while away, process stays up, nothing lost', { timeout: 240_000 }, async (t) => {
    if (!broker.local) {
      t.skip(`needs the local broker (restart/kill); this run uses a ${broker.kind} broker`);
      return;
    }
    const local = broker.local;
    const N = 300;
    const recs = await samples(N, { adversarialRatio: 0.3, eps: 0.3, seed: 21, idPrefix: 'outage' });
    const topics = guardTopics('outage');
    await createTopics(broker.brokers, [topics.input], 2);
    await createTopics(broker.brokers, [topics.output, topics.deadLetter, topics.alerts], 1);
    await produce(broker.brokers, topics.input, messagesOf(recs.slice(0, 100), 2));
    const cfg = writeConfigFile(rawConfig(topics, { brokers: broker.brokers, maxBatchSize: 8 }));
    let c: CliChild | undefined;
    const samplesSeen: { at: number; phase: string; ready: boolean | null }[] = [];
    let phase = 'up';
    let polling = true;
    try {
      c = startCli(cfg, {});
      const cli = c;
      const port = await opsPort(cli);
      await waitFor(async () => (await readyz(port))?.ready, 90_000, () => `guard ready:\n${cli.output().slice(-3000)}`, 200);
      await waitFor(async () => (await answeredByMetrics(port)) >= 30, 90_000, 'first answers', 200);

      const poller = (async () => {
        while (polling) {
          const r = await readyz(port);
          samplesSeen.push({ at: Date.now(), phase, ready: r ? r.ready : null });
          await sleep(100);
        }
      })();

      // Outage 1: the broker dies (SIGKILL) and stays away for a while.
      phase = 'killed';
      await local.kill();
      const notReady1 = await waitFor(() => samplesSeen.some((s) => s.phase === 'killed' && s.ready === false), 45_000, () => `readyz false while the broker is down (samples: ${JSON.stringify(samplesSeen.slice(-5))})\n${cli.output().slice(-2000)}`, 100).then(
        () => true,
        (e: Error) => e,
      );
      await sleep(3000);
      assert.equal(cli.proc.exitCode, null, `the guard stays up while the broker is away:\n${cli.output().slice(-3000)}`);
      const health = await httpGet(port, '/healthz');
      assert.equal(health.status, 200, '/healthz answers while the broker is away');
      phase = 'restarting';
      await local.restart();
      phase = 'back1';
      await produce(broker.brokers, topics.input, messagesOf(recs.slice(100, 200), 2));
      await waitFor(async () => (await readyz(port))?.ready, 120_000, () => `ready again after the broker came back:\n${cli.output().slice(-3000)}`, 200);
      await waitFor(async () => (await answeredByMetrics(port)) >= 150, 120_000, () => `progress after outage 1:\n${cli.output().slice(-3000)}`, 200);

      // Outage 2: a clean broker stop (SIGTERM) and start, while records are waiting.
      await produce(broker.brokers, topics.input, messagesOf(recs.slice(200), 2));
      phase = 'stopping';
      await local.restart();
      phase = 'back2';
      await waitFor(async () => (await answeredByMetrics(port)) >= N, 150_000, () => `all ${N} answered after outage 2 (${cli.output().slice(-3000)})`, 250);
      await waitFor(async () => (await readyz(port))?.ready, 60_000, 'ready after outage 2', 200);
      polling = false;
      await poller;
      assert.equal(cli.proc.exitCode, null, 'the guard never exited');

      cli.proc.kill('SIGTERM');
      assert.equal(await within(cli.exited, 45_000, 'guard exits after SIGTERM'), 0, `exit code after SIGTERM:\n${cli.output().slice(-3000)}`);

      const cov = await finalCoverage(broker.brokers, topics, N);
      let dup = 0;
      for (const n of cov.values()) dup += n - 1;
      const byPhase = (p: string) => samplesSeen.filter((s) => s.phase === p).map((s) => (s.ready === null ? '-' : s.ready ? 'R' : 'n')).join('');
      t.diagnostic(`readyz samples (R ready, n not ready, - no answer): killed ${byPhase('killed')} | restarting ${byPhase('restarting')} | stopping ${byPhase('stopping')}`);
      t.diagnostic(`inputs=${N} answered=${cov.size} lost=${N - cov.size} duplicates=${dup} brokerRestarts=2`);
      const crashes = cli.logs().filter((l) => l.msg === 'consumer crashed').map((l) => `${String(l.err)} (restart ${String(l.restart)})`);
      t.diagnostic(`consumer crashes: ${crashes.length ? crashes.join('; ') : 'none'}`);
      assert.equal(notReady1, true, `not ready while the broker is down: ${notReady1 instanceof Error ? notReady1.message : ''}`);
      assert.ok(samplesSeen.some((s) => s.phase === 'stopping' && s.ready === false), 'not ready during the clean broker stop/start');
      assert.ok(samplesSeen.filter((s) => s.phase === 'killed' || s.phase === 'restarting').every((s) => s.ready !== null), '/readyz always answered');
      assert.equal(cov.size, N, 'nothing lost');
    } finally {
      polling = false;
      killIfRunning(c);
    }
  });

  test('slow downstream: the consumer pauses, in-flight and RSS stay bounded', { timeout: 300_000 }, async (t) => {
    // Records padded to ~64 KiB (an attribute): 3,000 of them are ~190 MiB queued, so buffering
    // what waits would break the RSS bound below. One fetch (1 MiB per partition) holds ~16 of
    // them, more than maxInFlight (8): every fetch crosses the bound, so the consumer must pause,
    // and in-flight may not exceed the bound plus one fetch.
    const N = 3000;
    const MAX_IN_FLIGHT = 8;
    const BATCH = 4;
    const PAD = 64 * 1024;
    const recs = await samples(500, { adversarialRatio: 0.3, eps: 0.3, seed: 31, idPrefix: 'slow' });
    const padded = recs.map((r) => {
      const d = decodeImageRecord(r.value);
      assert.ok(d.ok);
      return encodeImageRecord({ ...d.record, attributes: { ...d.record.attributes, pad: 'p'.repeat(PAD) } });
    });
    const values = Array.from({ length: N }, (_, i) => ({ id: `slow-${i}`, value: padded[i % padded.length]! }));
    const topics = guardTopics('slow');
    await createTopics(broker.brokers, [topics.input, topics.output, topics.deadLetter, topics.alerts], 1);
    await produce(broker.brokers, topics.input, messagesOf(values, 1));
    const bytesQueued = values.reduce((s, v) => s + v.value.length, 0);

    const [host, port] = broker.brokers[0]!.split(':');
    let proxy: KafkaProxy | undefined;
    let c: CliChild | undefined;
    try {
      proxy = await startKafkaProxy({ host: host!, port: Number(port) }, { delayMs: 0 });
      const raw = rawConfig(topics, { brokers: proxy.brokers, maxBatchSize: BATCH });
      raw.maxInFlight = MAX_IN_FLIGHT;
      c = startCli(writeConfigFile(raw), {});
      const cli = c;
      const ops = await opsPort(cli);
      // Let it start on a fast broker, then slow every response (produce acks included) to 200 ms.
      await waitFor(async () => (await answeredByMetrics(ops)) >= BATCH, 90_000, () => `first answers:\n${cli.output().slice(-3000)}`, 100);
      proxy.setDelay(200);
      const pid = cli.proc.pid!;
      const rss = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
      const rss0 = rss();
      let maxRss = rss0, maxInFlight = 0, pausedSeen = 0, polls = 0;
      const answered0 = await answeredByMetrics(ops);
      const until = Date.now() + 25_000;
      while (Date.now() < until) {
        const s = await metrics(ops);
        maxInFlight = Math.max(maxInFlight, metricSum(s, 'vqguard_in_flight_records_max'));
        if (metricSum(s, 'vqguard_consumer_paused') === 1) pausedSeen++;
        maxRss = Math.max(maxRss, rss());
        polls++;
        await sleep(100);
      }
      const answered1 = await answeredByMetrics(ops);
      const waiting = N - answered1;
      t.diagnostic(
        `slow phase 25 s: answered ${answered1 - answered0} (${answered0} -> ${answered1}), ${waiting} records (~${Math.round((bytesQueued * waiting) / N / 1024)} KiB) still queued; ` +
          `paused in ${pausedSeen}/${polls} polls; max in-flight ${maxInFlight} (maxInFlight ${MAX_IN_FLIGHT}); RSS ${rss0.toFixed(0)} -> max ${maxRss.toFixed(0)} MiB; proxy connections ${proxy.connections}`,
      );
      const queuedMiB = (bytesQueued * waiting) / N / 1024 / 1024;
      assert.ok(waiting > 1000, `thousands of records still queued (${waiting})`);
      assert.ok(queuedMiB > 150, `more queued (${queuedMiB.toFixed(0)} MiB) than the RSS bound, so buffering it would fail the test`);
      assert.ok(answered1 > answered0, 'still making progress while slow');
      assert.ok(pausedSeen > polls / 10, `paused during the slow phase (vqguard_consumer_paused = 1 in ${pausedSeen}/${polls} polls)`);
      // One fetch response is at most 1 MiB per partition (kafkajs maxBytesPerPartition); in-flight never goes past one such batch plus the bound.
      const perFetch = Math.ceil((1024 * 1024) / Math.min(...values.map((v) => v.value.length)));
      assert.ok(maxInFlight > MAX_IN_FLIGHT, `the bound was reached (max in-flight ${maxInFlight})`);
      assert.ok(maxInFlight <= MAX_IN_FLIGHT + perFetch, `in-flight ${maxInFlight} bounded by ${MAX_IN_FLIGHT} + ${perFetch}`);
      assert.ok(maxRss - rss0 < 150, `RSS grew ${(maxRss - rss0).toFixed(0)} MiB while ${queuedMiB.toFixed(0)} MiB were queued`);

      // Fast again: everything drains.
      proxy.setDelay(0);
      await waitFor(async () => (await answeredByMetrics(ops)) >= N, 180_000, () => `all ${N} answered once fast again`, 250);
      await waitFor(async () => metricSum(await metrics(ops), 'vqguard_consumer_paused') === 0, 10_000, 'resumed (paused = 0) after draining', 100);
      cli.proc.kill('SIGTERM');
      assert.equal(await within(cli.exited, 45_000, 'guard exits after SIGTERM'), 0, `exit code:\n${cli.output().slice(-3000)}`);
      const cov = await finalCoverage(broker.brokers, topics, N);
      assert.equal(cov.size, N, 'nothing lost');
    } finally {
      killIfRunning(c);
      await proxy?.close();
    }
  });
});
