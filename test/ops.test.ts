// The guard's operational surface, scraped from a running guard against a real broker
// (test/helpers/broker.ts): /healthz, /readyz, /metrics (every metric of src/ops/metrics.ts,
// with values that agree with the stream), structured logs without secrets or image bytes,
// and alert webhook delivery (retries against a local HTTP server; a dead endpoint never
// blocks the stream).
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTopics, getTestBroker, type TestBroker } from './helpers/broker.ts';
import {
  guardTopics, httpGet, LogSink, metricSum, parseMetrics, PIPELINE, produce, rawConfig, REPO, samples, waitFor, within,
  type GuardTopics, type OutMsg, type RawConfigOptions,
} from './helpers/guard.ts';
import { parseConfig } from '../src/config/schema.ts';
import { Guard, createLogger } from '../src/consumer/guard.ts';
import type { AlertEvent } from '../src/consumer/processChunk.ts';
import { freePort, startLocalBroker, type LocalBroker } from '../tools/localBroker.ts';
import { decodeImageRecord } from '../src/records/avro.ts';
import type { SampleRecord } from '../src/sample/produceSample.ts';

interface Running {
  guard: Guard;
  sink: LogSink;
  answered(): number;
  chunks(): number;
  alerts: AlertEvent[];
}

function newGuard(brokers: string[], t: GuardTopics, o: Omit<RawConfigOptions, 'brokers'> = {}, logLevel?: string): Running {
  const sink = new LogSink();
  let answered = 0;
  let chunks = 0;
  const alerts: AlertEvent[] = [];
  const prevLevel = process.env.VQGUARD_LOG_LEVEL;
  if (logLevel) process.env.VQGUARD_LOG_LEVEL = logLevel;
  const logger = createLogger(sink);
  if (logLevel) {
    if (prevLevel === undefined) delete process.env.VQGUARD_LOG_LEVEL;
    else process.env.VQGUARD_LOG_LEVEL = prevLevel;
  }
  const guard = new Guard(parseConfig(rawConfig(t, { ...o, brokers })), {
    baseDir: REPO,
    httpPort: 0,
    logger,
    events: {
      onChunk: (_t, _p, r) => {
        answered += r.outputs.length + r.deadLetters.length;
        chunks++;
      },
      onAlerts: (a) => alerts.push(...a),
    },
  });
  return { guard, sink, answered: () => answered, chunks: () => chunks, alerts };
}

async function topicsWith(brokers: string[], prefix: string, partitions: number): Promise<GuardTopics> {
  const t = guardTopics(prefix);
  await createTopics(brokers, [t.input], partitions);
  await createTopics(brokers, [t.output, t.deadLetter, t.alerts], 1);
  return t;
}

const pngOf = (s: SampleRecord): Buffer => {
  const r = decodeImageRecord(s.value);
  assert.ok(r.ok);
  return r.record.image;
};

/** The three kinds of malformed input used below, with their reason codes. */
function malformed(s: SampleRecord): { msg: Omit<OutMsg, 'partition'>; reason: string }[] {
  const png = pngOf(s);
  return [
    { msg: { key: 'bad-empty', value: Buffer.alloc(0) }, reason: 'empty' },
    { msg: { key: 'bad-avro', value: Buffer.from('definitely not avro, not an image either: 0123456789') }, reason: 'bad_avro' },
    { msg: { key: 'bad-png', value: png.subarray(0, 60), headers: { 'vqguard-id': 'bad-png' } }, reason: 'corrupt_image' },
  ];
}

function dump(t: TestContext, r: Running | undefined) {
  return (e: unknown): never => {
    if (r) t.diagnostic(r.sink.tail(40));
    throw e;
  };
}

/** A local HTTP server recording POSTed alerts; `fail(n)` answers n with 500 before 200s. */
async function alertServer(failFirst: number): Promise<{ url: (path?: string) => string; posts: { status: number; body: string; path: string }[]; close(): Promise<void> }> {
  const posts: { status: number; body: string; path: string }[] = [];
  let seen = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const status = req.method === 'POST' && seen++ >= failFirst ? 200 : 500;
      posts.push({ status, body, path: req.url ?? '' });
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path = '/alerts') => `http://127.0.0.1:${port}${path}`,
    posts,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

describe('ops endpoints, logs and webhook (real broker)', { timeout: 600_000 }, () => {
  let broker: TestBroker;
  let recs: SampleRecord[];

  before(async () => {
    broker = await getTestBroker();
    recs = await samples(200, { adversarialRatio: 0.5, eps: 0.3, seed: 21, idPrefix: 'ops' });
  });
  after(async () => {
    await broker?.stop();
  });

  test('/healthz, /readyz and /metrics of a running guard', { timeout: 120_000 }, async (t) => {
    const N_GOOD = 150;
    const topics = await topicsWith(broker.brokers, 'ops-endpoints', 2);
    const bad = malformed(recs[0]!);
    const msgs: OutMsg[] = recs.slice(0, N_GOOD).map((r, i) => ({ key: r.id, value: r.value, partition: i % 2 }));
    bad.forEach((b, i) => msgs.splice(20 + i * 40, 0, { ...b.msg, partition: i % 2 }));
    await produce(broker.brokers, topics.input, msgs);
    const N = msgs.length;

    const run = newGuard(broker.brokers, topics);
    assert.deepEqual(run.guard.readiness(), { ready: false, checks: { brokerConnected: false, modelsWarm: false, partitionsAssigned: false } }, 'not ready before start');
    // Hold the consumer back so the ops server can be seen up but not yet ready.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const startRunner = run.guard.runner.start.bind(run.guard.runner);
    run.guard.runner.start = async () => {
      await gate;
      return startRunner();
    };
    const started = run.guard.start();
    try {
      const port = await waitFor(() => run.guard.httpPort, 60_000, 'ops server up');
      const health = await httpGet(port, '/healthz');
      assert.equal(health.status, 200);
      assert.deepEqual(JSON.parse(health.body), { status: 'alive', checks: { consumerAlive: true } });
      const notReady = await httpGet(port, '/readyz');
      assert.equal(notReady.status, 503, 'not ready before partitions are assigned');
      assert.deepEqual(JSON.parse(notReady.body), { status: 'not ready', checks: { brokerConnected: false, modelsWarm: true, partitionsAssigned: false } });
      assert.match((await httpGet(port, '/metrics')).body, /^vqguard_ready 0$/m);
      assert.equal((await httpGet(port, '/nothing-here')).status, 404);
      assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST', signal: AbortSignal.timeout(5000) })).status, 405);

      release();
      await within(started, 60_000, 'guard.start()');
      await waitFor(async () => (await httpGet(port, '/readyz')).status === 200, 30_000, '/readyz 200 once partitions are assigned');
      const ready = JSON.parse((await httpGet(port, '/readyz')).body) as { checks: Record<string, boolean> };
      assert.deepEqual(ready.checks, { brokerConnected: true, modelsWarm: true, partitionsAssigned: true });

      await waitFor(() => run.answered() >= N, 90_000, () => `all ${N} answered (got ${run.answered()})`);
      // The lag gauge is set once a fetched batch is done; let the last one finish.
      await waitFor(async () => metricSum(parseMetrics((await httpGet(port, '/metrics')).body).samples, 'vqguard_in_flight_records') === 0, 10_000, 'nothing in flight');

      const scraped = await httpGet(port, '/metrics');
      assert.equal(scraped.status, 200);
      assert.match(scraped.contentType ?? '', /^text\/plain/);
      const { samples: m, types } = parseMetrics(scraped.body);

      // Every metric the guard defines is exposed, with its type.
      const src = readFileSync(join(REPO, 'src/ops/metrics.ts'), 'utf8');
      const declared = [...src.matchAll(/new client\.(Counter|Gauge|Histogram)\(\{\s*name: '([a-z_]+)'/g)].map((x) => [x[2]!, x[1]!.toLowerCase()] as const);
      assert.ok(declared.length >= 14, `metric declarations found in src/ops/metrics.ts (${declared.length})`);
      for (const [name, type] of declared) assert.equal(types.get(name), type, `${name} exposed as a ${type}`);
      for (const std of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
        assert.ok(m.some((s) => s.name === std), `default metric under its standard name: ${std}`);
      }
      assert.ok(!m.some((s) => s.name.startsWith('vqguard_process_') || s.name.startsWith('vqguard_nodejs_')), 'no prefixed process metrics');

      const topic = topics.input;
      const clean = metricSum(m, 'vqguard_records_produced_total', { topic, pipeline: PIPELINE, outcome: 'clean' });
      const flagged = metricSum(m, 'vqguard_records_produced_total', { topic, pipeline: PIPELINE, outcome: 'flagged' });
      const dead = metricSum(m, 'vqguard_records_dead_lettered_total', { topic });
      t.diagnostic(`consumed ${metricSum(m, 'vqguard_records_consumed_total', { topic })}, clean ${clean}, flagged ${flagged}, dead-lettered ${dead}, chunks ${run.chunks()}`);
      assert.equal(metricSum(m, 'vqguard_records_consumed_total', { topic }), N, 'consumed = records produced to the input');
      assert.equal(clean + flagged, N_GOOD, 'guarded outputs = well-formed inputs');
      assert.ok(clean > 0 && flagged > 0, 'both outcomes seen');
      assert.equal(metricSum(m, 'vqguard_records_flagged_total', { topic, pipeline: PIPELINE }), flagged, 'flagged counter = flagged outputs');
      assert.equal(flagged, run.alerts.length, 'one alert per flagged output');
      assert.equal(dead, bad.length, 'dead-lettered = malformed inputs');
      for (const b of bad) assert.equal(metricSum(m, 'vqguard_records_dead_lettered_total', { topic, reason: b.reason }), 1, `dead-lettered{reason="${b.reason}"}`);
      assert.equal(clean + flagged + dead, N, 'every consumed record is produced or dead-lettered');

      const chunks = run.chunks();
      assert.equal(metricSum(m, 'vqguard_batch_size_records_sum', { topic }), N, 'batch sizes add up to the records');
      assert.equal(metricSum(m, 'vqguard_batch_size_records_count', { topic }), chunks, 'one batch-size observation per micro-batch');
      assert.equal(metricSum(m, 'vqguard_batch_size_records_bucket', { topic, le: '+Inf' }), chunks);
      assert.ok(metricSum(m, 'vqguard_batch_size_records_bucket', { topic, le: '32' }) === chunks, 'no micro-batch above maxBatchSize (32)');
      assert.equal(metricSum(m, 'vqguard_batch_duration_seconds_count', { topic, pipeline: PIPELINE }), chunks);
      const batchSecs = metricSum(m, 'vqguard_batch_duration_seconds_sum', { topic, pipeline: PIPELINE });
      assert.ok(batchSecs > 0 && batchSecs < 120, `batch durations sum to ${batchSecs} s`);
      assert.equal(metricSum(m, 'vqguard_end_to_end_latency_seconds_count', { topic }), N, 'one end-to-end observation per record');
      const e2e = metricSum(m, 'vqguard_end_to_end_latency_seconds_sum', { topic }) / N;
      assert.ok(e2e > 0 && e2e < 300, `mean end-to-end latency ${e2e} s`);
      const buckets = m.filter((s) => s.name === 'vqguard_end_to_end_latency_seconds_bucket' && s.labels.topic === topic).map((s) => s.value);
      assert.ok(buckets.every((v, i) => i === 0 || v >= buckets[i - 1]!), 'cumulative buckets');

      const lag = m.filter((s) => s.name === 'vqguard_consumer_lag' && s.labels.topic === topic);
      assert.deepEqual(lag.map((s) => s.labels.partition).sort(), ['0', '1'], 'lag per partition');
      for (const s of lag) assert.equal(s.value, 0, `lag of partition ${s.labels.partition} once caught up`);
      assert.equal(metricSum(m, 'vqguard_in_flight_records'), 0);
      assert.equal(metricSum(m, 'vqguard_consumer_paused'), 0);
      assert.equal(metricSum(m, 'vqguard_ready'), 1);

      const backend = m.filter((s) => s.name === 'vqguard_backend_info');
      assert.equal(backend.length, 1);
      assert.equal(backend[0]!.value, 1);
      assert.match(backend[0]!.labels.package ?? '', /^@tensorflow\/tfjs/);
      assert.match(backend[0]!.labels.native ?? '', /^(true|false)$/);
      assert.match(backend[0]!.labels.gpu ?? '', /^(true|false)$/);
      assert.ok(backend[0]!.labels.tf_version, 'tf_version label');
      assert.match(backend[0]!.labels.backend ?? '', /^(cpu|cuda|webgpu|js)$/);
      assert.match(backend[0]!.labels.choice ?? '', /^(auto|cpu|cuda|webgpu)$/);
      if (backend[0]!.labels.backend !== 'cuda') assert.match(backend[0]!.labels.not_taken ?? '', /cuda: /, 'why CUDA was not taken');
      const models = m.filter((s) => s.name === 'vqguard_model_info' && s.labels.topic === topic);
      assert.deepEqual(models.map((s) => s.labels.model).sort(), ['classifier', 'purifier-split1', 'purifier-split2']);
      for (const s of models) {
        assert.equal(s.value, 1);
        assert.equal(s.labels.pipeline, PIPELINE);
        assert.match(s.labels.version ?? '', /^[0-9a-f]{12}$/);
      }
    } catch (e) {
      release();
      dump(t, run)(e);
    } finally {
      await started.catch(() => undefined);
      await within(run.guard.stop(), 30_000, 'guard.stop()');
    }
    assert.equal(run.guard.readiness().ready, false, 'not ready after stop');
    assert.deepEqual(run.guard.readiness().checks, { brokerConnected: false, modelsWarm: true, partitionsAssigned: false });
    assert.equal(run.guard.httpPort !== null, true);
    await assert.rejects(httpGet(run.guard.httpPort!, '/healthz'), 'ops server closed after stop');
  });

  test('/readyz: of two instances on a one-partition topic, only the one holding it is ready', { timeout: 90_000 }, async (t) => {
    const topics = await topicsWith(broker.brokers, 'ops-ready', 1);
    const a = newGuard(broker.brokers, topics);
    const b = newGuard(broker.brokers, topics);
    let joinsA = 0;
    a.guard.runner.consumer.on(a.guard.runner.consumer.events.GROUP_JOIN, () => joinsA++);
    try {
      await within(a.guard.start(), 60_000, 'a.start()');
      await waitFor(() => a.guard.readiness().ready, 30_000, 'a ready');
      const before = joinsA;
      await within(b.guard.start(), 60_000, 'b.start()');
      // b's join forces a rebalance; wait for a's side of it too.
      await waitFor(() => joinsA > before && b.guard.readiness().checks.brokerConnected, 30_000, 'rebalance after b joined');
      await waitFor(() => a.guard.readiness().ready !== b.guard.readiness().ready, 30_000, 'exactly one instance ready');
      const [ra, rb] = await Promise.all([httpGet(a.guard.httpPort!, '/readyz'), httpGet(b.guard.httpPort!, '/readyz')]);
      assert.deepEqual([ra.status, rb.status].sort(), [200, 503], `statuses ${ra.status} ${rb.status}`);
      const idle = JSON.parse((ra.status === 503 ? ra : rb).body) as { checks: Record<string, boolean> };
      assert.deepEqual(idle.checks, { brokerConnected: true, modelsWarm: true, partitionsAssigned: false });
    } catch (e) {
      dump(t, a)(e);
    } finally {
      await within(Promise.all([a.guard.stop(), b.guard.stop()]), 30_000, 'stop both');
    }
  });

  test('logs: structured, with record ids; no SASL password, webhook token or image bytes', { timeout: 120_000 }, async (t) => {
    // Starts its own local SCRAM broker, whatever broker the other tests use.
    const PASSWORD = 'pw-Zq7.Secret~only@test';
    const TOKEN = 'tok3n-0f-the-hook-xyz';
    let scram: LocalBroker | undefined;
    const hook = await alertServer(0);
    let run: Running | undefined;
    try {
      scram = await startLocalBroker({ scram: { username: 'vqguard', password: PASSWORD } });
      const brokers = scram.brokers;
      const topics = await topicsWith(brokers, 'ops-logs', 1);
      const good = recs.slice(0, 60);
      const bad = malformed(recs[1]!);
      const msgs: OutMsg[] = [...good.map((r) => ({ key: r.id, value: r.value, partition: 0 })), ...bad.map((b) => ({ ...b.msg, partition: 0 }))];
      await produce(brokers, topics.input, msgs);

      run = newGuard(scram.saslBrokers, topics, {
        sasl: { mechanism: 'scram-sha-256', username: 'vqguard', password: PASSWORD },
        webhook: { url: hook.url(`/hooks/${TOKEN}?key=${TOKEN}`), retries: 1, backoffMs: 10, ratePerSec: 1000 },
      }, 'debug');
      await within(run.guard.start(), 60_000, 'guard.start() over SASL');
      await waitFor(() => run!.answered() >= msgs.length, 90_000, () => `all ${msgs.length} answered (got ${run!.answered()})`);
      await waitFor(() => hook.posts.length >= run!.alerts.length, 10_000, 'webhook deliveries');
      await within(run.guard.stop(), 30_000, 'guard.stop()');

      const text = run.sink.text();
      const lines = run.sink.records();
      assert.ok(lines.length > 10, 'something was logged');
      for (const l of lines) {
        assert.equal(typeof l.level, 'number');
        assert.equal(typeof l.time, 'number');
        assert.equal(l.service, 'vqguard');
        assert.equal(typeof l.msg, 'string');
      }
      // Secrets.
      assert.ok(!text.includes(PASSWORD), 'the SASL password is never logged');
      assert.ok(!text.includes(TOKEN), 'the webhook path/query (a token) is never logged');
      const startLine = lines.find((l) => l.msg === 'starting vqguard') as { config: { kafka: { sasl: { password: string } } } } | undefined;
      assert.equal(startLine?.config.kafka.sasl.password, '[redacted]', 'the logged config shows the password redacted');
      // Image bytes: no PNG in base64 or hex, no serialised Buffer, no long base64/hex runs.
      for (const s of [...good.slice(0, 20), recs[1]!]) {
        const png = pngOf(s);
        assert.ok(!text.includes(png.toString('base64').slice(0, 40)), `no base64 of ${s.id}'s image`);
        assert.ok(!text.includes(png.toString('hex').slice(0, 40)), `no hex of ${s.id}'s image`);
      }
      assert.ok(!text.includes('iVBORw0KGgo'), 'no base64 PNG signature');
      assert.ok(!/89504e470d0a1a0a/i.test(text), 'no hex PNG signature');
      assert.ok(!text.includes('"type":"Buffer"'), 'no serialised Buffer');
      const b64run = /[A-Za-z0-9+/]{64,}={0,2}/.exec(text);
      assert.equal(b64run, null, `no long base64 run: ${b64run?.[0].slice(0, 80)}`);
      const hexRun = /[0-9a-fA-F]{64,}/.exec(text);
      assert.equal(hexRun, null, `no long hex run: ${hexRun?.[0].slice(0, 80)}`);
      // Record ids: every alert and every dead letter is logged with its id, offset and reason.
      assert.ok(run.alerts.length > 0, 'some records flagged');
      const flaggedLogs = new Map(lines.filter((l) => l.msg === 'flagged: likely adversarial input').map((l) => [l.recordId, l]));
      for (const a of run.alerts) {
        const l = flaggedLogs.get(a.id);
        assert.ok(l, `flagged record ${a.id} logged with its id`);
        assert.equal(l.offset, a.offset);
        assert.equal(l.topic, topics.input);
      }
      const deadLogs = lines.filter((l) => l.msg === 'dead-lettered');
      assert.equal(deadLogs.length, bad.length);
      assert.deepEqual(deadLogs.map((l) => l.reason).sort(), bad.map((b) => b.reason).sort());
      assert.ok(deadLogs.some((l) => l.recordId === 'bad-png'), 'a dead letter with a known id is logged with it');
      assert.ok(deadLogs.every((l) => typeof l.offset === 'string'), 'dead letters logged with their offsets');
      t.diagnostic(`${lines.length} log lines scanned (level debug), ${run.alerts.length} alerts, ${deadLogs.length} dead letters`);
    } catch (e) {
      dump(t, run)(e);
    } finally {
      if (run) await run.guard.stop().catch(() => undefined);
      await hook.close();
      await scram?.stop();
    }
  });

  test('webhook: retried after 500s until delivered; counted in /metrics', { timeout: 120_000 }, async (t) => {
    const hook = await alertServer(2);
    const topics = await topicsWith(broker.brokers, 'ops-hook', 1);
    const recsHere = recs.slice(0, 60);
    await produce(broker.brokers, topics.input, recsHere.map((r) => ({ key: r.id, value: r.value, partition: 0 })));
    const run = newGuard(broker.brokers, topics, { webhook: { url: hook.url(), retries: 4, backoffMs: 20, timeoutMs: 2000, ratePerSec: 1000 } });
    try {
      await within(run.guard.start(), 60_000, 'guard.start()');
      await waitFor(() => run.answered() >= recsHere.length, 90_000, 'all answered');
      const nAlerts = run.alerts.length;
      assert.ok(nAlerts > 0, 'some records flagged');
      await waitFor(() => hook.posts.filter((p) => p.status === 200).length >= nAlerts, 30_000, () => `${nAlerts} alerts delivered (got ${hook.posts.length} posts)`);
      const m = parseMetrics((await httpGet(run.guard.httpPort!, '/metrics')).body).samples;
      const retry = metricSum(m, 'vqguard_alert_webhook_deliveries_total', { outcome: 'retry' });
      const ok = metricSum(m, 'vqguard_alert_webhook_deliveries_total', { outcome: 'ok' });
      const failed = metricSum(m, 'vqguard_alert_webhook_deliveries_total', { outcome: 'failed' });
      t.diagnostic(`posts ${hook.posts.length} (${hook.posts.filter((p) => p.status === 500).length} answered 500); metrics retry=${retry} ok=${ok} failed=${failed}`);
      assert.equal(retry, 2, 'the two 500s were retried');
      assert.equal(ok, nAlerts, 'every alert delivered');
      assert.equal(failed, 0);
      assert.equal(hook.posts.length, nAlerts + 2);
      // The first alert arrived after its two failed attempts; each body is the alert JSON.
      const ids = new Set(recsHere.map((r) => r.id));
      const delivered = hook.posts.filter((p) => p.status === 200).map((p) => JSON.parse(p.body) as AlertEvent);
      assert.equal(JSON.parse(hook.posts[0]!.body).id, delivered[0]!.id, 'the failed alert is the one retried');
      assert.deepEqual(new Set(delivered.map((a) => a.id)), new Set(run.alerts.map((a) => a.id)), 'every alert delivered once');
      for (const a of delivered) {
        assert.ok(ids.has(a.id), `alert for an input id (${a.id})`);
        assert.equal(a.topic, topics.input);
        assert.equal(a.pipeline, PIPELINE);
        assert.equal(typeof a.score, 'number');
        assert.equal(a.attributes.adversarial !== undefined, true);
      }
    } catch (e) {
      dump(t, run)(e);
    } finally {
      await within(run.guard.stop(), 30_000, 'guard.stop()');
      await hook.close();
    }
  });

  test('webhook: an endpoint that accepts and never answers does not block the stream; failures are counted', { timeout: 120_000 }, async (t) => {
    // A server that accepts connections and never answers: every attempt waits out its timeout.
    const sockets = new Set<import('node:net').Socket>();
    let accepted = 0;
    const silent = (await import('node:net')).createServer((sock) => {
      accepted++;
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    const TIMEOUT_MS = 300;
    const RETRIES = 1;
    const topics = await topicsWith(broker.brokers, 'ops-deadhook', 1);
    const recsHere = recs.slice(60, 160);
    await produce(broker.brokers, topics.input, recsHere.map((r) => ({ key: r.id, value: r.value, partition: 0 })));
    const run = newGuard(broker.brokers, topics, { webhook: { url: `http://127.0.0.1:${port}/alerts`, retries: RETRIES, backoffMs: 10, timeoutMs: TIMEOUT_MS, ratePerSec: 1000 } });
    try {
      await within(run.guard.start(), 60_000, 'guard.start()');
      const t0 = performance.now();
      await waitFor(() => run.answered() >= recsHere.length, 90_000, 'all answered despite the silent webhook');
      const secs = (performance.now() - t0) / 1000;
      const failedWhenAnswered = metricSum(parseMetrics((await httpGet(run.guard.httpPort!, '/metrics')).body).samples, 'vqguard_alert_webhook_deliveries_total', { outcome: 'failed' });
      const nAlertsNow = run.alerts.length;
      // Blocking deliveries would take nAlerts x (retries + 1) x timeout before the last record is answered.
      const blockingSecs = (nAlertsNow * (RETRIES + 1) * TIMEOUT_MS) / 1000;
      t.diagnostic(`answered in ${secs.toFixed(1)} s; ${failedWhenAnswered}/${nAlertsNow} deliveries given up by then; blocking deliveries would need >= ${blockingSecs.toFixed(1)} s`);
      assert.ok(nAlertsNow >= 10, `enough alerts for the check (${nAlertsNow})`);
      assert.ok(failedWhenAnswered < nAlertsNow / 2, `the stream did not wait for the webhook (${failedWhenAnswered} of ${nAlertsNow} given up when all were answered)`);
      assert.ok(secs < blockingSecs, `answered in ${secs.toFixed(1)} s, less than the ${blockingSecs.toFixed(1)} s blocking deliveries would take`);
      assert.ok(accepted > 0, 'the webhook connections were accepted (and never answered)');
      const nAlerts = run.alerts.length;
      assert.ok(nAlerts > 0, 'some records flagged');
      const port2 = run.guard.httpPort!;
      await waitFor(async () => metricSum(parseMetrics((await httpGet(port2, '/metrics')).body).samples, 'vqguard_alert_webhook_deliveries_total', { outcome: 'failed' }) >= nAlerts, 60_000, 'every delivery given up');
      const m = parseMetrics((await httpGet(port2, '/metrics')).body).samples;
      const retry = metricSum(m, 'vqguard_alert_webhook_deliveries_total', { outcome: 'retry' });
      const failed = metricSum(m, 'vqguard_alert_webhook_deliveries_total', { outcome: 'failed' });
      t.diagnostic(`${recsHere.length} records in ${secs.toFixed(1)} s with a dead webhook; ${nAlerts} alerts: retry=${retry} failed=${failed}`);
      assert.equal(failed, nAlerts, 'each alert failed once, after its retries');
      assert.equal(retry, RETRIES * nAlerts, 'the retries per alert');
      assert.equal(metricSum(m, 'vqguard_alert_webhook_deliveries_total', { outcome: 'ok' }), 0);
      assert.equal(metricSum(m, 'vqguard_records_consumed_total', { topic: topics.input }), recsHere.length);
      assert.ok(run.sink.records().some((l) => l.msg === 'webhook delivery failed after retries' && typeof l.recordId === 'string'), 'failures logged with the record id');
    } catch (e) {
      dump(t, run)(e);
    } finally {
      const t1 = performance.now();
      await within(run.guard.stop(), 30_000, 'guard.stop()');
      t.diagnostic(`stop took ${((performance.now() - t1) / 1000).toFixed(1)} s`);
      for (const sock of sockets) sock.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});
