/**
 * Fault driver: the real guard CLI processes a stream of N labelled records while this script
 * SIGKILLs it at random points K times and starts it again; at the end every input offset must
 * have an answer (an output or a dead letter): at least one in at-least-once mode, exactly one
 * (read_committed) in transactions mode.
 *
 *   FAULT_N=300 FAULT_K=3 FAULT_MODE=atleastonce node --import tsx test/faults/kill.ts
 *
 * Environment:
 *   FAULT_N          records (default 300); every 33rd is malformed (-> a dead letter)
 *   FAULT_K          SIGKILLs (default 3)
 *   FAULT_MODE       atleastonce | transactions (default atleastonce)
 *   FAULT_SEED       seed for the kill points and the stream (default: random, printed)
 *   FAULT_PARTITIONS input partitions (default 2)
 *   FAULT_BATCH      guard maxBatchSize (default 16)
 *   FAULT_OVERSIZE   every FAULT_OVERSIZE-th record is a 600 kB garbage value (default 0: none); the
 *                    input topic then takes 8 MiB messages and the dead-letter topic only 256 KiB, so
 *                    each one must end as a truncated dead letter (original length + sha256)
 *   KAFKA_BROKERS    use this broker; otherwise a local one is started (test/helpers/broker.ts)
 *
 * Kill points: each is either progress-based (when the answered count passes a random threshold,
 * plus 0-150 ms jitter (none 30 % of the time, to catch produced-but-not-committed chunks), so the kill lands anywhere in the consume -> produce -> commit cycle) or,
 * one time in five, time-based during start-up (0.5-6 s after spawn). The records are produced
 * while the guard runs: 40 % up front, the rest in slices of 20, each once the guard has caught up to
 * within a slice (a fast guard could otherwise drain the stream before the last kill point).
 * In transactions mode every process gets the same VQGUARD_TRANSACTIONAL_ID, so each restart
 * fences the killed producer and aborts its open transaction.
 *
 * Output: progress lines, then as the last line
 *   inputs=N outputs=.. deadLetters=.. lost=0 duplicates=..
 * Exit code 0 when lost = 0 (and duplicates = 0 in transactions mode), 1 otherwise.
 */
import { Kafka, logLevel } from 'kafkajs';
import { createTopics, getTestBroker, type TestBroker } from '../helpers/broker.ts';
import {
  collect, coverage, createTopicsWith, decodeResults, guardTopics, killIfRunning, produce, rawConfig, samples, sleep, startCli, writeConfigFile,
  type CliChild, type OutMsg,
} from '../helpers/guard.ts';
import { decodeDeadLetter, decodeGuardedImage } from '../../src/records/avro.ts';
import { mulberry32 } from '../../src/data/dataset.ts';

type Mode = 'atleastonce' | 'transactions';

const N = intEnv('FAULT_N', 300);
const K = intEnv('FAULT_K', 3);
const MODE = (process.env.FAULT_MODE ?? 'atleastonce') as Mode;
const SEED = intEnv('FAULT_SEED', Math.floor(Math.random() * 2 ** 31));
const PARTITIONS = intEnv('FAULT_PARTITIONS', 2);
const BATCH = intEnv('FAULT_BATCH', 16);
const OVERSIZE = intEnv('FAULT_OVERSIZE', 0);
const DLQ_LIMIT = 262_144;
const SLICE = 20;
const MAX_JITTER_MS = 150;

function intEnv(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${v}`);
  return n;
}

const t0 = Date.now();
const log = (s: string) => console.log(`[faults ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${s}`);

/** Follows the output and dead-letter topics (read_committed) and counts distinct answered input offsets. */
async function watch(brokers: string[], topics: { output: string; deadLetter: string }) {
  const seen = new Set<string>();
  const kafka = new Kafka({ clientId: 'vqguard-faults-watch', brokers, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `faults-watch-${process.pid}-${Date.now()}`, readUncommitted: false, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topics.output, topics.deadLetter], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, message }) => {
      if (!message.value) return;
      if (topic === topics.output) {
        const d = decodeGuardedImage(message.value);
        if (d.ok) seen.add(`${d.record.source.partition}/${d.record.source.offset}`);
      } else {
        const d = decodeDeadLetter(message.value);
        if (d.ok) seen.add(`${d.record.partition}/${d.record.offset}`);
      }
    },
  });
  return { answered: () => seen.size, stop: () => consumer.disconnect() };
}

async function waitUntil(cond: () => boolean, timeoutMs: number, what: () => string, child?: CliChild): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what()}${child ? `\n--- guard output (tail) ---\n${child.output().slice(-4000)}` : ''}`);
    await sleep(25);
  }
}

async function main(): Promise<number> {
  if (MODE !== 'atleastonce' && MODE !== 'transactions') throw new Error(`FAULT_MODE must be atleastonce or transactions, got ${MODE}`);
  const rng = mulberry32(SEED);
  log(`mode=${MODE} N=${N} K=${K} seed=${SEED} partitions=${PARTITIONS} maxBatchSize=${BATCH}`);

  let broker: TestBroker | undefined;
  let child: CliChild | undefined;
  let watcher: Awaited<ReturnType<typeof watch>> | undefined;
  try {
    broker = await getTestBroker();
    const brokers = broker.brokers;
    log(`broker ${brokers.join(',')} (${broker.kind})`);

    // Labelled traffic, ~3 % malformed.
    const recs = await samples(N, { adversarialRatio: 0.3, eps: 0.3, seed: 7, idPrefix: `faults-${MODE}` });
    const msgs: OutMsg[] = recs.map((r, i) => ({
      key: r.id,
      value: OVERSIZE && i % OVERSIZE === OVERSIZE - 1 ? Buffer.alloc(600_000, i % 251) : i % 33 === 16 ? Buffer.from(`not an image record #${i}`) : r.value,
      partition: i % PARTITIONS,
    }));
    const malformed = msgs.filter((m, i) => m.value !== recs[i]!.value).length;

    const topics = guardTopics(`faults-${MODE}`);
    if (OVERSIZE) {
      await createTopicsWith(brokers, [topics.input], PARTITIONS, { 'max.message.bytes': String(8 * 1024 * 1024) });
      await createTopicsWith(brokers, [topics.deadLetter], 1, { 'max.message.bytes': String(DLQ_LIMIT) });
      await createTopics(brokers, [topics.output, topics.alerts], 1);
    } else {
      await createTopics(brokers, [topics.input], PARTITIONS);
      await createTopics(brokers, [topics.output, topics.deadLetter, topics.alerts], 1);
    }
    const cfg = writeConfigFile(rawConfig(topics, { brokers, transactions: MODE === 'transactions', maxBatchSize: BATCH }));
    const env: Record<string, string> = MODE === 'transactions' ? { VQGUARD_TRANSACTIONAL_ID: `${topics.groupId}-tx` } : {};

    // Which input (partition/offset) holds which record.
    const expected = new Map<string, string>(); // "p/o" -> id or '' for malformed
    const send = async (from: number, to: number) => {
      const part = msgs.slice(from, to);
      const where = await produce(brokers, topics.input, part);
      where.forEach((w, j) => expected.set(`${w.partition}/${w.offset}`, part[j]!.value === recs[from + j]!.value ? recs[from + j]!.id : ''));
    };
    watcher = await watch(brokers, topics);
    const w = watcher;
    const upFront = Math.ceil(N * 0.4);
    await send(0, upFront);
    let produced = upFront;
    // The rest in slices, each once the guard has caught up to within a slice, so that a fast guard
    // cannot drain the whole stream before the last kill point.
    const producing = (async () => {
      while (produced < N) {
        while (w.answered() < produced - SLICE) await sleep(25);
        const next = Math.min(N, produced + SLICE);
        await send(produced, next);
        produced = next;
        await sleep(150);
      }
    })();
    producing.catch(() => undefined);

    // K random kill points.
    const thresholds = Array.from({ length: K }, () => Math.floor(N * (0.05 + 0.8 * rng()))).sort((a, b) => a - b);
    const kills: string[] = [];
    for (let k = 0; k < K; k++) {
      if (produced >= N && w.answered() >= N) {
        // A fast guard can finish the whole stream before every kill point came: the remaining
        // kills would have nothing in flight to interrupt (and could never see a new answer).
        log(`every record answered after ${k} kill(s); the remaining ${K - k} kill point(s) have nothing to interrupt`);
        break;
      }
      child = startCli(cfg, env);
      const c = child;
      const spawnedAt = Date.now();
      const startAnswered = w.answered();
      const exitedEarly = () => c.proc.exitCode !== null || c.proc.signalCode !== null;
      let how: string;
      if (rng() < 0.2) {
        const ms = Math.floor(500 + 5500 * rng());
        // During start-up: at the chosen time, or as soon as this process answers its first record.
        await waitUntil(() => Date.now() - spawnedAt >= ms || w.answered() > startAnswered || exitedEarly(), ms + 1000, () => 'start-up kill point', c);
        how = `${Date.now() - spawnedAt} ms after spawn (start-up, drawn ${ms} ms)`;
      } else {
        // Past the threshold and at least one new answer from this process.
        const target = Math.max(thresholds[k]!, startAnswered + 1);
        await waitUntil(() => (w.answered() >= target && w.answered() > startAnswered) || exitedEarly(), 240_000, () => `kill ${k + 1}: answered ${w.answered()}, waiting for ${target}`, c);
        const jitter = rng() < 0.3 ? 0 : Math.floor(MAX_JITTER_MS * rng());
        await sleep(jitter);
        how = `at ${w.answered()} answered (threshold ${thresholds[k]}, +${jitter} ms)`;
      }
      if (exitedEarly()) throw new Error(`guard exited on its own (${c.proc.exitCode ?? c.proc.signalCode}) before kill ${k + 1}:\n${c.output().slice(-4000)}`);
      c.proc.kill('SIGKILL');
      const how2 = await Promise.race([c.exited, sleep(10_000).then(() => 'still running')]);
      if (how2 !== 'SIGKILL') throw new Error(`kill ${k + 1}: expected the guard to die of SIGKILL, got ${String(how2)}`);
      kills.push(how);
      log(`kill ${k + 1}/${K}: SIGKILL ${how}; answered so far ${w.answered()}/${N}`);
    }

    // The last run finishes the stream.
    child = startCli(cfg, env);
    const last = child;
    await producing; // paced by the answers, so only with a guard running
    await waitUntil(() => w.answered() >= N || last.proc.exitCode !== null, Math.max(180_000, N * 300), () => `final run: answered ${w.answered()}/${N}`, last);
    if (last.proc.exitCode !== null) throw new Error(`final run exited on its own (${last.proc.exitCode}):\n${last.output().slice(-4000)}`);
    // The graceful stop is tested on a running guard: if the stream was already answered, wait until it holds its partitions.
    await waitUntil(() => last.output().includes('partitions assigned') || last.proc.exitCode !== null, 120_000, () => 'final run: partitions assigned', last);
    log(`final run answered all ${N}; SIGTERM`);
    last.proc.kill('SIGTERM');
    const code = await Promise.race([last.exited, sleep(45_000).then(() => 'timeout')]);
    if (code !== 0) throw new Error(`final run: exit ${String(code)} after SIGTERM:\n${last.output().slice(-4000)}`);
    await watcher.stop();
    watcher = undefined;

    // Read everything back from the beginning (read_committed) and count.
    const answeredNow = new Set<string>();
    let scanned = 0;
    const got = await collect(
      brokers,
      [topics.output, topics.deadLetter, topics.alerts],
      (g) => {
        for (; scanned < g.length; scanned++) for (const k of coverage(decodeResults([g[scanned]!], topics)).keys()) answeredNow.add(k);
        return answeredNow.size >= N;
      },
      { timeoutMs: 60_000, lingerMs: 2000 },
    );
    const r = decodeResults(got, topics);
    const cov = coverage(r);
    let lost = 0;
    for (const k of expected.keys()) if (!cov.has(k)) lost++;
    let duplicates = 0;
    for (const n of cov.values()) duplicates += n - 1;
    const stray = [...cov.keys()].filter((k) => !expected.has(k)).length;
    let mismatched = 0;
    for (const o of r.outputs) if (expected.get(`${o.source.partition}/${o.source.offset}`) !== o.id) mismatched++;
    for (const d of r.deadLetters) if (expected.get(`${d.partition}/${d.offset}`) !== '') mismatched++;
    const alertIds = r.alerts.map((a) => `${a.partition}/${a.offset}`);
    const alertDuplicates = alertIds.length - new Set(alertIds).size;

    let aborted = '';
    if (MODE === 'transactions') {
      // What a read_uncommitted reader sees beyond the committed answers: writes of transactions the kills left open (aborted on restart).
      const committed = r.outputs.length + r.deadLetters.length;
      const all = await collect(brokers, [topics.output, topics.deadLetter], (g) => g.length >= committed, { timeoutMs: 20_000, lingerMs: 1500, readUncommitted: true });
      aborted = ` abortedWrites=${all.length - committed}`;
    }
    const oversized = msgs.filter((m) => m.value!.length >= 600_000).length;
    const truncated = r.deadLetters.filter((d) => d.originalLength !== null && d.original.length < d.originalLength).length;
    log(`kills=${kills.length} malformed=${malformed} oversized=${oversized} truncatedDeadLetters=${truncated} alerts=${r.alerts.length} alertDuplicates=${alertDuplicates} undecodable=${r.undecodable} stray=${stray} mismatched=${mismatched}${aborted}`);
    const ok = truncated >= oversized && lost === 0 && stray === 0 && mismatched === 0 && r.undecodable === 0 && (MODE !== 'transactions' || (duplicates === 0 && alertDuplicates === 0));
    console.log(`inputs=${expected.size} outputs=${r.outputs.length} deadLetters=${r.deadLetters.length} lost=${lost} duplicates=${duplicates}`);
    return ok && expected.size === N ? 0 : 1;
  } finally {
    killIfRunning(child);
    await watcher?.stop().catch(() => undefined);
    await broker?.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`[faults] FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
