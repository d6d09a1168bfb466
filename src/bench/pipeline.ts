/**
 * In-memory stream benchmark (no broker, so it runs where there is no Java, e.g. the GPU check):
 * encoded Avro ImageRecords -> parse -> decode -> batch -> purify + detect -> encode ->
 * GuardedImage records, through the guard's own per-batch code (processChunk) and topic runtime
 * (calibrated detector, image policy). Reports images/s and its share of model-only throughput
 * (the same detector forward pass, with reads, on tensors of the same batch size).
 *
 * `concurrency` batches are in flight at once (the guard's partitions): while one batch is on the
 * model, another is parsed, decoded or encoded.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../backend/tf.ts';
import { parseConfig } from '../config/schema.ts';
import { buildTopicRuntime, type TopicRuntime } from '../consumer/topicRuntime.ts';
import { processChunk, type InMessage } from '../consumer/processChunk.ts';
import { ModelRegistry } from '../models/registry.ts';
import { decodeGuardedImage } from '../records/avro.ts';
import { timeItAsync } from './model.ts';

export interface PipelineBenchRow {
  pipeline: string;
  batch: number;
  concurrency: number;
  records: number;
  outputs: number;
  deadLetters: number;
  flagged: number;
  streamImagesPerSec: number;
  modelOnlyImagesPerSec: number;
  /** stream / model-only */
  share: number;
  /** Milliseconds per record in each stage (summed over batches in flight, so they can exceed wall time). */
  stageMsPerRecord: Record<string, number>;
}

/** Records file: each record as a 4-byte big-endian length, then its bytes. */
export function writeRecordsFile(file: string, records: Buffer[]): void {
  mkdirSync(dirname(file), { recursive: true });
  const parts: Buffer[] = [];
  for (const r of records) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(r.length);
    parts.push(len, r);
  }
  writeFileSync(file, Buffer.concat(parts));
}

export function readRecordsFile(file: string): Buffer[] {
  const buf = readFileSync(file);
  const out: Buffer[] = [];
  for (let o = 0; o < buf.length; ) {
    if (o + 4 > buf.length) throw new Error(`${file}: truncated record length at byte ${o}`);
    const n = buf.readUInt32BE(o);
    if (o + 4 + n > buf.length) throw new Error(`${file}: record at byte ${o} runs past the end`);
    out.push(buf.subarray(o + 4, o + 4 + n));
    o += 4 + n;
  }
  return out;
}

/**
 * The topic runtime of the benchmark topic. `registry`: an already prepared registry of `models`
 * (needed for external classifiers, which load asynchronously); `image`: the topic's image policy
 * (default: the config defaults, 28x28 grey).
 */
export function pipelineRuntime(models: string, pipeline: string, batch: number, o: { registry?: ModelRegistry; image?: Record<string, unknown> } = {}): TopicRuntime {
  const config = parseConfig({
    kafka: { brokers: ['in-memory:9092'] },
    models,
    // The guard's own bound: a topic's micro-batch may not exceed maxInFlight.
    maxInFlight: Math.max(2048, 2 * batch),
    topics: [{ input: 'bench.in', output: 'bench.out', deadLetter: 'bench.dlq', pipeline, format: 'avro', maxBatchSize: batch, ...(o.image ? { image: o.image } : {}) }],
  });
  const regs = new Map<string, ModelRegistry>();
  return buildTopicRuntime(config.topics[0]!, (dir) => {
    if (o.registry) return o.registry;
    let r = regs.get(dir);
    if (!r) regs.set(dir, (r = new ModelRegistry(dir)));
    return r;
  });
}

export async function benchPipeline(
  records: Buffer[],
  o: { models: string; pipeline: string; batch: number; concurrency: number; minMs: number; minReps: number; log?: (s: string) => void; runtime?: TopicRuntime },
): Promise<PipelineBenchRow> {
  const rt = o.runtime ?? pipelineRuntime(o.models, o.pipeline, o.batch);
  const t0 = Date.now();
  const msgs: InMessage[] = records.map((value, i) => ({ key: null, value, offset: String(i), timestamp: String(t0) }));
  const chunks: InMessage[][] = [];
  for (let i = 0; i < msgs.length; i += o.batch) chunks.push(msgs.slice(i, i + o.batch));

  // Warm-up (and the WebGPU batch-limit measurement) on the first batch.
  await processChunk(rt, 'bench.in', 0, chunks[0]!);

  const stage: Record<string, number> = { parse: 0, decode: 0, tensor: 0, model: 0, encode: 0 };
  let outputs = 0, dead = 0, flagged = 0;
  let next = 0;
  const start = performance.now();
  const worker = async (partition: number) => {
    while (next < chunks.length) {
      const c = chunks[next++]!;
      const r = await processChunk(rt, 'bench.in', partition, c);
      for (const [k, v] of Object.entries(r.stageMs)) stage[k] = (stage[k] ?? 0) + v;
      const outs = r.out.get('bench.out') ?? [];
      outputs += outs.length;
      dead += r.deadLetters.length;
      flagged += r.outputs.filter((x) => x.flagged).length;
      if (outs.length + r.deadLetters.length !== c.length) throw new Error(`batch of ${c.length}: ${outs.length} outputs + ${r.deadLetters.length} dead letters`);
      const last = outs[outs.length - 1];
      if (last && !decodeGuardedImage(last.value).ok) throw new Error('an output record does not decode as GuardedImage');
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, i) => worker(i)));
  const streamSec = (performance.now() - start) / 1000;

  // Model only: the same detector on tensors of the same batch size.
  const { width: w, height: h } = rt.settings.image;
  const x = tf.randomUniform([o.batch, h, w, rt.channels], 0, 1, 'float32', 2) as Tensor4D;
  const ms = await timeItAsync(() => rt.detector.rawAsync(x), o.minMs, o.minReps);
  x.dispose();
  const modelOnly = (o.batch / ms) * 1000;
  const stream = records.length / streamSec;
  const row: PipelineBenchRow = {
    pipeline: o.pipeline, batch: o.batch, concurrency: o.concurrency, records: records.length,
    outputs, deadLetters: dead, flagged,
    streamImagesPerSec: stream, modelOnlyImagesPerSec: modelOnly, share: stream / modelOnly,
    stageMsPerRecord: Object.fromEntries(Object.entries(stage).map(([k, v]) => [k, v / records.length])),
  };
  o.log?.(`${o.pipeline} batch ${o.batch} x${o.concurrency}: stream ${stream.toFixed(0)}/s, model-only ${modelOnly.toFixed(0)}/s (${(100 * row.share).toFixed(0)}%)`);
  return row;
}
