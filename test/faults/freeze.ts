/**
 * Freeze driver: two guard CLI instances in one group process a paced stream of N labelled
 * records (with oversized garbage values mixed in) while this script freezes one of them with
 * SIGSTOP past the session timeout, F times (alternating), and resumes it with SIGCONT (a long
 * GC pause or VM freeze does the same). After each resume both instances must consume again
 * within a bounded time (or the frozen one exits non-zero, and is started again); at the end
 * every input offset must have an answer, at least once (atleastonce) or exactly once for a
 * read_committed reader (transactions), and every oversized record a truncated dead letter.
 *
 *   FAULT_N=600 FAULT_FREEZES=2 FAULT_MODE=transactions node --import tsx test/faults/freeze.ts
 *
 * Environment: FAULT_N (default 600), FAULT_FREEZES (default 2), FAULT_MODE (atleastonce |
 * transactions), FAULT_OVERSIZE (every n-th record is a 600 kB garbage value; default 97, 0 = none),
 * FAULT_FREEZE_MS (default 17000: past the 6 s session timeout and the broker's abort of the
 * frozen member's open transaction), KAFKA_BROKERS (else a local broker is started).
 *
 * Output: progress lines, then as the last line
 *   inputs=N outputs=.. deadLetters=.. truncated=.. lost=0 duplicates=.. freezes=F recoverMaxMs=..
 * Exit code 0 when lost = 0, every oversized record is dead-lettered truncated, and (transactions)
 * duplicates = 0; 1 otherwise.
 */
import { createTopics, getTestBroker, type TestBroker } from '../helpers/broker.ts';
import {
  cliOpsPort, collect, coverage, createTopicsWith, decodeResults, guardTopics, httpGet, killIfRunning, metricSum, parseMetrics, produce, rawConfig, samples,
  sleep, startCli, writeConfigFile, type CliChild, type OutMsg,
} from '../helpers/guard.ts';

const int = (name: string, d: number) => (process.env[name] ? Number(process.env[name]) : d);
const N = int('FAULT_N', 600);
const F = int('FAULT_FREEZES', 2);
const OVERSIZE = int('FAULT_OVERSIZE', 97);
const FREEZE_MS = int('FAULT_FREEZE_MS', 17_000);
const MODE = (process.env.FAULT_MODE ?? 'atleastonce') as 'atleastonce' | 'transactions';
const PARTITIONS = 4;
const t0 = Date.now();
const log = (s: string) => console.log(`[freeze ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${s}`);

async function until<T>(cond: () => Promise<T | undefined> | T | undefined, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
    await sleep(200);
  }
}

async function main(): Promise<number> {
  let broker: TestBroker | undefined;
  const kids: (CliChild | undefined)[] = [undefined, undefined];
  try {
    broker = await getTestBroker();
    const brokers = broker.brokers;
    log(`mode=${MODE} N=${N} freezes=${F} oversizeEvery=${OVERSIZE} freezeMs=${FREEZE_MS} broker=${brokers.join(',')}`);
    const recs = await samples(N, { adversarialRatio: 0.3, eps: 0.3, seed: 9, idPrefix: `freeze-${MODE}` });
    const msgs: OutMsg[] = recs.map((r, i) => ({ key: r.id, value: OVERSIZE && i % OVERSIZE === OVERSIZE - 1 ? Buffer.alloc(600_000, i % 251) : r.value, partition: i % PARTITIONS }));
    const oversized = msgs.filter((m) => m.value!.length >= 600_000).length;
    const topics = guardTopics(`freeze-${MODE}`);
    await createTopicsWith(brokers, [topics.input], PARTITIONS, { 'max.message.bytes': String(8 * 1024 * 1024) });
    await createTopicsWith(brokers, [topics.deadLetter], 1, { 'max.message.bytes': '262144' });
    await createTopics(brokers, [topics.output, topics.alerts], 1);
    const raw = rawConfig(topics, { brokers, maxBatchSize: 16, transactions: MODE === 'transactions' });
    raw.consumer = { sessionTimeoutMs: 6000, heartbeatIntervalMs: 1000, rebalanceTimeoutMs: 12_000, transactionTimeoutMs: 3000, restartBackoffMs: 500 };
    const cfg = writeConfigFile(raw);
    const ports: number[] = [0, 0];
    const start = async (i: number) => {
      kids[i] = startCli(cfg, {});
      ports[i] = await cliOpsPort(kids[i]!);
    };
    await Promise.all([start(0), start(1)]);
    const ready = async (i: number) => (await httpGet(ports[i]!, '/readyz').catch(() => ({ status: 0 }))).status === 200;
    await until(async () => (await ready(0)) && (await ready(1)) ? true : undefined, 90_000, 'both instances ready');
    log('both instances ready');

    // Paced production: the stream lasts through every freeze.
    const duration = F * (FREEZE_MS + 12_000);
    const SLICE = Math.max(10, Math.ceil(N / Math.max(1, duration / 400)));
    let produced = 0;
    const producing = (async () => {
      while (produced < N) {
        const next = Math.min(N, produced + SLICE);
        await produce(brokers, topics.input, msgs.slice(produced, next));
        produced = next;
        await sleep(400);
      }
    })();
    let recoverMax = 0;
    let exitedFrozen = 0;
    for (let f = 0; f < F; f++) {
      const i = f % 2;
      await sleep(3000);
      const c = kids[i]!;
      const joinsBefore = c.logs().filter((l) => l.msg === 'partitions assigned').length;
      c.proc.kill('SIGSTOP');
      log(`freeze ${f + 1}/${F}: instance ${'AB'[i]} SIGSTOP (produced ${produced}/${N})`);
      await sleep(FREEZE_MS);
      c.proc.kill('SIGCONT');
      const resumed = Date.now();
      // Consuming again = rejoined the group after the resume (a new assignment) and both ready.
      const rejoined = () => c.logs().filter((l) => l.msg === 'partitions assigned').length > joinsBefore;
      const outcome = await until(async () => (c.proc.exitCode !== null ? 'exited' : rejoined() && (await ready(0)) && (await ready(1)) ? 'both' : undefined), 120_000, `both consuming after freeze ${f + 1}\n${c.output().slice(-3000)}`);
      const ms = Date.now() - resumed;
      recoverMax = Math.max(recoverMax, ms);
      if (outcome === 'exited') {
        exitedFrozen++;
        if (c.proc.exitCode === 0) throw new Error('the frozen instance exited 0');
        log(`freeze ${f + 1}: instance ${'AB'[i]} exited ${c.proc.exitCode}; starting it again`);
        await start(i);
      }
      const s = parseMetrics((await httpGet(ports[i]!, '/metrics')).body).samples;
      log(`freeze ${f + 1}: ${outcome} after ${ms} ms; ${'AB'[i]} crashes=${metricSum(s, 'vqguard_consumer_crashes_total')} restarts=${metricSum(s, 'vqguard_consumer_restarts_total')} fencedCommits=${metricSum(s, 'vqguard_fenced_commits_total')}`);
    }
    await producing;
    log(`all ${N} produced; waiting for every answer`);
    const seen = new Set<string>();
    let scanned = 0;
    const got = await collect(
      brokers,
      [topics.output, topics.deadLetter],
      (g) => {
        for (; scanned < g.length; scanned++) for (const k of coverage(decodeResults([g[scanned]!], topics)).keys()) seen.add(k);
        return seen.size >= N;
      },
      { timeoutMs: 180_000, lingerMs: 3000 },
    );
    for (const c of kids) c?.proc.kill('SIGTERM');
    const codes = await Promise.all(kids.map((c) => Promise.race([c!.exited, sleep(45_000).then(() => 'timeout')])));
    const r = decodeResults(got, topics);
    const cov = coverage(r);
    let duplicates = 0;
    for (const n of cov.values()) duplicates += n - 1;
    const lost = N - cov.size;
    const truncated = new Set(r.deadLetters.filter((d) => d.originalLength !== null && d.original.length < d.originalLength).map((d) => `${d.partition}/${d.offset}`)).size;
    log(`exit codes after SIGTERM: ${codes.join(', ')}; frozen instances that exited: ${exitedFrozen}; oversized=${oversized}`);
    console.log(`inputs=${N} outputs=${r.outputs.length} deadLetters=${r.deadLetters.length} truncated=${truncated} lost=${lost} duplicates=${duplicates} freezes=${F} recoverMaxMs=${recoverMax}`);
    const ok = lost === 0 && truncated === oversized && (MODE !== 'transactions' || duplicates === 0) && codes.every((c) => c === 0);
    return ok ? 0 : 1;
  } finally {
    for (const c of kids) {
      if (c && c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGCONT');
      killIfRunning(c);
    }
    await broker?.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`[freeze] FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
