/**
 * Helpers for tests that run the guard against a real broker (test/stream.test.ts,
 * test/ops.test.ts): sample traffic with ground truth, configs, produce/collect, the CLI as a
 * child process, bounded waits, a Prometheus text parser and a log sink.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Kafka, logLevel, type IHeaders } from 'kafkajs';
import { loadDataset } from '../../src/data/load.ts';
import { ModelRegistry } from '../../src/models/registry.ts';
import { buildSamples, type SampleRecord } from '../../src/sample/produceSample.ts';
import { decodeAlert, decodeDeadLetter, decodeGuardedImage, type Alert, type DeadLetter, type GuardedImage } from '../../src/records/avro.ts';
import { uniqueTopic } from './broker.ts';

export const REPO = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const MODELS = 'models/mnist';
export const PIPELINE = 'split2>full';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `cond` every `everyMs` until it is truthy; throws `what` after `timeoutMs`. */
export async function waitFor<T>(cond: () => T | Promise<T>, timeoutMs: number, what: string | (() => string), everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${typeof what === 'function' ? what() : what}`);
    await sleep(everyMs);
  }
}

/** Awaits `p` or throws after `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Sample traffic

const sampleCache = new Map<string, SampleRecord[]>();

/** MNIST test images as Avro ImageRecords, `adversarialRatio` of them FGSM-attacked (cached per options). */
export async function samples(count: number, opts: { adversarialRatio?: number; eps?: number; seed?: number; idPrefix?: string } = {}): Promise<SampleRecord[]> {
  const o = { adversarialRatio: 0.5, eps: 0.3, seed: 11, idPrefix: 'rec', ...opts };
  const key = JSON.stringify({ count, ...o });
  let s = sampleCache.get(key);
  if (!s) {
    const data = loadDataset('mnist');
    const reg = new ModelRegistry(join(REPO, MODELS));
    try {
      s = await buildSamples(data.test, reg.classifier(), { count, adversarialRatio: o.adversarialRatio, attack: 'fgsm', eps: o.eps, seed: o.seed, idPrefix: o.idPrefix });
    } finally {
      reg.dispose();
    }
    sampleCache.set(key, s);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Topics and configs

export interface GuardTopics {
  input: string;
  output: string;
  deadLetter: string;
  alerts: string;
  groupId: string;
}

export function guardTopics(prefix: string): GuardTopics {
  const base = uniqueTopic(prefix);
  return { input: `${base}.in`, output: `${base}.out`, deadLetter: `${base}.dlq`, alerts: `${base}.alerts`, groupId: `${base}.group` };
}

export interface RawConfigOptions {
  /** Omit to take KAFKA_BROKERS from the environment (the CLI tests). */
  brokers?: string[];
  transactions?: boolean;
  maxBatchSize?: number;
  webhook?: Record<string, unknown>;
  sasl?: Record<string, unknown>;
  action?: 'forward-cleaned' | 'forward-original' | 'quarantine';
  /** Default PIPELINE. */
  pipeline?: string | string[];
}

/** A raw configuration document (for parseConfig, or written to a file for the CLI). */
export function rawConfig(t: GuardTopics, o: RawConfigOptions = {}): Record<string, unknown> {
  return {
    kafka: { ...(o.brokers ? { brokers: o.brokers } : {}), clientId: 'vqguard-test', groupId: t.groupId, ...(o.sasl ? { sasl: o.sasl } : {}) },
    transactions: o.transactions ?? false,
    http: { port: 0, host: '127.0.0.1' },
    models: MODELS,
    shutdownTimeoutMs: 30_000,
    alerts: { topic: t.alerts, ...(o.webhook ? { webhook: o.webhook } : {}) },
    topics: [
      {
        input: t.input,
        output: t.output,
        deadLetter: t.deadLetter,
        alerts: t.alerts,
        pipeline: o.pipeline ?? PIPELINE,
        action: o.action ?? 'forward-cleaned',
        maxBatchSize: o.maxBatchSize ?? 32,
        maxBatchWaitMs: 20,
      },
    ],
  };
}

/** Writes a config file for the CLI (JSON is YAML). */
export function writeConfigFile(raw: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'vqguard-test-'));
  const file = join(dir, 'guard.yaml');
  writeFileSync(file, JSON.stringify(raw, null, 2) + '\n');
  return file;
}

// ---------------------------------------------------------------------------------------------
// Produce and collect

export interface OutMsg {
  key?: string | null;
  value: Buffer | null;
  partition: number;
  headers?: IHeaders;
}

function client(brokers: string[], clientId = 'vqguard-test'): Kafka {
  return new Kafka({ clientId, brokers, logLevel: logLevel.NOTHING });
}

/** Sends the messages (acks=all) in order; returns each one's (partition, offset). */
export async function produce(brokers: string[], topic: string, messages: OutMsg[]): Promise<{ partition: number; offset: string }[]> {
  const producer = client(brokers).producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const where: { partition: number; offset: string }[] = [];
  try {
    // Sends of at most 200 messages and ~900 kB (a record batch must fit the topic's max.message.bytes).
    for (let i = 0; i < messages.length; ) {
      let j = i;
      let bytes = 0;
      while (j < messages.length && j - i < 200 && (j === i || bytes + (messages[j]!.value?.length ?? 0) <= 900_000)) bytes += messages[j++]!.value?.length ?? 0;
      const part = messages.slice(i, j);
      i = j;
      const meta = await producer.send({ topic, acks: -1, messages: part.map((m) => ({ key: m.key ?? null, value: m.value, partition: m.partition, headers: m.headers })) });
      // One RecordMetadata per partition with the base offset of this send's run on it.
      const next = new Map(meta.map((r) => [r.partition, BigInt(r.baseOffset ?? '0')]));
      for (const m of part) {
        const o = next.get(m.partition)!;
        where.push({ partition: m.partition, offset: o.toString() });
        next.set(m.partition, o + 1n);
      }
    }
  } finally {
    await producer.disconnect();
  }
  return where;
}

export interface Collected {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: Buffer;
  headers: Record<string, string>;
}

/**
 * Reads `topics` from the beginning (read_committed unless told) until `until(got)` holds, then keeps
 * reading for `lingerMs` more (to catch duplicates); gives up at `timeoutMs` and returns what arrived.
 */
export async function collect(
  brokers: string[],
  topics: string[],
  until: (got: Collected[]) => boolean,
  o: { timeoutMs: number; lingerMs?: number; readUncommitted?: boolean },
): Promise<Collected[]> {
  const consumer = client(brokers, 'vqguard-test-collect').consumer({ groupId: uniqueTopic('collect'), readUncommitted: o.readUncommitted ?? false, maxWaitTimeInMs: 100 });
  const got: Collected[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics, fromBeginning: true });
    let done!: () => void;
    const reached = new Promise<void>((r) => (done = r));
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) if (v !== undefined) headers[k] = String(Array.isArray(v) ? v[0] : v);
        got.push({ topic, partition, offset: message.offset, key: message.key?.toString() ?? null, value: message.value ?? Buffer.alloc(0), headers });
        if (until(got)) done();
      },
    });
    if (!until(got)) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([reached, new Promise<void>((r) => (timer = setTimeout(r, o.timeoutMs)))]);
      clearTimeout(timer);
    }
    if (o.lingerMs) await sleep(o.lingerMs);
  } finally {
    await consumer.disconnect();
  }
  return got;
}

/** Counts messages of `topics` as they arrive (from the beginning), until stop(). */
export async function countMessages(brokers: string[], topics: string[], readUncommitted: boolean): Promise<{ count(): number; stop(): Promise<void> }> {
  const consumer = client(brokers, 'vqguard-test-count').consumer({ groupId: uniqueTopic('count'), readUncommitted, maxWaitTimeInMs: 50 });
  let n = 0;
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  await consumer.run({ eachBatchAutoResolve: true, eachBatch: async ({ batch }) => void (n += batch.messages.length) });
  return { count: () => n, stop: () => consumer.disconnect() };
}

export interface Results {
  outputs: GuardedImage[];
  alerts: Alert[];
  deadLetters: DeadLetter[];
  undecodable: number;
}

export function decodeResults(got: Collected[], t: GuardTopics): Results {
  const r: Results = { outputs: [], alerts: [], deadLetters: [], undecodable: 0 };
  for (const m of got) {
    if (m.topic === t.output) {
      const d = decodeGuardedImage(m.value);
      if (d.ok) r.outputs.push(d.record);
      else r.undecodable++;
    } else if (m.topic === t.alerts) {
      const d = decodeAlert(m.value);
      if (d.ok) r.alerts.push(d.record);
      else r.undecodable++;
    } else if (m.topic === t.deadLetter) {
      const d = decodeDeadLetter(m.value);
      if (d.ok) r.deadLetters.push(d.record);
      else r.undecodable++;
    }
  }
  return r;
}

/** "partition/offset" of the input record behind each output and dead letter, with counts. */
export function coverage(r: Results): Map<string, number> {
  const m = new Map<string, number>();
  const add = (k: string) => m.set(k, (m.get(k) ?? 0) + 1);
  for (const o of r.outputs) add(`${o.source.partition}/${o.source.offset}`);
  for (const d of r.deadLetters) add(`${d.partition}/${d.offset}`);
  return m;
}

/** Number of distinct input offsets answered (by an output or a dead letter) in `got`. */
export function answered(got: Collected[], t: GuardTopics): number {
  return coverage(decodeResults(got.filter((m) => m.topic !== t.alerts), t)).size;
}

// ---------------------------------------------------------------------------------------------
// The CLI as a child process

export interface CliChild {
  proc: ChildProcess;
  /** stdout + stderr so far. */
  output(): string;
  /** Lines of stderr that are JSON log records. */
  logs(): Record<string, unknown>[];
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

export function startCli(configFile: string, env: Record<string, string>): CliChild {
  return startChild(['bin/vqguard.mjs', 'run', '--config', configFile, '--http-port', '0'], env);
}

/** A node child process in the repository (args after `node`), with the CliChild helpers. */
export function startChild(args: string[], env: Record<string, string>): CliChild {
  const proc = spawn(process.execPath, args, {
    cwd: REPO,
    env: { ...process.env, VQGUARD_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  return {
    proc,
    output: () => out,
    logs: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as Record<string, unknown>];
          } catch {
            return [];
          }
        }),
    exited,
  };
}

/** Kills a child that is still running (test clean-up). */
export function killIfRunning(c: CliChild | undefined): void {
  if (c && c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
}

// ---------------------------------------------------------------------------------------------
// Logs and metrics

/** A writable sink for createLogger(): keeps every line written. */
export class LogSink extends Writable {
  readonly chunks: string[] = [];
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.chunks.push(chunk.toString());
    cb();
  }
  text(): string {
    return this.chunks.join('');
  }
  records(): Record<string, unknown>[] {
    return this.text()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
  tail(n = 30): string {
    return this.text().split('\n').slice(-n).join('\n');
  }
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text exposition format (samples only; # HELP / # TYPE kept apart). */
export function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const t = /^# TYPE (\S+) (\S+)/.exec(line);
    if (t) {
      types.set(t[1]!, t[2]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { samples, types };
}

/** Sum of the samples named `name` whose labels include `labels`. */
export function metricSum(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

export async function httpGet(port: number, path: string): Promise<{ status: number; body: string; contentType: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.text(), contentType: res.headers.get('content-type') };
}

/** The ops port a CLI child logged ("ops server listening"); throws if it exits first. */
export async function cliOpsPort(c: CliChild, timeoutMs = 90_000): Promise<number> {
  const line = await waitFor(
    () => c.logs().find((l) => typeof l.port === 'number' && String(l.msg).startsWith('ops server listening')) ?? (c.proc.exitCode !== null ? { exited: true } : undefined),
    timeoutMs,
    () => `ops server port in the guard's log:\n${c.output().slice(-3000)}`,
  );
  if ('exited' in line) throw new Error(`guard exited (${c.proc.exitCode}):\n${c.output().slice(-3000)}`);
  return line.port as number;
}

/** Creates topics with topic-level configs (e.g. max.message.bytes) and waits for their leaders. */
export async function createTopicsWith(brokers: string[], topics: string[], partitions: number, configs: Record<string, string>): Promise<void> {
  const admin = client(brokers, 'vqguard-test-admin').admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: topics.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1, configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })) })),
      waitForLeaders: true,
      timeout: 30_000,
    });
  } finally {
    await admin.disconnect();
  }
}

/** The group's committed offset per partition of `topic` (-1 when none). */
export async function committedOffsets(brokers: string[], groupId: string, topic: string): Promise<Map<number, number>> {
  const admin = client(brokers, 'vqguard-test-admin').admin();
  await admin.connect();
  try {
    const r = await admin.fetchOffsets({ groupId, topics: [topic] });
    return new Map((r[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]));
  } finally {
    await admin.disconnect();
  }
}
