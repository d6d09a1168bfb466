// Security of the guard CLI against a local broker with SCRAM-SHA-256 and TLS listeners
// (startLocalBroker({ scram, tls }): SASL_PLAINTEXT, SSL and SASL_SSL with a self-signed
// certificate made by openssl):
//   - SCRAM works with the password from a file or from the environment, over plaintext or TLS;
//   - the password never appears in any log line (debug level), nor on /metrics;
//   - a wrong password, or an untrusted certificate, fails fast with a clear error: no retry storm;
//   - a tampered model bundle is refused at start-up;
//   - per-topic limits (bytes, pixels, batch) hold whatever a record's own fields or headers say.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startLocalBroker, type LocalBroker } from '../tools/localBroker.ts';
import { createTopics } from './helpers/broker.ts';
import {
  collect, coverage, decodeResults, guardTopics, httpGet, killIfRunning, LogSink, produce, rawConfig, REPO, samples, startCli, waitFor, within,
  writeConfigFile, type CliChild, type GuardTopics,
} from './helpers/guard.ts';
import { startKafkaProxy } from './helpers/proxy.ts';
import { hostileImages, STRICT_IMAGE } from './helpers/hostile.ts';
import { parseConfig } from '../src/config/schema.ts';
import { Guard, createLogger } from '../src/consumer/guard.ts';
import { encodeImageRecord } from '../src/records/avro.ts';

const USER = 'vqguard';
// Only [A-Za-z0-9._~@+-] (the local broker's SCRAM set-up); random so a scan cannot match by chance.
const PASSWORD = `Pw-${randomBytes(12).toString('hex')}`;
const SASL_API_KEYS = [17, 36]; // SaslHandshake, SaslAuthenticate

function secretsDir(): string {
  return mkdtempSync(join(tmpdir(), 'vqguard-secret-'));
}

async function setUp(b: LocalBroker, prefix: string, n: number): Promise<{ topics: GuardTopics; ids: string[] }> {
  const topics = guardTopics(prefix);
  await createTopics(b.brokers, [topics.input, topics.output, topics.deadLetter, topics.alerts], 1);
  const recs = await samples(n, { adversarialRatio: 0.3, eps: 0.3, seed: 41, idPrefix: prefix });
  await produce(b.brokers, topics.input, recs.map((r) => ({ key: r.id, value: r.value, partition: 0 })));
  return { topics, ids: recs.map((r) => r.id) };
}

/** Waits until the guard answered `n` records (read back on the plaintext listener). */
async function answeredAll(b: LocalBroker, t: GuardTopics, n: number, c: CliChild): Promise<number> {
  const got = await collect(b.brokers, [t.output, t.deadLetter], (g) => g.length >= n || c.proc.exitCode !== null, { timeoutMs: 90_000, lingerMs: 500 });
  return coverage(decodeResults(got, t)).size;
}

function assertNoSecret(text: string, secret: string, where: string): void {
  const at = text.indexOf(secret);
  assert.equal(at, -1, `${where} contains the password: ...${text.slice(Math.max(0, at - 200), at + 50)}`);
}

/** Runs the CLI until it exits or `ms` pass; returns how it ended. */
async function runToExit(c: CliChild, ms: number): Promise<{ code: number | string; secs: number }> {
  const t0 = performance.now();
  const code = await within(c.exited, ms, `guard CLI exits within ${ms} ms`);
  return { code, secs: (performance.now() - t0) / 1000 };
}

describe('security (local broker with SCRAM and TLS)', { timeout: 600_000 }, () => {
  let b: LocalBroker;
  before(async () => {
    b = await startLocalBroker({ scram: { username: USER, password: PASSWORD }, tls: true });
  });
  after(async () => {
    await b?.stop();
  });

  test('SCRAM-SHA-256 with passwordFile: records flow; the password is in no log line (debug level) and not on /metrics', { timeout: 120_000 }, async (t) => {
    const N = 20;
    const { topics } = await setUp(b, 'sec-file', N);
    const dir = secretsDir();
    writeFileSync(join(dir, 'password'), `${PASSWORD}\n`, { mode: 0o600 });
    const cfg = writeConfigFile(rawConfig(topics, { brokers: b.saslBrokers, sasl: { mechanism: 'scram-sha-256', username: USER, passwordFile: join(dir, 'password') } }));
    let c: CliChild | undefined;
    try {
      c = startCli(cfg, { VQGUARD_LOG_LEVEL: 'debug' });
      const cli = c;
      assert.equal(await answeredAll(b, topics, N, cli), N, `all ${N} answered over SASL_PLAINTEXT:\n${cli.output().slice(-3000)}`);
      const port = (cli.logs().find((l) => String(l.msg).startsWith('ops server listening'))?.port ?? 0) as number;
      const metrics = await httpGet(port, '/metrics');
      assertNoSecret(metrics.body, PASSWORD, '/metrics');
      cli.proc.kill('SIGTERM');
      assert.equal((await runToExit(cli, 45_000)).code, 0);
      const out = cli.output();
      t.diagnostic(`${out.split('\n').length} lines of output (debug level) scanned for the password`);
      const start = cli.logs().find((l) => l.msg === 'starting vqguard') as { config?: { kafka?: { sasl?: Record<string, unknown> } } } | undefined;
      assert.equal(start?.config?.kafka?.sasl?.passwordFile, join(dir, 'password'), 'the configuration is logged (with the file name, not its content)');
      assertNoSecret(out, PASSWORD, 'the guard output');
    } finally {
      killIfRunning(c);
    }
  });

  test('SCRAM over TLS (SASL_SSL, caFile) with passwordEnv; TLS without SCRAM too', { timeout: 150_000 }, async () => {
    for (const mode of ['SASL_SSL', 'SSL'] as const) {
      const N = 10;
      const { topics } = await setUp(b, `sec-${mode.toLowerCase()}`, N);
      const raw = rawConfig(topics, {
        brokers: mode === 'SSL' ? b.sslBrokers : b.saslSslBrokers,
        ...(mode === 'SASL_SSL' ? { sasl: { mechanism: 'scram-sha-256', username: USER, passwordEnv: 'VQGUARD_TEST_KAFKA_PASSWORD' } } : {}),
      });
      (raw.kafka as Record<string, unknown>).ssl = { caFile: b.caFile };
      let c: CliChild | undefined;
      try {
        c = startCli(writeConfigFile(raw), { VQGUARD_TEST_KAFKA_PASSWORD: PASSWORD });
        const cli = c;
        assert.equal(await answeredAll(b, topics, N, cli), N, `${mode}: all ${N} answered:\n${cli.output().slice(-3000)}`);
        cli.proc.kill('SIGTERM');
        assert.equal((await runToExit(cli, 45_000)).code, 0);
        assertNoSecret(cli.output(), PASSWORD, `the guard output (${mode})`);
      } finally {
        killIfRunning(c);
      }
    }
  });

  test('a wrong password fails fast with a clear error, without a retry storm', { timeout: 120_000 }, async (t) => {
    const { topics } = await setUp(b, 'sec-wrong', 1);
    const [host, port] = b.saslBrokers[0]!.split(':');
    const proxy = await startKafkaProxy({ host: host!, port: Number(port) });
    const wrong = `Wrong-${randomBytes(8).toString('hex')}`;
    const cfg = writeConfigFile(rawConfig(topics, { brokers: proxy.brokers, sasl: { mechanism: 'scram-sha-256', username: USER, passwordEnv: 'VQGUARD_TEST_KAFKA_PASSWORD' } }));
    let c: CliChild | undefined;
    try {
      c = startCli(cfg, { VQGUARD_TEST_KAFKA_PASSWORD: wrong });
      const { code, secs } = await runToExit(c, 60_000);
      const out = c.output();
      const saslRequests = SASL_API_KEYS.reduce((s, k) => s + (proxy.requests.get(k) ?? 0), 0);
      const errorLines = c.logs().filter((l) => (l.level as number) >= 50).length;
      t.diagnostic(`exit ${code} after ${secs.toFixed(1)} s (including model load); ${proxy.connections} connections, ${saslRequests} SASL requests, ${errorLines} error log lines`);
      assert.notEqual(code, 0, 'exits with an error');
      assert.match(out, /authentication failed/i, `a clear error:\n${out.slice(-2000)}`);
      assert.ok(proxy.connections <= 3, `no retry storm: ${proxy.connections} connections`);
      assert.ok(saslRequests <= 6, `no retry storm: ${saslRequests} SASL requests`);
      assert.ok(errorLines <= 10, `a few error lines, not a flood (${errorLines})`);
      assertNoSecret(out, wrong, 'the guard output');
    } finally {
      killIfRunning(c);
      await proxy.close();
    }
  });

  test('TLS with a certificate the guard does not trust: a clear error and an exit after bounded retries', { timeout: 120_000 }, async (t) => {
    const { topics } = await setUp(b, 'sec-untrusted', 1);
    const raw = rawConfig(topics, { brokers: b.sslBrokers });
    (raw.kafka as Record<string, unknown>).ssl = { enabled: true }; // system CAs only: the self-signed certificate is refused
    const c = startCli(writeConfigFile(raw), {});
    try {
      const { code, secs } = await runToExit(c, 90_000);
      const attempts = c.logs().filter((l) => /self-signed certificate/.test(String(l.msg)) && l.kafka === 'Connection').length;
      t.diagnostic(`exit ${code} after ${secs.toFixed(1)} s, ${attempts} connection attempts (kafkajs retries connection errors with back-off)`);
      assert.notEqual(code, 0);
      assert.ok(attempts <= 12, `bounded retries (${attempts})`);
      assert.match(c.output(), /self-signed certificate/i, `a clear error:\n${c.output().slice(-2000)}`);
    } finally {
      killIfRunning(c);
    }
  });

  test('a tampered model bundle is refused at start-up with a clear error', { timeout: 120_000 }, async () => {
    const { topics } = await setUp(b, 'sec-tamper', 1);
    const models = mkdtempSync(join(tmpdir(), 'vqguard-models-'));
    for (const d of ['classifier', 'purifier-split1', 'purifier-split2', 'calibration']) cpSync(join(REPO, 'models/mnist', d), join(models, d), { recursive: true });
    const weights = join(models, 'purifier-split2', 'weights.bin');
    const w = readFileSync(weights);
    w[Math.floor(w.length / 2)]! ^= 0x01; // one bit
    writeFileSync(weights, w);
    const raw = rawConfig(topics, { brokers: b.brokers });
    raw.models = models;
    const c = startCli(writeConfigFile(raw), {});
    try {
      const { code } = await runToExit(c, 90_000);
      assert.notEqual(code, 0, 'refuses to start');
      assert.match(c.output(), /purifier-split2: sha256 mismatch for weights\.bin .*refusing a tampered or corrupt bundle/, c.output().slice(-2000));
      assert.ok(!c.logs().some((l) => l.msg === 'partitions assigned'), 'never joined the group');
    } finally {
      killIfRunning(c);
    }
  });

  test("per-topic limits (bytes, pixels, batch) hold whatever a record's fields and headers say", { timeout: 120_000 }, async (t) => {
    const h = await hostileImages();
    const topics = guardTopics('sec-limits');
    await createTopics(b.brokers, [topics.input, topics.output, topics.deadLetter, topics.alerts], 1);
    const good = await samples(24, { adversarialRatio: 0.3, eps: 0.3, seed: 43, idPrefix: 'limits' });
    const asking = { 'vqguard-max-bytes': '1000000000', 'vqguard-max-pixels': '1000000000000', 'vqguard-max-batch-size': '1000', 'vqguard-attr-maxPixels': '1000000000000' };
    const msgs = [
      ...good.map((r) => ({ key: r.id, value: r.value, partition: 0, headers: asking })),
      { key: 'bomb', value: encodeImageRecord({ id: 'bomb', contentType: 'image/png', image: h.pngBomb, width: 28, height: 28, attributes: { maxPixels: '1e12' }, producedAt: 0 }), partition: 0, headers: asking },
      { key: 'big', value: encodeImageRecord({ id: 'big', contentType: 'image/png', image: h.bigPng, width: 28, height: 28, producedAt: 0 }), partition: 0, headers: asking },
      { key: 'big-raw', value: h.bigPng, partition: 0, headers: asking },
      { key: 'jpeg-huge', value: h.hugeJpeg, partition: 0, headers: { ...asking, 'content-type': 'image/jpeg; width=28; height=28' } },
    ];
    await produce(b.brokers, topics.input, msgs);
    const raw = rawConfig(topics, { brokers: b.brokers, maxBatchSize: 4 });
    (raw.topics as Record<string, unknown>[])[0]!.image = STRICT_IMAGE;
    const sizes: number[] = [];
    const sink = new LogSink();
    const guard = new Guard(parseConfig(raw), {
      baseDir: REPO,
      httpPort: 0,
      logger: createLogger(sink),
      events: { onChunk: (_t, _p, r) => sizes.push(r.outputs.length + r.deadLetters.length) },
    });
    try {
      await within(guard.start(), 60_000, 'guard.start()');
      await waitFor(() => sizes.reduce((a, x) => a + x, 0) >= msgs.length, 60_000, () => `all answered\n${sink.tail(20)}`);
    } finally {
      await within(guard.stop(), 30_000, 'guard.stop()');
    }
    t.diagnostic(`micro-batch sizes: ${sizes.join(',')}`);
    assert.ok(Math.max(...sizes) <= 4, 'no micro-batch above maxBatchSize');
    const got = await collect(b.brokers, [topics.output, topics.deadLetter], (g) => g.length >= msgs.length, { timeoutMs: 30_000, lingerMs: 500 });
    const r = decodeResults(got, topics);
    const reasonOf = new Map(r.deadLetters.map((d) => [d.id ?? '', d.reason]));
    assert.equal(reasonOf.get('bomb'), 'too_many_pixels', 'declared 28x28 does not lift maxPixels');
    assert.equal(reasonOf.get('big'), 'too_large_bytes', 'declared 28x28 does not lift maxBytes');
    assert.equal(reasonOf.get('big-raw'), 'too_large_bytes', 'headers do not lift maxBytes');
    assert.equal(reasonOf.get('jpeg-huge'), 'too_many_pixels', 'a content type with sizes does not lift maxPixels');
    assert.equal(r.outputs.length, good.length, 'the good records pass');
  });
});
