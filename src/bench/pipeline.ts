/**
 * In-memory stream benchmark (no broker, so it runs where there is no Java, e.g. the GPU check):
 * encoded Avro ImageRecords -> parse -> decode -> batch -> purify + detect -> encode ->
 * GuardedImage records, through the guard's own per-batch code (processChunk) and topic runtime
 * (calibrated detector, image policy). Reports images/s and its share of model-only throughput
 * (the same detector forward pass, with reads, on tensors of the same batch size).
 *
 * `concurrency` batches are in flight at once (the guard's partitions): while one batch is on the
 * model, another is parsed, decoded or encoded.
 *
 * `workers`: the stream is run once per setting and round (0 = decode/encode on the main thread,
 * n = an image pool of n worker threads, src/consumer/imagePool.ts), each run against model-only
 * measured right before and after it (a busy machine's speed drifts), the order rotated each
 * round; a row holds the medians over rounds, so the settings are compared in one run.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance as nodePerf } from 'node:perf_hooks';
import type { Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../backend/tf.ts';
import { parseConfig } from '../config/schema.ts';
import { buildTopicRuntime, type TopicRuntime } from '../consumer/topicRuntime.ts';
import { processChunk, type InMessage } from '../consumer/processChunk.ts';
import { ImagePool } from '../consumer/imagePool.ts';
import { ModelRegistry } from '../models/registry.ts';
import { decodeGuardedImage, encodeImageRecord } from '../records/avro.ts';
import type { ImageSet } from '../data/dataset.ts';
import { timeItAsync } from './model.ts';

export interface PipelineBenchRow {
  pipeline: string;
  batch: number;
  concurrency: number;
  /** The workers setting as given (0, 1, auto, ...) and the threads it meant here. */
  workersSetting: string;
  workers: number;
  records: number;
  outputs: number;
  deadLetters: number;
  flagged: number;
  streamImagesPerSec: number;
  modelOnlyImagesPerSec: number;
  /** stream / model-only */
  share: number;
  /** Model-only measured right before and after the first round's stream run. */
  modelOnlyBeforeAfter: [number, number];
  /** Each round's stream, the model-only figures around it, and their ratio (the row holds the medians). */
  rounds: { stream: number; modelOnlyBefore: number; modelOnlyAfter: number; share: number }[];
  /** Image pool tasks that failed (crashes; 0 expected). */
  poolCrashes: number;
  /** Main thread's event loop active (incl. synchronous native calls such as tfjs-node's kernels, and waiting for a core) per record. */
  eventLoopActiveMsPerRecord: number;
  /** Main thread's CPU time per record (Linux; null elsewhere): what bounds the stream when the model is fast (GPU). */
  mainThreadCpuMsPerRecord: number | null;
  /** CPU time of the whole process (main thread, image workers, TensorFlow's threads) per record. */
  cpuMsPerRecord: number;
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
 * Larger colour JPEGs for the stream bench: each digit of `set` (28x28 grey) upscaled to
 * size x size, tinted to colour, JPEG quality 90, in an Avro ImageRecord. The guard decodes them
 * with libvips (resize to 28x28, colour to grey): the expensive decode the image pool is for.
 */
export async function colourJpegRecords(set: ImageSet, count: number, size = 224): Promise<Buffer[]> {
  const { default: sharp } = await import('sharp');
  const px = set.height * set.width * set.channels;
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const j = i % set.n;
    const grey = Uint8Array.from(set.images.subarray(j * px, (j + 1) * px), (v) => Math.round(v * 255));
    const jpeg = await sharp(grey, { raw: { width: set.width, height: set.height, channels: set.channels as 1 | 3 } })
      .resize(size, size, { kernel: 'cubic' })
      .toColourspace('srgb')
      .tint({ r: 255, g: 190, b: 110 })
      .jpeg({ quality: 90 })
      .toBuffer();
    out.push(encodeImageRecord({ id: `bench-jpeg-${i}`, contentType: 'image/jpeg', image: jpeg, width: size, height: size, label: set.labels[j]!, attributes: {}, producedAt: Date.now() }));
  }
  return out;
}

/**
 * CPU time of the main thread so far, in ms (Linux: /proc/self/task/<pid>/stat, utime + stime in
 * clock ticks of 10 ms); null elsewhere. Unlike the event loop's active time, time the thread
 * waits for a core on a busy machine is not counted.
 */
export function mainThreadCpuMs(): number | null {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return null;
  }
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
  o: {
    models: string; pipeline: string; batch: number; concurrency: number; minMs: number; minReps: number; log?: (s: string) => void;
    /** Stream runs: one per setting and round (default: the main thread only, one round). */
    workers?: { setting: string; threads: number }[];
    rounds?: number;
    /** A prepared runtime (external classifiers, another image policy); default: pipelineRuntime(models, pipeline, batch). */
    runtime?: TopicRuntime;
  },
): Promise<PipelineBenchRow[]> {
  const rt = o.runtime ?? pipelineRuntime(o.models, o.pipeline, o.batch);
  const t0 = Date.now();
  const msgs: InMessage[] = records.map((value, i) => ({ key: null, value, offset: String(i), timestamp: String(t0) }));
  const chunks: InMessage[][] = [];
  for (let i = 0; i < msgs.length; i += o.batch) chunks.push(msgs.slice(i, i + o.batch));

  // Warm-up (and the WebGPU batch-limit measurement) on the first batch.
  await processChunk(rt, 'bench.in', 0, chunks[0]!);

  // Model only: the same detector on tensors of the same batch size.
  const { width: w, height: h } = rt.settings.image;
  const modelOnly = async () => {
    const x = tf.randomUniform([o.batch, h, w, rt.channels], 0, 1, 'float32', 2) as Tensor4D;
    const ms = await timeItAsync(() => rt.detector.rawAsync(x), o.minMs, o.minReps);
    x.dispose();
    return (o.batch / ms) * 1000;
  };
  type Run = Omit<PipelineBenchRow, 'modelOnlyImagesPerSec' | 'share' | 'modelOnlyBeforeAfter' | 'rounds'> & { model: [number, number] };
  const settings = o.workers ?? [{ setting: '0', threads: 0 }];
  const runs: Run[] = [];
  const rounds = Math.max(1, o.rounds ?? 1);
  for (let round = 0; round < rounds; round++) {
    // Rotated each round, so no setting always runs first (after the model-only measurement) or last.
    for (let k = 0; k < settings.length; k++) {
      const wk = settings[(k + round) % settings.length]!;
      const pool = wk.threads > 0 ? new ImagePool({ threads: wk.threads }) : null;
      try {
        await pool?.check();
        rt.pool = pool;
        if (pool) await processChunk(rt, 'bench.in', 0, chunks[0]!); // the workers' first images
        const before = await modelOnly();
        const stage: Record<string, number> = { parse: 0, decode: 0, tensor: 0, model: 0, encode: 0 };
        let outputs = 0, dead = 0, flagged = 0;
        let next = 0;
        const start = performance.now();
        const elu0 = nodePerf.eventLoopUtilization();
        const cpu0 = process.cpuUsage();
        const main0 = mainThreadCpuMs();
        const worker = async (partition: number) => {
          while (next < chunks.length) {
            const c = chunks[next++]!;
            const r = await processChunk(rt, 'bench.in', partition, c);
            for (const [key, v] of Object.entries(r.stageMs)) stage[key] = (stage[key] ?? 0) + v;
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
        const mainMs = nodePerf.eventLoopUtilization(elu0).active;
        const cpu = process.cpuUsage(cpu0);
        const main1 = mainThreadCpuMs();
        const after = await modelOnly();
        const stream = records.length / streamSec;
        runs.push({
          pipeline: o.pipeline, batch: o.batch, concurrency: o.concurrency, workersSetting: wk.setting, workers: wk.threads, records: records.length,
          outputs, deadLetters: dead, flagged, streamImagesPerSec: stream, poolCrashes: pool?.crashes ?? 0,
          stageMsPerRecord: Object.fromEntries(Object.entries(stage).map(([key, v]) => [key, v / records.length])), model: [before, after],
          eventLoopActiveMsPerRecord: mainMs / records.length, mainThreadCpuMsPerRecord: main0 === null || main1 === null ? null : (main1 - main0) / records.length, cpuMsPerRecord: (cpu.user + cpu.system) / 1000 / records.length,
        });
        o.log?.(`${o.pipeline} batch ${o.batch} x${o.concurrency}, workers ${wk.setting} (${wk.threads}), round ${round + 1}: stream ${stream.toFixed(0)}/s, model-only ${before.toFixed(0)} / ${after.toFixed(0)}/s before / after (${((200 * stream) / (before + after)).toFixed(0)}%)`);
      } finally {
        rt.pool = null;
        await pool?.close();
      }
    }
  }
  // Per setting: the median over rounds of stream, of model-only, and of their ratio (each run against its own model-only figures).
  const median = (xs: number[]) => {
    const a = [...xs].sort((x, y) => x - y);
    const m = a.length >> 1;
    return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
  };
  return settings
    .filter((wk, i) => settings.findIndex((x) => x.setting === wk.setting) === i)
    .map((wk) => {
      const mine = runs.filter((r) => r.workersSetting === wk.setting);
      const first = mine[0]!;
      const { model: _m, ...rest } = first;
      const stageMsPerRecord = Object.fromEntries(Object.keys(first.stageMsPerRecord).map((key) => [key, median(mine.map((r) => r.stageMsPerRecord[key]!))]));
      return {
        ...rest,
        streamImagesPerSec: median(mine.map((r) => r.streamImagesPerSec)),
        modelOnlyImagesPerSec: median(mine.map((r) => (r.model[0] + r.model[1]) / 2)),
        share: median(mine.map((r) => (2 * r.streamImagesPerSec) / (r.model[0] + r.model[1]))),
        modelOnlyBeforeAfter: first.model,
        poolCrashes: mine.reduce((n, r) => n + r.poolCrashes, 0),
        stageMsPerRecord,
        eventLoopActiveMsPerRecord: median(mine.map((r) => r.eventLoopActiveMsPerRecord)),
        mainThreadCpuMsPerRecord: mine.some((r) => r.mainThreadCpuMsPerRecord === null) ? null : median(mine.map((r) => r.mainThreadCpuMsPerRecord!)),
        cpuMsPerRecord: median(mine.map((r) => r.cpuMsPerRecord)),
        rounds: mine.map((r) => ({ stream: r.streamImagesPerSec, modelOnlyBefore: r.model[0], modelOnlyAfter: r.model[1], share: (2 * r.streamImagesPerSec) / (r.model[0] + r.model[1]) })),
      };
    });
}
