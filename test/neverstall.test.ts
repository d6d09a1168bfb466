// Never stall silently (real broker): no single record can stop a partition, and a dead
// consumer is recreated or the process says so.
//   - oversized records: with a dead-letter topic whose max.message.bytes is lower than the
//     input's, a near-1 MiB garbage value becomes one truncated dead letter (length + sha256),
//     the next valid record is answered; a limit lowered while running ("message too large"
//     from the broker) is handled for that record only;
//   - a failure injected on one offset, every time: dead-lettered as `poison` after
//     consumer.poisonAttempts tries, the rest of its micro-batch answered, offsets move on;
//   - per-step isolation (issue 14): an image that cannot be encoded -> `encode_error` for that
//     record only; a model failure for a batch -> `processing_error` for its records only;
//   - a non-retriable error from the producer kills the kafkajs consumer: /healthz is 503 while
//     it is dead, the guard recreates it and every record is answered; if it cannot within
//     consumer.restartGiveUpMs, onFatal is called (the CLI exits 3);
//   - SIGSTOP one of two CLI instances past the session timeout, then SIGCONT: both consume
//     again (or the frozen one exits non-zero), nothing lost, and with transactions no
//     duplicates for read_committed readers.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import kafkajs, { Kafka, logLevel, type ConfigResourceTypes } from 'kafkajs';
import { createTopics, getTestBroker, type TestBroker } from './helpers/broker.ts';
import {
  cliOpsPort, collect, committedOffsets, coverage, createTopicsWith, decodeResults, guardTopics, httpGet, killIfRunning, LogSink, metricSum, parseMetrics,
  produce, rawConfig, REPO, samples, sleep, startChild, startCli, waitFor, within, writeConfigFile, type CliChild, type GuardTopics, type OutMsg,
} from './helpers/guard.ts';
import { parseConfig } from '../src/config/schema.ts';
import { Guard, createLogger, type GuardOptions } from '../src/consumer/guard.ts';
import type { ChunkResult } from '../src/consumer/processChunk.ts';
import type { SampleRecord } from '../src/sample/produceSample.ts';

interface Run {
  guard: Guard;
  sink: LogSink;
  answered(): number;
  results: ChunkResult[];
}

/** kafkajs's ConfigResourceTypes.TOPIC (a TypeScript enum its CommonJS build does not export by name to ESM). */
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;
const { KafkaJSNonRetriableError } = kafkajs;

function newGuard(raw: Record<string, unknown>, o: Pick<GuardOptions, 'inject' | 'onFatal'> = {}): Run {
  const sink = new LogSink();
  let answered = 0;
  const results: ChunkResult[] = [];
  const guard = new Guard(parseConfig(raw), {
    baseDir: REPO,
    httpPort: 0,
    logger: createLogger(sink),
    events: {
      onChunk: (_t, _p, r) => {
        answered += r.outputs.length + r.deadLetters.length;
        results.push(r);
      },
    },
    ...o,
    onFatal: o.onFatal ?? ((e) => sink.write(JSON.stringify({ level: 60, msg: `test: unexpected fatal ${e.message}` }) + '\n')),
  });
  return { guard, sink, answered: () => answered, results };
}

const dump = (t: TestContext, r: Run | undefined) => (e: unknown): never => {
  if (r) t.diagnostic(r.sink.tail(40));
  throw e;
};

function values(recs: SampleRecord[], prefix: string): OutMsg[] {
  return recs.map((r, i) => ({ key: `${prefix}-${i}`, value: r.value, partition: 0 }));
}

async function readAll(brokers: string[], t: GuardTopics, n: number, timeoutMs = 60_000) {
  const got = await collect(brokers, [t.output, t.deadLetter], (g) => coverage(decodeResults(g, t)).size >= n, { timeoutMs, lingerMs: 500 });
  return decodeResults(got, t);
}

async function setMaxMessageBytes(brokers: string[], topic: string, value: number): Promise<void> {
  const admin = new Kafka({ clientId: 'vqguard-test-admin', brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: TOPIC_RESOURCE, name: topic, configEntries: [{ name: 'max.message.bytes', value: String(value) }] }] });
  } finally {
    await admin.disconnect();
  }
}

describe('never stall (real broker)', { timeout: 600_000 }, () => {
  let broker: TestBroker;
  let recs: SampleRecord[];
  before(async () => {
    broker = await getTestBroker();
    recs = await samples(40, { adversarialRatio: 0.3, eps: 0.3, seed: 41, idPrefix: 'ns' });
  });
  after(async () => {
    await broker?.stop();
  });

  test('oversized records: truncated dead letters (length + sha256), the stream goes on; a limit lowered while running is handled per record', { timeout: 120_000 }, async (t) => {
    const DLQ_LIMIT = 200_000;
    const topics = guardTopics('oversize');
    await createTopics(broker.brokers, [topics.input, topics.output, topics.alerts], 1);
    await createTopicsWith(broker.brokers, [topics.deadLetter], 1, { 'max.message.bytes': String(DLQ_LIMIT) });
    // Garbage just under the input topic's default limit (1 MiB + 12): passes image.maxBytes (1 MiB), is no Avro.
    const garbage = Buffer.alloc(1_040_000, 0x5a);
    garbage.write('not an image, not avro', 0);
    const first: OutMsg[] = [{ key: 'big-1', value: garbage, partition: 0 }, ...values(recs.slice(0, 5), 'after-big')];
    await produce(broker.brokers, topics.input, first);
    const raw = rawConfig(topics, { brokers: broker.brokers, maxBatchSize: 8 });
    const run = newGuard(raw);
    const second: OutMsg[] = [{ key: 'big-2', value: Buffer.alloc(150_000, 0x41), partition: 0 }, ...values(recs.slice(5, 10), 'after-big2')];
    try {
      await within(run.guard.start(), 60_000, 'guard.start()');
      assert.deepEqual(
        run.guard.checkSizeLimits({ [topics.input]: 1_048_588, [topics.deadLetter]: DLQ_LIMIT }).map((w) => /dead-letter topic/.test(w)),
        [true],
        'start-up warns that image.maxBytes does not fit the dead-letter topic',
      );
      assert.ok(run.sink.records().some((l) => l.level === 40 && /image\.maxBytes \(1048576\) does not fit the dead-letter topic/.test(String(l.msg))), 'the warning is logged at start-up');
      await waitFor(() => run.answered() >= first.length, 60_000, () => `all ${first.length} answered (got ${run.answered()})`);
      assert.equal((await httpGet(run.guard.httpPort!, '/healthz')).status, 200);

      // The dead-letter topic's limit drops below what the guard read at start-up: the broker refuses, the guard refits.
      await setMaxMessageBytes(broker.brokers, topics.deadLetter, 60_000);
      await produce(broker.brokers, topics.input, second);
      await waitFor(() => run.answered() >= first.length + second.length, 60_000, () => `second wave answered (got ${run.answered()})`);
      assert.ok(run.sink.records().some((l) => /refitted the micro-batch/.test(String(l.msg))), 'the broker refusal was logged and handled');
      assert.equal(run.guard.runner.dead, false, 'consumer alive');
    } catch (e) {
      dump(t, run)(e);
    } finally {
      await within(run.guard.stop(), 30_000, 'stop');
    }
    const r = await readAll(broker.brokers, topics, first.length + second.length);
    const dl1 = r.deadLetters.find((d) => d.offset === '0')!;
    assert.ok(dl1, 'the first oversized record has a dead letter');
    assert.equal(dl1.reason, 'bad_avro');
    assert.equal(dl1.originalLength, garbage.length);
    assert.equal(dl1.originalSha256, createHash('sha256').update(garbage).digest('hex'));
    assert.ok(dl1.original.length > 100_000 && dl1.original.length < DLQ_LIMIT, `truncated original (${dl1.original.length} bytes)`);
    assert.ok(garbage.subarray(0, dl1.original.length).equals(dl1.original), 'the truncated original is the original\'s first bytes');
    assert.match(dl1.detail, /original truncated/);
    const dl2 = r.deadLetters.find((d) => d.offset === '6')!;
    assert.ok(dl2, 'the second oversized record has a dead letter');
    assert.equal(dl2.originalLength, 150_000);
    assert.ok(dl2.original.length < 60_000, `truncated to the lowered limit (${dl2.original.length})`);
    const outs = new Set(r.outputs.map((o) => o.source.offset));
    for (const off of ['1', '2', '3', '4', '5', '7', '8', '9', '10', '11']) assert.ok(outs.has(off), `valid record at offset ${off} answered`);
    assert.equal((await committedOffsets(broker.brokers, topics.groupId, topics.input)).get(0), 12, 'offsets moved past every record');
  });

  test('a failure repeating on one offset: dead-lettered as poison after poisonAttempts tries; the rest answered, offsets move on', { timeout: 90_000 }, async (t) => {
    const topics = guardTopics('poison');
    await createTopics(broker.brokers, [topics.input, topics.output, topics.deadLetter, topics.alerts], 1);
    await produce(broker.brokers, topics.input, values(recs.slice(0, 12), 'p'));
    const raw = rawConfig(topics, { brokers: broker.brokers, maxBatchSize: 8 });
    raw.consumer = { poisonAttempts: 3 };
    const tries = new Map<string, number>();
    const run = newGuard(raw, {
      inject: {
        beforeProcess: (_topic, _p, messages) => {
          for (const m of messages) tries.set(m.offset, (tries.get(m.offset) ?? 0) + 1);
          if (messages.some((m) => m.offset === '5')) throw new Error('injected failure on offset 5');
        },
      },
    });
    try {
      await within(run.guard.start(), 60_000, 'guard.start()');
      await waitFor(() => run.answered() >= 12, 60_000, () => `12 answered (got ${run.answered()})`);
      await waitFor(async () => (await committedOffsets(broker.brokers, topics.groupId, topics.input)).get(0) === 12, 20_000, 'committed offset 12');
    } catch (e) {
      dump(t, run)(e);
    } finally {
      await within(run.guard.stop(), 30_000, 'stop');
    }
    assert.equal(tries.get('5'), 3, 'offset 5 tried exactly poisonAttempts times');
    const r = await readAll(broker.brokers, topics, 12);
    const poison = r.deadLetters.filter((d) => d.reason === 'poison');
    assert.deepEqual(poison.map((d) => d.offset), ['5']);
    assert.match(poison[0]!.detail, /failed 3 times in a row: injected failure on offset 5/);
    assert.equal(r.outputs.length, 11, 'every other record has an output');
    assert.equal(coverage(r).size, 12);
    assert.ok(run.sink.records().some((l) => l.level === 50 && /poison record/.test(String(l.msg))), 'logged');
  });

  test('per-step isolation: an image that cannot be encoded and a failed model batch dead-letter only their records', { timeout: 90_000 }, async (t) => {
    const topics = guardTopics('isolate');
    await createTopics(broker.brokers, [topics.input, topics.output, topics.deadLetter, topics.alerts], 1);
    const raw = rawConfig(topics, { brokers: broker.brokers, maxBatchSize: 8 });
    const victim = recs[3]!.id;
    let modelFailures = 0;
    const run = newGuard(raw, {
      inject: {
        steps: {
          encodeImage: async (_p, _w, _h, _c, _f, id) => {
            if (id === victim) throw new Error('injected: cannot encode this image');
            const { encodeImage } = await import('../src/image/decode.ts');
            return encodeImage(_p, _w, _h, _c, _f);
          },
        },
      },
    });
    try {
      await within(run.guard.start(), 60_000, 'guard.start()');
      await produce(broker.brokers, topics.input, values(recs.slice(0, 8), 'iso'));
      await waitFor(() => run.answered() >= 8, 60_000, () => `8 answered (got ${run.answered()})`);
      // The model fails once for a whole micro-batch.
      const det = run.guard.runtimes[0]!.detector;
      const rawFn = det.raw.bind(det);
      det.raw = ((x: Parameters<typeof rawFn>[0]) => {
        if (modelFailures++ === 0) throw new Error('injected: model failure');
        return rawFn(x);
      }) as typeof det.raw;
      await produce(broker.brokers, topics.input, values(recs.slice(8, 12), 'iso2'));
      await waitFor(() => run.answered() >= 12, 60_000, () => `12 answered (got ${run.answered()})`);
      await produce(broker.brokers, topics.input, values(recs.slice(12, 16), 'iso3'));
      await waitFor(() => run.answered() >= 16, 60_000, () => `16 answered (got ${run.answered()})`);
      await waitFor(async () => (await committedOffsets(broker.brokers, topics.groupId, topics.input)).get(0) === 16, 20_000, 'committed offset 16');
    } catch (e) {
      dump(t, run)(e);
    } finally {
      await within(run.guard.stop(), 30_000, 'stop');
    }
    const r = await readAll(broker.brokers, topics, 16);
    const enc = r.deadLetters.filter((d) => d.reason === 'encode_error');
    assert.deepEqual(enc.map((d) => d.id), [victim], 'one encode_error dead letter, for the victim');
    assert.match(enc[0]!.detail, /cannot encode this image/);
    const pe = r.deadLetters.filter((d) => d.reason === 'processing_error');
    assert.ok(pe.length >= 1 && pe.length <= 4, `the failed model batch's records are processing_error (${pe.length})`);
    assert.ok(pe.every((d) => Number(d.offset) >= 8 && Number(d.offset) < 12), 'only records of the failed batch');
    assert.equal(coverage(r).size, 16, 'every record answered');
    assert.equal(r.outputs.length + r.deadLetters.length, 16, 'exactly one answer each');
    assert.ok(r.outputs.filter((o) => Number(o.source.offset) >= 12).length === 4, 'later records answered normally');
  });

  test('/healthz fails while the consumer is dead (injected non-retriable error); recreated, nothing lost; onFatal when it cannot recover', { timeout: 120_000 }, async (t) => {
    const topics = guardTopics('dead');
    await createTopics(broker.brokers, [topics.input, topics.output, topics.deadLetter, topics.alerts], 1);
    const raw = rawConfig(topics, { brokers: broker.brokers, maxBatchSize: 8 });
    raw.consumer = { restartBackoffMs: 1500 };
    let fail = 1;
    const run = newGuard(raw, {
      inject: {
        beforeDeliver: () => {
          if (fail-- > 0) throw new KafkaJSNonRetriableError('injected: non-retriable producer failure');
        },
      },
    });
    const seen: number[] = [];
    let polling = true;
    try {
      await within(run.guard.start(), 60_000, 'guard.start()');
      const port = run.guard.httpPort!;
      const poller = (async () => {
        while (polling) {
          seen.push((await httpGet(port, '/healthz')).status);
          await sleep(50);
        }
      })();
      await produce(broker.brokers, topics.input, values(recs.slice(0, 10), 'd'));
      await waitFor(() => seen.includes(503), 30_000, 'healthz 503 while the consumer is dead');
      await waitFor(() => run.answered() >= 10, 60_000, () => `10 answered after the restart (got ${run.answered()})`);
      polling = false;
      await poller;
      assert.equal((await httpGet(port, '/healthz')).status, 200, 'alive again');
      const m = parseMetrics((await httpGet(port, '/metrics')).body).samples;
      assert.equal(metricSum(m, 'vqguard_consumer_crashes_total', { restart: 'false' }), 1);
      assert.equal(metricSum(m, 'vqguard_consumer_restarts_total'), 1);
      assert.equal(metricSum(m, 'vqguard_consumer_up'), 1);
      const errors = run.sink.records().filter((l) => l.level === 50);
      assert.equal(errors.length, 1, `one error line: ${JSON.stringify(errors)}`);
      assert.match(String(errors[0]!.msg), /consumer crashed: injected: non-retriable producer failure/);
    } catch (e) {
      dump(t, run)(e);
    } finally {
      polling = false;
      await within(run.guard.stop(), 30_000, 'stop');
    }
    const r = await readAll(broker.brokers, topics, 10);
    assert.equal(coverage(r).size, 10, 'nothing lost');

    // Never recovers: onFatal (the CLI exits 3) after restartGiveUpMs.
    const topics2 = guardTopics('fatal');
    await createTopics(broker.brokers, [topics2.input, topics2.output, topics2.deadLetter, topics2.alerts], 1);
    const raw2 = rawConfig(topics2, { brokers: broker.brokers });
    raw2.consumer = { restartBackoffMs: 500, restartGiveUpMs: 10_000 };
    let fatal: Error | undefined;
    let fatalAt = 0;
    const run2 = newGuard(raw2, {
      inject: { beforeDeliver: () => { throw new KafkaJSNonRetriableError('injected: always failing'); } },
      onFatal: (e) => {
        fatal = e;
        fatalAt = Date.now();
      },
    });
    try {
      await within(run2.guard.start(), 60_000, 'guard.start()');
      await produce(broker.brokers, topics2.input, values(recs.slice(0, 2), 'f'));
      const t0 = Date.now();
      await waitFor(() => fatal, 45_000, 'onFatal called');
      t.diagnostic(`fatal after ${fatalAt - t0} ms`);
      assert.match(fatal!.message, /always failing/);
      assert.equal((await httpGet(run2.guard.httpPort!, '/healthz')).status, 503, 'not alive');
    } catch (e) {
      dump(t, run2)(e);
    } finally {
      await within(run2.guard.stop(), 30_000, 'stop');
    }
  });

  for (const mode of ['atleastonce', 'transactions'] as const) {
    test(`SIGSTOP one of two instances past the session timeout, then SIGCONT (${mode}): both consume again, nothing lost${mode === 'transactions' ? ', no duplicates' : ''}`, { timeout: 180_000 }, async (t) => {
      const N = 400;
      const topics = guardTopics(`freeze-${mode}`);
      await createTopics(broker.brokers, [topics.input], 2);
      await createTopics(broker.brokers, [topics.output, topics.deadLetter, topics.alerts], 1);
      const raw = rawConfig(topics, { brokers: broker.brokers, maxBatchSize: 8, transactions: mode === 'transactions' });
      raw.consumer = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 1000, rebalanceTimeoutMs: 12_000, transactionTimeoutMs: 3000, restartBackoffMs: 500 };
      const cfg = writeConfigFile(raw);
      const all = await samples(N, { adversarialRatio: 0.3, eps: 0.3, seed: 43, idPrefix: 'fz' });
      let a: CliChild | undefined;
      let b: CliChild | undefined;
      try {
        a = startCli(cfg, {});
        b = startCli(cfg, {});
        const [pa, pb] = await Promise.all([cliOpsPort(a), cliOpsPort(b)]);
        const ready = async (p: number) => (await httpGet(p, '/readyz').catch(() => ({ status: 0 }))).status === 200;
        await waitFor(async () => (await ready(pa)) && (await ready(pb)), 90_000, () => `both ready\nA:${a!.output().slice(-1500)}\nB:${b!.output().slice(-1500)}`, 200);
        await produce(broker.brokers, topics.input, all.map((r, i) => ({ key: r.id, value: r.value, partition: i % 2 })));
        const answered = async (p: number) => {
          const s = parseMetrics((await httpGet(p, '/metrics')).body).samples;
          return metricSum(s, 'vqguard_records_produced_total') + metricSum(s, 'vqguard_records_dead_lettered_total');
        };
        await waitFor(async () => (await answered(pa)) >= 16, 60_000, 'A has answered some records', 100);
        const joinsBefore = a.logs().filter((l) => l.msg === 'partitions assigned').length;
        a.proc.kill('SIGSTOP');
        const frozenAt = Date.now();
        // Past the session timeout and the broker's abort of A's open transaction (transactionTimeoutMs + its 10 s check interval).
        await sleep(17_000);
        a.proc.kill('SIGCONT');
        t.diagnostic(`A frozen ${Date.now() - frozenAt} ms`);
        const aExit = a;
        const outcome = await waitFor(
          // Consuming again = rejoined the group after the resume (a new assignment) and both ready.
          async () => (aExit.proc.exitCode !== null ? 'exited' : aExit.logs().filter((l) => l.msg === 'partitions assigned').length > joinsBefore && (await ready(pa)) && (await ready(pb)) ? 'both' : undefined),
          90_000,
          () => `both consuming again after SIGCONT\nA:${aExit.output().slice(-3000)}`,
          250,
        );
        if (outcome === 'exited') assert.notEqual(a.proc.exitCode, 0, 'the frozen instance exited non-zero');
        // Alive again once it works (a committed micro-batch, or a session timeout in the group without a crash).
        else await waitFor(async () => (await httpGet(pa, '/healthz')).status === 200, 30_000, () => `A's /healthz 200 again:\n${aExit.output().slice(-2000)}`, 200);
        t.diagnostic(`after SIGCONT: ${outcome}; A log: ${a.logs().filter((l) => Number(l.level) >= 50 || /crashed|recreated|working again/.test(String(l.msg))).map((l) => String(l.msg).slice(0, 160)).join(" | ")}`);
        const r = decodeResults(
          await collect(broker.brokers, [topics.output, topics.deadLetter], (g) => coverage(decodeResults(g, topics)).size >= N, { timeoutMs: 90_000, lingerMs: 2000 }),
          topics,
        );
        const cov = coverage(r);
        const dups = [...cov.values()].filter((n) => n > 1).length;
        t.diagnostic(`${mode}: answered ${cov.size}/${N}, duplicated offsets ${dups}`);
        assert.equal(cov.size, N, 'lost = 0');
        if (mode === 'transactions') assert.equal(dups, 0, 'no duplicates for read_committed readers');
        // Both can stop cleanly.
        a.proc.kill('SIGTERM');
        b.proc.kill('SIGTERM');
        assert.equal(await within(b.exited, 45_000, 'B exits'), 0);
        if (outcome === 'both') assert.equal(await within(a.exited, 45_000, 'A exits'), 0);
      } catch (e) {
        t.diagnostic(`A:\n${a?.output().slice(-3000)}\nB:\n${b?.output().slice(-2000)}`);
        throw e;
      } finally {
        if (a?.proc.signalCode === null && a.proc.exitCode === null) a.proc.kill('SIGCONT');
        killIfRunning(a);
        killIfRunning(b);
      }
    });
  }
  test('exactly-once: a freeze between the membership heartbeat and the commit is fenced (transaction aborted, no zombie commit, no duplicates)', { timeout: 180_000 }, async (t) => {
    // The worst moment: kafkajs's sendOffsets carries no group generation (KIP-447), and the broker
    // aborts a timed-out transaction only on its 10 s cleanup pass, so a member resumed after its
    // partition moved could still commit a micro-batch the new owner redoes. A blocks its event
    // loop there for 9 s (session 6 s); B takes the partition over meanwhile.
    const N = 300;
    const topics = guardTopics('zombie');
    await createTopics(broker.brokers, [topics.input], 2);
    await createTopics(broker.brokers, [topics.output, topics.deadLetter, topics.alerts], 1);
    const raw = rawConfig(topics, { brokers: broker.brokers, maxBatchSize: 8, transactions: true });
    raw.consumer = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 1000, rebalanceTimeoutMs: 12_000, transactionTimeoutMs: 5000, restartBackoffMs: 500 };
    const cfg = writeConfigFile(raw);
    const all = await samples(N, { adversarialRatio: 0.3, eps: 0.3, seed: 47, idPrefix: 'zb' });
    let a: CliChild | undefined;
    let b: CliChild | undefined;
    try {
      a = startChild(['--import', 'tsx', 'test/faults/guardChild.ts', cfg], { VQGUARD_TEST_BLOCK_AT_COMMIT: '3:9000' });
      b = startChild(['--import', 'tsx', 'test/faults/guardChild.ts', cfg], {});
      const [pa, pb] = await Promise.all([cliOpsPort(a), cliOpsPort(b)]);
      const ready = async (p: number) => (await httpGet(p, '/readyz').catch(() => ({ status: 0 }))).status === 200;
      await waitFor(async () => (await ready(pa)) && (await ready(pb)), 90_000, () => `both ready\nA:${a!.output().slice(-1500)}\nB:${b!.output().slice(-1500)}`, 200);
      await produce(broker.brokers, topics.input, all.map((r, i) => ({ key: r.id, value: r.value, partition: i % 2 })));
      const aa = a;
      await waitFor(() => aa.logs().some((l) => l.msg === 'test: event loop unblocked'), 90_000, () => `A blocked and resumed\nA:${aa.output().slice(-2000)}`, 200);
      const r = decodeResults(
        await collect(broker.brokers, [topics.output, topics.deadLetter], (g) => coverage(decodeResults(g, topics)).size >= N, { timeoutMs: 90_000, lingerMs: 4000 }),
        topics,
      );
      const cov = coverage(r);
      const dups = [...cov.values()].filter((n) => n > 1).length;
      const fenced = a.logs().filter((l) => /membership bound/.test(String(l.msg)));
      t.diagnostic(`answered ${cov.size}/${N}, duplicated offsets ${dups}; A fenced ${fenced.length}x (age ${fenced.map((l) => l.ageMs).join(', ')} ms)`);
      assert.ok(fenced.length >= 1, 'the resumed instance refused to commit (fence)');
      assert.ok(Number(fenced[0]!.ageMs) >= 9000, 'the fence saw the whole pause');
      assert.equal(cov.size, N, 'lost = 0');
      assert.equal(dups, 0, 'no duplicates for read_committed readers');
      a.proc.kill('SIGTERM');
      b.proc.kill('SIGTERM');
      assert.equal(await within(b.exited, 45_000, 'B exits'), 0);
      assert.equal(await within(a.exited, 45_000, 'A exits'), 0);
    } catch (e) {
      t.diagnostic(`A:\n${a?.output().slice(-3000)}\nB:\n${b?.output().slice(-2000)}`);
      throw e;
    } finally {
      killIfRunning(a);
      killIfRunning(b);
    }
  });
});
