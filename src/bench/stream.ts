/**
 * Stream benchmark against a real broker: guard throughput at saturation, a pass-through
 * consumer -> producer with the same client, broker, records and batching (the cost of Kafka
 * alone), end-to-end latency at fixed offered rates, and where the time goes per stage.
 */
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { parseConfig } from '../config/schema.ts';
import { Guard, createLogger } from '../consumer/guard.ts';
import type { ChunkResult } from '../consumer/processChunk.ts';
import type { SampleRecord } from '../sample/produceSample.ts';
import { chunk } from '../consumer/offsets.ts';
import { percentile } from '../report/stats.ts';

export interface StreamBenchResult {
  records: number;
  maxBatchSize: number;
  guardImagesPerSec: number;
  passThroughImagesPerSec: number;
  ratio: number;
  stageMsPerRecord: Record<string, number>;
  latency: { offeredPerSec: number; achievedPerSec: number; p50Ms: number; p99Ms: number; records: number }[];
  batchComputeMs: number;
}


async function createTopics(kafka: Kafka, topics: string[], partitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })), waitForLeaders: true });
  await admin.disconnect();
}

async function produce(kafka: Kafka, topic: string, records: SampleRecord[], ratePerSec?: number): Promise<void> {
  const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await p.connect();
  if (!ratePerSec) {
    for (const part of chunk(records, 500)) await p.send({ topic, acks: -1, messages: part.map((r) => ({ key: r.id, value: r.value })) });
  } else {
    // Paced: small sends every 20 ms.
    const per = Math.max(1, Math.round((ratePerSec * 20) / 1000));
    const t0 = performance.now();
    for (let i = 0; i < records.length; i += per) {
      const due = t0 + (i / ratePerSec) * 1000;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      await p.send({ topic, acks: -1, messages: records.slice(i, i + per).map((r) => ({ key: r.id, value: r.value })) });
    }
  }
  await p.disconnect();
}

function guardConfig(brokers: string[], input: string, tag: string, maxBatchSize: number) {
  return parseConfig({
    kafka: { brokers, clientId: `bench-${tag}`, groupId: `bench-${tag}-${Date.now()}` },
    http: { port: 0 },
    models: 'models/mnist',
    alerts: { topic: `${input}.alerts` },
    topics: [{ input, pipeline: 'split2>full', output: `${input}.out`, deadLetter: `${input}.dlq`, maxBatchSize, maxBatchWaitMs: 20 }],
  });
}

/** Runs a guard until `expect` records were handled; returns the per-chunk results and timing. */
async function runGuard(brokers: string[], input: string, tag: string, maxBatchSize: number, expect: number, timeoutMs: number) {
  const chunks: { at: number; r: ChunkResult }[] = [];
  let done = 0;
  let resolveDone!: () => void;
  const finished = new Promise<void>((r) => (resolveDone = r));
  const guard = new Guard(guardConfig(brokers, input, tag, maxBatchSize), {
    logger: createLogger(new (await import('node:stream')).PassThrough()),
    httpPort: 0,
    events: {
      onChunk: (_t, _p, r) => {
        chunks.push({ at: Date.now(), r });
        done += r.outputs.length + r.deadLetters.length;
        if (done >= expect) resolveDone();
      },
    },
  });
  await guard.start();
  const timer = setTimeout(resolveDone, timeoutMs);
  return {
    chunks,
    finished: finished.then(async () => {
      clearTimeout(timer);
      await guard.stop();
    }),
  };
}

export async function benchStream(brokers: string[], records: SampleRecord[], o: { maxBatchSize: number; latencySeconds: number; partitions: number }): Promise<StreamBenchResult> {
  const kafka = new Kafka({ clientId: 'vqguard-bench', brokers, logLevel: logLevel.NOTHING });
  const id = Date.now();
  const satTopic = `bench-sat-${id}`;
  const passOut = `bench-pass-${id}`;
  await createTopics(kafka, [satTopic, `${satTopic}.out`, `${satTopic}.dlq`, `${satTopic}.alerts`, passOut], o.partitions);
  await produce(kafka, satTopic, records);

  // 1. Guard at saturation: all records are waiting before it starts.
  const g = await runGuard(brokers, satTopic, 'sat', o.maxBatchSize, records.length, 600_000);
  await g.finished;
  const first = g.chunks[0]!, last = g.chunks[g.chunks.length - 1]!;
  const firstN = first.r.outputs.length + first.r.deadLetters.length;
  const guardIps = (records.length - firstN) / ((last.at - first.at) / 1000);
  const stage: Record<string, number> = { parse: 0, decode: 0, tensor: 0, model: 0, encode: 0 };
  for (const c of g.chunks) for (const [k, v] of Object.entries(c.r.stageMs)) stage[k]! += v;
  const handled = g.chunks.reduce((s, c) => s + c.r.outputs.length + c.r.deadLetters.length, 0);
  const stageMsPerRecord = Object.fromEntries(Object.entries(stage).map(([k, v]) => [k, v / handled]));
  // Time not inside processChunk: fetch, produce + ack, commit.
  const totalMs = last.at - first.at;
  const inChunk = g.chunks.slice(1).reduce((s, c) => s + Object.values(c.r.stageMs).reduce((a, b) => a + b, 0), 0);
  stageMsPerRecord.kafka = (totalMs - inChunk) / (records.length - firstN);
  const batchComputeMs = (stage.model! / handled) * o.maxBatchSize;

  // 2. Pass-through: same records, same client and batching, no image work.
  const consumer = kafka.consumer({ groupId: `bench-pass-${id}`, maxWaitTimeInMs: 20 });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  await consumer.connect();
  await consumer.subscribe({ topics: [satTopic], fromBeginning: true });
  let passDone = 0, pFirst = 0, pFirstN = 0, pLast = 0;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 300_000);
    void consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
        for (const part of chunk(batch.messages, o.maxBatchSize)) {
          await producer.sendBatch({ acks: -1, topicMessages: [{ topic: passOut, messages: part.map((m) => ({ key: m.key, value: m.value })) }] });
          const lastOff = part[part.length - 1]!.offset;
          resolveOffset(lastOff);
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: (BigInt(lastOff) + 1n).toString() }]);
          await heartbeat();
          const now = Date.now();
          if (!pFirst) {
            pFirst = now;
            pFirstN = part.length;
          }
          pLast = now;
          passDone += part.length;
          if (passDone >= records.length) {
            clearTimeout(timer);
            resolve();
          }
        }
      },
    });
  });
  await consumer.disconnect();
  await producer.disconnect();
  const passIps = (records.length - pFirstN) / ((pLast - pFirst) / 1000);

  // 3. Latency at fixed offered rates (half and a quarter of the guard's saturation rate).
  const latency: StreamBenchResult['latency'] = [];
  for (const frac of [0.5, 0.25]) {
    const rate = Math.max(1, Math.floor(guardIps * frac));
    const n = Math.min(records.length, Math.max(50, Math.round(rate * o.latencySeconds)));
    const topic = `bench-lat-${frac}-${id}`;
    await createTopics(kafka, [topic, `${topic}.out`, `${topic}.dlq`, `${topic}.alerts`], o.partitions);
    const run = await runGuard(brokers, topic, `lat${frac}`, o.maxBatchSize, n, 600_000);
    // Wait until the guard is assigned before offering load.
    await new Promise((r) => setTimeout(r, 4000));
    const fresh = records.slice(0, n).map((r) => ({ ...r }));
    const t0 = performance.now();
    await produce(kafka, topic, fresh, rate);
    await run.finished;
    const lat: number[] = [];
    for (const c of run.chunks) for (const ts of c.r.timestamps) lat.push(c.at - ts);
    latency.push({ offeredPerSec: rate, achievedPerSec: n / ((performance.now() - t0) / 1000), p50Ms: percentile(lat, 0.5), p99Ms: percentile(lat, 0.99), records: lat.length });
  }
  return {
    records: records.length,
    maxBatchSize: o.maxBatchSize,
    guardImagesPerSec: guardIps,
    passThroughImagesPerSec: passIps,
    ratio: guardIps / passIps,
    stageMsPerRecord,
    latency,
    batchComputeMs,
  };
}
