// Configurations at run time (real broker), beyond the default one the stream tests use:
// flag actions forward-original and quarantine, several topics in one config, inputPattern,
// several pipelines on one topic, outputFormat: input; and the CLI's stop paths: SIGINT (exit 0)
// and a stop that outlasts shutdownTimeoutMs (exit 1, see README "Exit codes").
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { createTopics, getTestBroker, uniqueTopic, type TestBroker } from './helpers/broker.ts';
import {
  cliOpsPort, collect, coverage, decodeResults, guardTopics, httpGet, killIfRunning, LogSink, produce, rawConfig, REPO, samples, startCli, waitFor, within,
  writeConfigFile, type CliChild, type GuardTopics, type OutMsg, type Results,
} from './helpers/guard.ts';
import { startKafkaProxy, type KafkaProxy } from './helpers/proxy.ts';
import { parseConfig, type GuardConfig } from '../src/config/schema.ts';
import { Guard, createLogger } from '../src/consumer/guard.ts';
import { decodeImageRecord } from '../src/records/avro.ts';
import type { SampleRecord } from '../src/sample/produceSample.ts';

async function runGuard(t: TestContext, config: GuardConfig, n: number, produceFn: () => Promise<void>): Promise<void> {
  const sink = new LogSink();
  let answered = 0;
  const guard = new Guard(config, {
    baseDir: REPO, httpPort: 0, logger: createLogger(sink),
    events: { onChunk: (_t, _p, r) => void (answered += r.outputs.length + r.deadLetters.length) },
    onFatal: (e) => sink.write(`${JSON.stringify({ level: 60, msg: `fatal: ${e.message}` })}\n`),
  });
  try {
    await within(guard.start(), 60_000, 'guard.start()');
    await produceFn();
    await waitFor(() => answered >= n, 60_000, () => `${n} answered (got ${answered})`);
  } catch (e) {
    t.diagnostic(sink.tail(30));
    throw e;
  } finally {
    await within(guard.stop(), 30_000, 'guard.stop()');
  }
}

async function read(brokers: string[], t: GuardTopics, n: number, extra: string[] = []): Promise<Results> {
  const got = await collect(brokers, [t.output, t.deadLetter, t.alerts, ...extra], (g) => coverage(decodeResults(g, t)).size >= n, { timeoutMs: 30_000, lingerMs: 500 });
  return decodeResults(got, t);
}

const msgs = (recs: SampleRecord[], partitions = 1): OutMsg[] => recs.map((r, i) => ({ key: r.id, value: r.value, partition: i % partitions }));
const pngOf = (s: SampleRecord): Buffer => {
  const r = decodeImageRecord(s.value);
  assert.ok(r.ok);
  return r.record.image;
};

describe('configurations at run time (real broker)', { timeout: 600_000 }, () => {
  let broker: TestBroker;
  let recs: SampleRecord[];
  before(async () => {
    broker = await getTestBroker();
    recs = await samples(40, { adversarialRatio: 0.5, eps: 0.3, seed: 51, idPrefix: 'topo' });
  });
  after(async () => {
    await broker?.stop();
  });

  const topicsFor = async (prefix: string): Promise<GuardTopics> => {
    const t = guardTopics(prefix);
    await createTopics(broker.brokers, [t.input, t.output, t.deadLetter, t.alerts], 1);
    return t;
  };

  test('action forward-original: the output carries the input image unchanged; flagged ones are still alerted', { timeout: 90_000 }, async (t) => {
    const topics = await topicsFor('fwd-orig');
    const cfg = parseConfig(rawConfig(topics, { brokers: broker.brokers, action: 'forward-original' }));
    const some = recs.slice(0, 20);
    await runGuard(t, cfg, some.length, () => produce(broker.brokers, topics.input, msgs(some)).then(() => undefined));
    const r = await read(broker.brokers, topics, some.length);
    assert.equal(r.outputs.length, some.length);
    const byId = new Map(some.map((s) => [s.id, pngOf(s)]));
    for (const o of r.outputs) {
      assert.ok(o.image.equals(byId.get(o.id)!), `${o.id}: the original bytes`);
      assert.equal(o.action, 'forward-original');
    }
    const flagged = r.outputs.filter((o) => o.verdict.flagged).map((o) => o.id).sort();
    assert.ok(flagged.length > 0, 'some flagged');
    assert.deepEqual(r.alerts.map((a) => a.id).sort(), flagged, 'one alert per flagged record');
  });

  test('action quarantine: flagged records go to the dead-letter topic as quarantined (with an alert), clean ones to the output', { timeout: 90_000 }, async (t) => {
    const topics = await topicsFor('quarantine');
    const cfg = parseConfig(rawConfig(topics, { brokers: broker.brokers, action: 'quarantine' }));
    const some = recs.slice(0, 20);
    await runGuard(t, cfg, some.length, () => produce(broker.brokers, topics.input, msgs(some)).then(() => undefined));
    const r = await read(broker.brokers, topics, some.length);
    const q = r.deadLetters.filter((d) => d.reason === 'quarantined');
    assert.ok(q.length > 0, 'some quarantined');
    assert.equal(q.length + r.outputs.length, some.length, 'each record either quarantined or output');
    assert.ok(r.outputs.every((o) => !o.verdict.flagged), 'no flagged record reaches the output');
    assert.deepEqual(r.alerts.map((a) => a.id).sort(), q.map((d) => d.id).sort(), 'an alert per quarantined record');
    for (const d of q) assert.match(d.detail, /combined score/);
  });

  test('two topics in one config, and an inputPattern: each input answered into its own topics', { timeout: 120_000 }, async (t) => {
    const a = await topicsFor('multi-a');
    const b = await topicsFor('multi-b');
    const base = uniqueTopic('pat');
    const patIn = [`${base}.x.in`, `${base}.y.in`];
    const patOut = guardTopics('pat-out');
    await createTopics(broker.brokers, [...patIn, patOut.output, patOut.deadLetter, patOut.alerts], 1);
    const raw = rawConfig(a, { brokers: broker.brokers });
    const tmpl = (raw.topics as Record<string, unknown>[])[0]!;
    raw.topics = [
      tmpl,
      { ...tmpl, input: b.input, output: b.output, deadLetter: b.deadLetter, alerts: b.alerts },
      { ...tmpl, input: undefined, inputPattern: `^${base.replace(/[.-]/g, (c) => `\\${c}`)}\\.[xy]\\.in$`, output: patOut.output, deadLetter: patOut.deadLetter, alerts: patOut.alerts },
    ];
    const cfg = parseConfig(JSON.parse(JSON.stringify(raw)));
    await runGuard(t, cfg, 20, async () => {
      await produce(broker.brokers, a.input, msgs(recs.slice(0, 5)));
      await produce(broker.brokers, b.input, msgs(recs.slice(5, 10)));
      await produce(broker.brokers, patIn[0]!, msgs(recs.slice(10, 15)));
      await produce(broker.brokers, patIn[1]!, msgs(recs.slice(15, 20)));
    });
    const ra = await read(broker.brokers, a, 5);
    const rb = await read(broker.brokers, b, 5);
    const rp = await read(broker.brokers, patOut, 10);
    assert.deepEqual(ra.outputs.map((o) => o.id).sort(), recs.slice(0, 5).map((r) => r.id).sort());
    assert.ok(ra.outputs.every((o) => o.source.topic === a.input));
    assert.deepEqual(rb.outputs.map((o) => o.id).sort(), recs.slice(5, 10).map((r) => r.id).sort());
    assert.ok(rb.outputs.every((o) => o.source.topic === b.input));
    assert.deepEqual(rp.outputs.map((o) => o.id).sort(), recs.slice(10, 20).map((r) => r.id).sort(), 'both topics matched by the pattern');
    assert.deepEqual([...new Set(rp.outputs.map((o) => o.source.topic))].sort(), patIn, 'sources name the matched topics');
  });

  test('several pipelines on one topic: every pipeline scored, combined by the calibration', { timeout: 90_000 }, async (t) => {
    const topics = await topicsFor('multi-pipe');
    // bits1 + median2 (the feature-squeezing pair) has a shipped calibration; both names go through
    // config validation (the stage registry) like any other pipeline.
    const cfg = parseConfig(rawConfig(topics, { brokers: broker.brokers, pipeline: ['bits1', 'median2'] }));
    assert.deepEqual(cfg.topics[0]!.pipelines, ['bits1', 'median2']);
    const some = recs.slice(0, 12);
    await runGuard(t, cfg, some.length, () => produce(broker.brokers, topics.input, msgs(some)).then(() => undefined));
    const r = await read(broker.brokers, topics, some.length);
    assert.equal(r.outputs.length, some.length);
    for (const o of r.outputs) {
      assert.equal(o.pipeline, 'bits1+median2');
      assert.ok(Object.keys(o.verdict.scores).some((k) => k.startsWith('bits1:')) && Object.keys(o.verdict.scores).some((k) => k.startsWith('median2:')), `scores of both pipelines: ${Object.keys(o.verdict.scores).join(',')}`);
    }
  });

  test('outputFormat input: a raw JPEG comes back as a JPEG, a PNG as a PNG', { timeout: 90_000 }, async (t) => {
    const topics = await topicsFor('outfmt');
    const raw = rawConfig(topics, { brokers: broker.brokers });
    const topic = (raw.topics as Record<string, unknown>[])[0]!;
    topic.format = 'raw';
    topic.image = { outputFormat: 'input', formats: ['png', 'jpeg'] };
    const cfg = parseConfig(raw);
    const png = pngOf(recs[0]!);
    const jpeg = await sharp(png).jpeg({ quality: 95 }).toBuffer();
    await runGuard(t, cfg, 2, () =>
      produce(broker.brokers, topics.input, [
        { key: 'as-jpeg', value: jpeg, partition: 0, headers: { 'vqguard-id': 'as-jpeg' } },
        { key: 'as-png', value: png, partition: 0, headers: { 'vqguard-id': 'as-png' } },
      ]).then(() => undefined),
    );
    const r = await read(broker.brokers, topics, 2);
    const j = r.outputs.find((o) => o.id === 'as-jpeg')!;
    const p = r.outputs.find((o) => o.id === 'as-png')!;
    assert.equal(j.contentType, 'image/jpeg');
    assert.deepEqual([...j.image.subarray(0, 3)], [0xff, 0xd8, 0xff], 'JPEG bytes');
    assert.equal(p.contentType, 'image/png');
    assert.equal(p.image.subarray(1, 4).toString('latin1'), 'PNG');
    assert.deepEqual([(await sharp(j.image).metadata()).width, (await sharp(j.image).metadata()).height], [28, 28]);
  });

  test('CLI: SIGINT stops gracefully (exit 0); a stop outlasting shutdownTimeoutMs exits 1', { timeout: 150_000 }, async (t) => {
    const topics = await topicsFor('stops');
    await produce(broker.brokers, topics.input, msgs(recs.slice(0, 10)));
    let c: CliChild | undefined;
    let proxy: KafkaProxy | undefined;
    try {
      c = startCli(writeConfigFile(rawConfig(topics, { brokers: broker.brokers })), {});
      const cli = c;
      const port = await cliOpsPort(cli);
      await waitFor(async () => (await httpGet(port, '/readyz')).status === 200, 60_000, () => `ready:\n${cli.output().slice(-2000)}`, 200);
      cli.proc.kill('SIGINT');
      assert.equal(await within(cli.exited, 45_000, 'exit after SIGINT'), 0, cli.output().slice(-2000));
      assert.ok(cli.logs().some((l) => l.msg === 'shutting down: finishing in-flight batches' && l.signal === 'SIGINT'));
      assert.ok(cli.logs().some((l) => l.msg === 'vqguard stopped'));

      // Every broker response slowed to 2 s once ready: the stop (leave group, disconnect) outlasts 300 ms.
      const [host, p] = broker.brokers[0]!.split(':');
      proxy = await startKafkaProxy({ host: host!, port: Number(p) }, { delayMs: 0 });
      const raw = rawConfig(topics, { brokers: proxy.brokers });
      raw.shutdownTimeoutMs = 300;
      c = startCli(writeConfigFile(raw), {});
      const slow = c;
      const port2 = await cliOpsPort(slow);
      await waitFor(async () => (await httpGet(port2, '/readyz')).status === 200, 60_000, () => `ready:\n${slow.output().slice(-2000)}`, 200);
      proxy.setDelay(2000);
      const t0 = Date.now();
      slow.proc.kill('SIGTERM');
      assert.equal(await within(slow.exited, 20_000, 'exit after the shutdown timeout'), 1, slow.output().slice(-2000));
      t.diagnostic(`exited ${Date.now() - t0} ms after SIGTERM`);
      assert.ok(slow.logs().some((l) => l.msg === 'shutdown timed out; exiting'), 'the timeout is logged');
      assert.ok(!slow.logs().some((l) => l.msg === 'vqguard stopped'), 'not a completed stop');
    } finally {
      killIfRunning(c);
      await proxy?.close();
    }
  });
});
