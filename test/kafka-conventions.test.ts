// Kafka conventions (issue 18, points 2 and 3) against a real broker started here with
// auto.create.topics.enable=false (tools/localBroker.ts, serverProperties), so a topic the guard
// needs and nobody created stays missing:
//   - kafka.checkTopics: missing topics named with their roles, `vqguard run` exits 78, nothing created;
//   - outputs and alerts keep the input key (Java-compatible partitioning) and headers plus the
//     verdict headers; no kafkajs partitioner or "limiting retries" warning in exactly-once mode;
//   - deadLetter format connect (the original verbatim, __connect.errors.* headers) and avro (the
//     envelope with key and timestamp); `vqguard dlq replay` sends both back as they were;
//   - producer.compression: the guard's batches on disk carry the codec; every codec round-trips;
//   - a dead letter that cannot fit at all is dropped, logged and counted, not silently lost.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Kafka, logLevel, Partitioners, type IHeaders, type PartitionerArgs } from 'kafkajs';
import avro from 'avsc';
import { startLocalBroker, type LocalBroker } from '../tools/localBroker.ts';
import { createTopics, uniqueTopic } from './helpers/broker.ts';
import { collect, guardTopics, LogSink, rawConfig, REPO, samples, waitFor, within, writeConfigFile, parseMetrics, metricSum, type Collected } from './helpers/guard.ts';
import { parseConfig } from '../src/config/schema.ts';
import { Guard, createLogger } from '../src/consumer/guard.ts';
import { MissingTopicsError } from '../src/consumer/runner.ts';
import { useCompression } from '../src/kafka/codecs.ts';
import { dlqReplay, readDeadLetter } from '../src/replay/dlqReplay.ts';
import { assemble, fitConnectDeadLetter, fitDeadLetter, messageBytes, type InMessage } from '../src/consumer/processChunk.ts';
import { decodeAlert, decodeDeadLetter, deadLetterType, encodeDeadLetter } from '../src/records/avro.ts';
import type { Compression } from '../src/config/schema.ts';
import { GuardMetrics } from '../src/ops/metrics.ts';

const PARTITIONS = 3;

/** The partition the Java client (murmur2) picks for a key among n partitions. */
function javaPartition(topic: string, key: string, n: number): number {
  const p = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: n }, (_, i) => ({ partitionId: i, leader: 0, replicas: [0], isr: [0], partitionErrorCode: 0 }));
  return p({ topic, partitionMetadata, message: { key, value: null } } as unknown as PartitionerArgs);
}

/** Record batches of a partition's log segments on disk: their compression codec (attributes & 7). */
function batchCodecs(dataDir: string, topic: string, partition: number): number[] {
  const dir = join(dataDir, `${topic}-${partition}`);
  const out: number[] = [];
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.log')).sort()) {
    const buf = readFileSync(join(dir, f));
    for (let pos = 0; pos + 23 <= buf.length; ) {
      const len = buf.readInt32BE(pos + 8);
      if (len <= 0) break;
      const attributes = buf.readInt16BE(pos + 21);
      if (!(attributes & 0x20)) out.push(attributes & 0x7); // not a control batch (transaction markers)
      pos += 12 + len;
    }
  }
  return out;
}

const CODEC_ID: Record<Compression, number> = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 };

function headerString(v: IHeaders[string]): string | undefined {
  if (v === undefined) return undefined;
  return String(Array.isArray(v) ? v[0] : v);
}

describe('Kafka conventions on a broker with auto-create off', { timeout: 600_000 }, () => {
  let broker: LocalBroker;
  let kafka: Kafka;

  before(async () => {
    broker = await startLocalBroker({ serverProperties: { 'auto.create.topics.enable': 'false' } });
    kafka = new Kafka({ clientId: 'vqguard-test-conventions', brokers: broker.brokers, logLevel: logLevel.NOTHING });
  });
  after(async () => {
    await broker?.stop();
  });

  async function send(topic: string, messages: { key: string | null; value: Buffer; headers?: IHeaders }[], compression?: Compression): Promise<void> {
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    try {
      await producer.send({ topic, acks: -1, messages, compression: compression ? useCompression(compression) : undefined });
    } finally {
      await producer.disconnect();
    }
  }

  async function topicNames(): Promise<string[]> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      return await admin.listTopics();
    } finally {
      await admin.disconnect();
    }
  }

  test('outputs and alerts keep the input key and headers; connect and avro dead letters; zstd on disk; no partitioner or EoS-retry warning', async () => {
    // Topic A: Connect-format dead letters; topic B: Avro envelopes. Exactly-once, zstd.
    const a = guardTopics('conv-a');
    const b = guardTopics('conv-b');
    await createTopics(broker.brokers, [a.input, a.output], PARTITIONS);
    await createTopics(broker.brokers, [a.deadLetter, a.alerts, b.input, b.output, b.deadLetter], 1);
    const raw = rawConfig(a, { brokers: broker.brokers, transactions: true }) as { topics: Record<string, unknown>[]; producer?: unknown };
    raw.topics[0]!.deadLetter = { topic: a.deadLetter, format: 'connect' };
    raw.topics.push({ ...raw.topics[0]!, input: b.input, output: b.output, deadLetter: { topic: b.deadLetter, format: 'avro' } });
    raw.producer = { compression: 'zstd' };
    const sink = new LogSink();
    // The guard's clients are made before any other producer in this process (kafkajs warns about
    // the partitioner once per process, on the first producer made without one).
    const guard = new Guard(parseConfig(raw), { baseDir: REPO, httpPort: 0, logger: createLogger(sink) });
    const recs = await samples(24, { adversarialRatio: 0.5, eps: 0.3, seed: 41, idPrefix: 'conv' });
    try {
      await within(guard.start(), 120_000, 'guard.start()');
      await waitFor(() => guard.readiness().ready, 60_000, 'ready');
      const traceparent = (i: number) => `00-${i.toString(16).padStart(32, '0')}-${(i + 1).toString(16).padStart(16, '0')}-01`;
      // Keys differ from the record ids (ids travel in the Avro value); one record has no key.
      const good = recs.map((r, i) => ({
        key: i === 5 ? null : `user-${i % 7}-${r.id}`,
        value: r.value,
        headers: { traceparent: traceparent(i), 'x-correlation-id': `corr-${i}`, 'vqguard-score': 'forged by the producer' } as IHeaders,
      }));
      await send(a.input, good);
      const garbage = [0, 1, 2].map((i) => ({ key: `bad-key-${i}`, value: Buffer.from(`not an image ${i}`), headers: { traceparent: traceparent(100 + i), 'x-correlation-id': `bad-${i}` } as IHeaders }));
      await send(a.input, garbage);
      await send(b.input, garbage);

      const got = await collect(broker.brokers, [a.output, a.alerts, a.deadLetter, b.deadLetter], (g) => g.filter((m) => m.topic === a.output).length >= good.length && g.filter((m) => m.topic === a.deadLetter).length >= 3 && g.filter((m) => m.topic === b.deadLetter).length >= 3, { timeoutMs: 120_000 });
      const outs = got.filter((m) => m.topic === a.output);
      assert.equal(outs.length, good.length, 'one output per good record');
      const byCorr = new Map(good.map((g, i) => [`corr-${i}`, g]));
      for (const o of outs) {
        const src = byCorr.get(o.headers['x-correlation-id']!);
        assert.ok(src, `output carries the input's correlation id: ${JSON.stringify(o.headers)}`);
        assert.equal(o.key, src.key, 'the input key');
        assert.equal(o.headers.traceparent, src.headers!.traceparent, 'W3C traceparent kept');
        assert.match(o.headers['vqguard-flagged']!, /^(true|false)$/);
        assert.match(o.headers['vqguard-score']!, /^-?\d+\.\d{6}$/, 'the verdict header replaces a forged one');
        if (src.key !== null) assert.equal(o.partition, javaPartition(a.output, src.key, PARTITIONS), `partitioned like the Java client (${src.key})`);
      }
      const alerts = got.filter((m) => m.topic === a.alerts);
      assert.ok(alerts.length >= 3, `some records flagged (${alerts.length})`);
      for (const m of alerts) {
        const al = decodeAlert(m.value);
        assert.ok(al.ok);
        const i = good.findIndex((g) => g.headers!['x-correlation-id'] === m.headers['x-correlation-id']);
        assert.ok(i >= 0, 'alert keeps the input headers');
        assert.equal(m.key, good[i]!.key ?? al.record.id, 'alert keyed by the input key (the id when there is none)');
        assert.equal(m.headers['vqguard-flagged'], 'true');
        assert.equal(m.headers.traceparent, good[i]!.headers!.traceparent);
      }

      // Connect format: the original verbatim plus Connect's context headers.
      const dlqA = got.filter((m) => m.topic === a.deadLetter);
      assert.equal(dlqA.length, 3);
      for (const m of dlqA) {
        // The input has 3 partitions: dead letters of keyed records arrive in any order.
        const i = garbage.findIndex((g) => g.key === m.key);
        assert.ok(i >= 0, `the input key: ${m.key}`);
        assert.deepEqual(m.value, garbage[i]!.value, 'the original value, not an envelope');
        assert.equal(m.headers.traceparent, garbage[i]!.headers!.traceparent);
        assert.equal(m.headers['__connect.errors.topic'], a.input);
        assert.match(m.headers['__connect.errors.partition']!, /^\d+$/);
        assert.match(m.headers['__connect.errors.offset']!, /^\d+$/);
        assert.match(m.headers['__connect.errors.exception.class.name']!, /^io\.vqguard\./);
        assert.ok(m.headers['__connect.errors.exception.message']!.length > 0);
        assert.ok(m.headers['vqguard-reason']);
      }
      // Avro envelope: key and timestamp kept.
      const dlqB = got.filter((m) => m.topic === b.deadLetter);
      assert.equal(dlqB.length, 3);
      for (const [i, m] of dlqB.entries()) {
        const d = decodeDeadLetter(m.value);
        assert.ok(d.ok);
        assert.equal(d.record.key?.toString(), garbage[i]!.key);
        assert.ok(d.record.timestamp !== null && Math.abs(d.record.timestamp - Date.now()) < 600_000, 'the original timestamp');
        assert.deepEqual(d.record.original, garbage[i]!.value);
        assert.equal(d.record.headers['x-correlation-id'], `bad-${i}`);
      }

      // zstd on disk, for the guard's batches (outputs, alerts, dead letters).
      const dataDir = join(broker.dir, 'data');
      for (const [topic, parts] of [[a.output, PARTITIONS], [a.deadLetter, 1], [a.alerts, 1]] as const) {
        const codecs = Array.from({ length: parts }, (_, p) => batchCodecs(dataDir, topic, p)).flat();
        assert.ok(codecs.length > 0 && codecs.every((c) => c === CODEC_ID.zstd), `${topic}: every batch zstd (${codecs.join(',')})`);
      }

      const warnings = sink.records().filter((l) => /partitioner|Limiting retries/i.test(String(l.msg)));
      assert.deepEqual(warnings.map((l) => l.msg), [], 'no kafkajs partitioner or EoS-retry warning');

      // dlq replay: both formats back with the original key, value and headers.
      const back = uniqueTopic('conv-replayed');
      await createTopics(broker.brokers, [back], 1);
      const rA = await dlqReplay({ brokers: broker.brokers, topic: a.deadLetter, to: back });
      const rB = await dlqReplay({ brokers: broker.brokers, topic: b.deadLetter, to: back, limit: 2 });
      assert.deepEqual([rA.read, rA.sent, rA.formats.connect, rB.read, rB.sent, rB.formats.avro, rB.skipped.limit], [3, 3, 0 + 3, 3, 2, 3, 1]);
      const rC = await dlqReplay({ brokers: broker.brokers, topic: b.deadLetter, to: back, reasons: ['no_such_reason'], dryRun: true });
      assert.deepEqual([rC.sent, rC.skipped.reason], [0, 3]);
      const replayed = await collect(broker.brokers, [back], (g) => g.length >= 5, { timeoutMs: 60_000, lingerMs: 500 });
      assert.equal(replayed.length, 5);
      // The first 3 from A's dead letters (any order), then B's first 2 (one partition: in order).
      const view = (key: string | null, value: Buffer, tp: unknown, corr: unknown) => JSON.stringify([key, value.toString('hex'), String(tp), String(corr)]);
      const want = (g: (typeof garbage)[number]) => view(g.key, g.value, g.headers!.traceparent, headerString(g.headers!['x-correlation-id']));
      const seen = replayed.map((m) => view(m.key, m.value, m.headers.traceparent, m.headers['x-correlation-id']));
      assert.deepEqual(seen.slice(0, 3).sort(), garbage.map(want).sort(), 'connect dead letters back as they were');
      assert.deepEqual(seen.slice(3), garbage.slice(0, 2).map(want), 'avro dead letters back as they were');
      for (const m of replayed) {
        assert.ok(!Object.keys(m.headers).some((k) => k.startsWith('__connect.') || k === 'vqguard-reason'), 'context headers are not sent back');
        assert.match(m.headers['vqguard-replayed-from']!, /\/0\/\d+$/);
      }

      // The CLI: usage and a dry run (loads no TensorFlow: dlq is a light command).
      const cli = spawnSync(process.execPath, ['bin/vqguard.mjs', 'dlq', 'replay', '--topic', a.deadLetter, '--to', back, '--dry-run', '--json'], {
        cwd: REPO, encoding: 'utf8', timeout: 60_000, env: { ...process.env, KAFKA_BROKERS: broker.brokers.join(',') },
      });
      assert.equal(cli.status, 0, cli.stderr);
      const j = JSON.parse(cli.stdout) as { read: number; sent: number; dryRun: boolean; formats: { connect: number } };
      assert.deepEqual([j.read, j.sent, j.dryRun, j.formats.connect], [3, 3, true, 3]);
    } finally {
      await within(guard.stop(), 30_000, 'guard.stop()');
    }
  });

  test('kafka.checkTopics: missing topics named with their roles; the CLI exits 78; nothing is auto-created', async () => {
    const t = guardTopics('conv-missing');
    await createTopics(broker.brokers, [t.input, t.output], 1);
    const raw = rawConfig(t, { brokers: broker.brokers });
    const guard = new Guard(parseConfig(raw), { baseDir: REPO, httpPort: 0, logger: createLogger(new LogSink()) });
    try {
      await assert.rejects(guard.start(), (e: Error) => {
        assert.ok(e instanceof MissingTopicsError);
        assert.deepEqual(e.missing.map((m) => m.topic).sort(), [t.alerts, t.deadLetter].sort());
        assert.match(e.message, new RegExp(`${t.deadLetter.replaceAll('.', '\\.')} \\(dead letters of ${t.input.replaceAll('.', '\\.')}\\)`));
        return true;
      });
    } finally {
      await guard.stop();
    }
    const file = writeConfigFile(raw);
    const r = spawnSync(process.execPath, ['bin/vqguard.mjs', 'run', '--config', file, '--http-port', '0'], { cwd: REPO, encoding: 'utf8', timeout: 180_000 });
    assert.equal(r.status, 78, r.stderr.slice(-2000));
    assert.match(r.stderr, /2 topics missing on the broker/);
    assert.match(r.stderr, new RegExp(`${t.alerts.replaceAll('.', '\\.')} \\(alerts of`));
    const names = await topicNames();
    assert.ok(!names.includes(t.deadLetter) && !names.includes(t.alerts), 'nothing was created');
    // `vqguard topics create` makes exactly the missing ones, from the same configuration.
    const c = spawnSync(process.execPath, ['bin/vqguard.mjs', 'topics', 'create', '--config', file, '--partitions', '2'], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    assert.equal(c.status, 0, c.stderr.slice(-2000));
    for (const x of [t.deadLetter, t.alerts]) assert.match(c.stdout, new RegExp(`^created  ${x.replaceAll('.', '\\.')}  \\(`, 'm'));
    for (const x of [t.input, t.output]) assert.match(c.stdout, new RegExp(`^exists   ${x.replaceAll('.', '\\.')}  \\(`, 'm'));
    const created = await topicNames();
    assert.ok(created.includes(t.deadLetter) && created.includes(t.alerts), 'the missing topics were created');
    const admin = new Kafka({ clientId: 'conv-topics', brokers: broker.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const md = await admin.fetchTopicMetadata({ topics: [t.deadLetter, t.input] });
      assert.deepEqual(md.topics.map((x) => [x.name, x.partitions.length]).sort(), [[t.deadLetter, 2], [t.input, 1]].sort(), 'new topics get --partitions; existing ones are untouched');
    } finally {
      await admin.disconnect();
    }
    // checkTopics: false skips the check (a broker that auto-creates would then create them).
    (raw.kafka as Record<string, unknown>).checkTopics = false;
    const unchecked = new Guard(parseConfig(raw), { baseDir: REPO, httpPort: 0, logger: createLogger(new LogSink()) });
    try {
      await within(unchecked.start(), 120_000, 'start without the check');
    } finally {
      await unchecked.stop();
    }
  });

  test('every producer.compression round-trips through the broker and is the codec on disk', async () => {
    for (const c of ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const) {
      const topic = uniqueTopic(`codec-${c}`);
      await createTopics(broker.brokers, [topic], 1);
      // Small values, plus two of 150 kB (half random, half repetitive) so a batch spans several
      // 64 KB LZ4 blocks and several zstd windows; the broker decompresses each batch with the Java codecs.
      const rnd = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, j) => (j * 2654435761 + seed * 97) >>> 24));
      const messages = Array.from({ length: 50 }, (_, i) => ({
        key: `k${i}`,
        value: i === 10 || i === 30 ? Buffer.concat([rnd(75_000, i), Buffer.from(`value ${i} `.repeat(7500))]) : Buffer.from(`value ${i} `.repeat(40)),
        headers: { h: `v${i}` },
      }));
      await send(topic, messages, c);
      const got: Collected[] = await collect(broker.brokers, [topic], (g) => g.length >= 50, { timeoutMs: 60_000 });
      assert.deepEqual(got.map((m) => [m.key, m.value.toString(), m.headers.h]), messages.map((m) => [m.key, m.value.toString(), m.headers.h]), c);
      const codecs = batchCodecs(join(broker.dir, 'data'), topic, 0);
      assert.ok(codecs.length > 0 && codecs.every((x) => x === CODEC_ID[c]), `${c}: codec ids on disk ${codecs.join(',')}`);
    }
  });
});

describe('dead letters that cannot fit, and old envelopes (no broker)', () => {
  const m: InMessage = { key: Buffer.from('the-key'), value: Buffer.alloc(5000, 7), headers: { traceparent: 'tp', big: 'x'.repeat(3000) }, offset: '9', timestamp: '1700000000000' };

  test('connect format: truncated to fit (input headers dropped first), else null', () => {
    const whole = fitConnectDeadLetter(m, { topic: 'in', partition: 2, reason: 'corrupt_image', detail: 'bad' }, 100_000);
    assert.equal(whole.truncated, false);
    assert.deepEqual(whole.msg!.value, m.value);
    assert.equal(whole.msg!.timestamp, m.timestamp);
    const cut = fitConnectDeadLetter(m, { topic: 'in', partition: 2, reason: 'corrupt_image', detail: 'bad' }, 2500);
    assert.ok(cut.truncated && cut.msg && messageBytes(cut.msg) <= 2500);
    assert.equal(cut.msg.headers!['vqguard-original-length'], '5000');
    assert.equal(cut.msg.headers!.big, undefined, 'the big input header went first');
    assert.equal(fitConnectDeadLetter(m, { topic: 'in', partition: 2, reason: 'corrupt_image', detail: 'bad' }, 300).msg, null);
  });

  test('a dead letter that fits nowhere is marked dropped (the guard logs and counts it), the output still goes', () => {
    const oc = { kind: 'dead' as const, m, id: 'r1', reason: 'corrupt_image' as const, detail: 'bad' };
    for (const format of ['avro', 'connect'] as const) {
      const r = assemble([oc], { topic: 'in', partition: 0, output: 'out', deadLetter: 'dlq', deadLetterFormat: format, alerts: 'al' }, { maxBytes: () => 200 });
      assert.deepEqual(r.deadLetters.map((d) => d.dropped), [true], format);
      assert.equal(r.out.get('dlq'), undefined, `${format}: nothing sent to the dead-letter topic`);
    }
    const d = fitDeadLetter({ id: 'r1', reason: 'x', detail: 'y', original: m.value!, topic: 'in', partition: 0, offset: '1', at: 1 }, 200);
    assert.equal(d.msg, null);
  });

  test('dlq replay reads envelopes written before key and timestamp existed, and Connect-format records', () => {
    const v1 = avro.Type.forSchema({ ...(deadLetterType.schema() as object), fields: (deadLetterType.schema() as { fields: { name: string }[] }).fields.filter((f) => f.name !== 'key' && f.name !== 'timestamp') } as avro.Schema);
    const old = v1.toBuffer({ id: 'r9', reason: 'bad_avro', detail: 'd', original: Buffer.from('orig'), headers: { a: 'b' }, topic: 'in', partition: 0, offset: '4', at: 5, originalLength: null, originalSha256: null });
    const r = readDeadLetter({ key: Buffer.from('r9'), value: old, offset: '0', timestamp: '0' });
    assert.deepEqual([r?.format, r?.reason, r?.value?.toString(), String(r?.key), r?.headers.a], ['avro', 'bad_avro', 'orig', 'r9', 'b']);
    const now = readDeadLetter({ key: Buffer.from('id'), value: encodeDeadLetter({ reason: 'poison', detail: 'd', original: Buffer.from('o'), topic: 'in', partition: 0, offset: '1', at: 1, key: Buffer.from('orig-key') }), offset: '0', timestamp: '0' });
    assert.equal(String(now?.key), 'orig-key', 'the envelope key, not the message key');
    const c = fitConnectDeadLetter(m, { topic: 'in', partition: 2, reason: 'corrupt_image', detail: 'bad' }, 100_000).msg!;
    const back = readDeadLetter({ key: Buffer.from('the-key'), value: c.value, headers: c.headers, offset: '0', timestamp: '0' });
    assert.deepEqual(Object.keys(back!.headers).sort(), ['big', 'traceparent']);
    assert.equal(back?.reason, 'corrupt_image');
    assert.equal(readDeadLetter({ key: null, value: Buffer.from([1, 2, 3]), offset: '0', timestamp: '0' }), null, 'neither format');
  });

  test('vqguard_dead_letters_dropped_total counts dropped dead letters per topic and reason', async () => {
    const metrics = new GuardMetrics();
    assert.match(await metrics.text(), /# TYPE vqguard_dead_letters_dropped_total counter/);
    metrics.deadLettersDropped.inc({ topic: 'in', reason: 'corrupt_image' });
    assert.equal(metricSum(parseMetrics(await metrics.text()).samples, 'vqguard_dead_letters_dropped_total', { reason: 'corrupt_image' }), 1);
  });
});
