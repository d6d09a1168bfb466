/**
 * `vqguard replay`: reads a range of a topic (src/replay/readRange.ts, no group commits), runs
 * one or several pipelines side by side over the same records (each its own TopicRuntime and
 * calibration, processChunk per micro-batch, exactly as the guard would), and gathers per
 * pipeline: counts, flag rate, combined-score distributions (by ground truth where records
 * carry `attributes.adversarial`), accuracy before/after purification and detection
 * precision/recall/FPR where labels exist (src/demo/summary.ts), and throughput.
 * Optionally republishes the first pipeline's guarded records to an output topic.
 */
import { isAbsolute, join } from 'node:path';
import { Kafka, logLevel, CompressionTypes, Partitioners, type Producer } from 'kafkajs';
import { parseConfig } from '../config/schema.ts';
import { buildTopicRuntime, type TopicRuntime } from '../consumer/topicRuntime.ts';
import { processChunk, type InMessage } from '../consumer/processChunk.ts';
import { ModelRegistry } from '../models/registry.ts';
import { defaultCalibrationPath } from '../detect/calibration.ts';
import { decodeGuardedImage, type GuardedImage } from '../records/avro.ts';
import { summarise, type StreamSummary } from '../demo/summary.ts';
import { rocAuc } from '../eval/roc.ts';
import { quantile } from '../report/stats.ts';
import { registerAvailableCodecs } from '../kafka/codecs.ts';
import { readRange, resolveRange, rangeSize, type PartitionRange, type RangeSpec } from './readRange.ts';

export const REPLAY_FORMAT = 'vqguard-replay/1';

export interface ReplayProgress {
  done: number;
  total: number;
  seconds: number;
  /** Flagged so far, per pipeline. */
  flagged: Record<string, number>;
}

export interface ReplayOptions {
  brokers: string[];
  topic: string;
  range?: RangeSpec;
  pipelines: string[];
  /** Model set folder (default models/mnist), relative to baseDir. */
  models?: string;
  baseDir?: string;
  /** Republish the first pipeline's guarded records here. */
  outputTopic?: string;
  /** Micro-batch size (default 64, like a topic's maxBatchSize). */
  batchSize?: number;
  /** Histogram bins of the combined score (default 40). */
  bins?: number;
  clientId?: string;
  /** Share one registry cache with the caller (disposed by the caller then). */
  registries?: (dir: string) => ModelRegistry;
  onProgress?: (p: ReplayProgress) => void;
  /** Recorded in the report. */
  command?: string;
  idleTimeoutMs?: number;
}

export interface ScoreStats {
  n: number;
  mean: number;
  min: number;
  p50: number;
  p95: number;
  max: number;
}

export interface ScoreDistribution {
  threshold: number;
  /** Bin edges (bins + 1), shared by the series. */
  edges: number[];
  /** Counts per bin: all records, and by ground truth where present. */
  all: number[];
  clean?: number[];
  adversarial?: number[];
  stats: { all: ScoreStats; clean?: ScoreStats; adversarial?: ScoreStats };
}

export interface PipelineReport {
  pipeline: string;
  calibration: { file: string; fpr: number; threshold: number; dataset: string };
  modelVersions: Record<string, string>;
  counts: {
    records: number;
    outputs: number;
    deadLetters: number;
    deadLettersByReason: Record<string, number>;
    flagged: number;
    /** Outputs that carry ground truth (attributes.adversarial) / a label. */
    withGroundTruth: number;
    labelled: number;
  };
  /** flagged / outputs */
  flagRate: number;
  /** Detection vs ground truth (records with attributes.adversarial only); null without any. */
  detection: { truePositives: number; falsePositives: number; falseNegatives: number; trueNegatives: number; precision: number; recall: number; falsePositiveRate: number; auc: number } | null;
  /** Classifier accuracy before / after purification (labelled records); null without labels. */
  accuracy: { before: number; after: number; beforeOnAdversarial: number; afterOnAdversarial: number } | null;
  scores: ScoreDistribution;
  /** Seconds spent in this pipeline's processChunk calls, and records per second of those. */
  seconds: number;
  imagesPerSecond: number;
  /** summarise() over every output (ground truth missing counts as clean there). */
  summary: StreamSummary;
}

export interface ReplayReport {
  format: string;
  topic: string;
  range: { spec: { from?: string; to?: string }; partitions: PartitionRange[]; offsets: number };
  records: number;
  pipelines: PipelineReport[];
  output: { topic: string; produced: number; pipeline: string } | null;
  batchSize: number;
  /** Wall time of the whole replay (read, every pipeline, republish). */
  seconds: number;
  imagesPerSecond: number;
  readGroupId: string;
  models: string;
  command: string | null;
  createdAt: string;
}

/** The topic settings a replay runs a pipeline with: parseConfig's defaults (format auto, forward-cleaned). */
/** `image`: the models' input (size and colour) for the topic's image policy; default the config default (28x28 grey). */
export function replaySettings(
  topic: string, pipeline: string, models: string, brokers: string[], outputTopic?: string,
  image?: { colour: 'grey' | 'rgb'; width: number; height: number },
): TopicRuntime['settings'] {
  const cfg = parseConfig(
    {
      kafka: { brokers },
      models,
      topics: [
        {
          input: topic,
          pipeline,
          format: 'auto',
          action: 'forward-cleaned',
          output: outputTopic ?? (topic === 'vqguard.replay.output' ? 'vqguard.replay.output2' : 'vqguard.replay.output'),
          deadLetter: topic === 'vqguard.replay.dead-letter' ? 'vqguard.replay.dead-letter2' : 'vqguard.replay.dead-letter',
          alerts: topic === 'vqguard.replay.alerts' ? 'vqguard.replay.alerts2' : 'vqguard.replay.alerts',
          ...(image ? { image } : {}),
        },
      ],
    },
    { env: {} },
  );
  return cfg.topics[0]!;
}

function describeBound(b: RangeSpec['from']): string | undefined {
  if (!b) return undefined;
  return 'offset' in b ? `offset ${b.offset}` : `time ${new Date(b.time).toISOString()}`;
}


export function scoreStats(values: number[]): ScoreStats {
  const s = [...values].sort((a, b) => a - b);
  return {
    n: s.length,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN,
    min: s.length ? s[0]! : NaN,
    p50: quantile(s, 0.5),
    p95: quantile(s, 0.95),
    max: s.length ? s[s.length - 1]! : NaN,
  };
}

/** Counts per bin of equal-width edges (values outside go to the end bins). */
export function histogram(values: number[], edges: number[]): number[] {
  const bins = edges.length - 1;
  const out = new Array<number>(bins).fill(0);
  const lo = edges[0]!, hi = edges[bins]!;
  const w = (hi - lo) / bins;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    const i = w > 0 ? Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / w))) : 0;
    out[i]!++;
  }
  return out;
}

/** Equal-width bin edges over [min, max] of the values and the threshold. */
export function binEdges(values: number[], threshold: number, bins: number): number[] {
  let lo = threshold, hi = threshold;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!(hi > lo)) [lo, hi] = [lo - 0.5, hi + 0.5];
  return Array.from({ length: bins + 1 }, (_, i) => lo + ((hi - lo) * i) / bins);
}

/** Per-pipeline accumulator. */
class PipelineStats {
  records = 0;
  deadLetters = 0;
  flagged = 0;
  seconds = 0;
  readonly byReason: Record<string, number> = {};
  /** Stripped outputs for summarise (no image bytes). */
  readonly outputs: GuardedImage[] = [];
  readonly scores: number[] = [];
  readonly truth: (boolean | null)[] = [];

  constructor(readonly rt: TopicRuntime, readonly pipeline: string, readonly calibrationFile: string) {}

  add(records: number, res: Awaited<ReturnType<typeof processChunk>>, ms: number): void {
    this.records += records;
    this.seconds += ms / 1000;
    for (const d of res.deadLetters) {
      this.deadLetters++;
      this.byReason[d.reason] = (this.byReason[d.reason] ?? 0) + 1;
    }
    for (const m of res.out.get(this.rt.settings.output) ?? []) {
      const r = decodeGuardedImage(m.value);
      if (!r.ok) throw new Error(`replay: cannot decode a guarded output: ${r.detail}`);
      const g = r.record;
      if (g.verdict.flagged) this.flagged++;
      this.outputs.push({ ...g, image: Buffer.alloc(0), modelVersions: {} });
      this.scores.push(g.verdict.score);
      const adv = g.attributes.adversarial;
      this.truth.push(adv === 'true' ? true : adv === 'false' ? false : null);
    }
  }

  report(bins: number): PipelineReport {
    const cal = this.rt.calibration;
    const threshold = cal.thresholds.combined!;
    const withTruth = this.outputs.filter((o) => o.attributes.adversarial === 'true' || o.attributes.adversarial === 'false');
    const labelled = this.outputs.filter((o) => o.label !== null && o.label !== undefined).length;
    const all = summarise(this.records, this.outputs, this.deadLetters, this.seconds);
    const truthSummary = withTruth.length ? summarise(withTruth.length, withTruth, 0, this.seconds) : null;
    const clean = this.scores.filter((_, i) => this.truth[i] === false);
    const adversarial = this.scores.filter((_, i) => this.truth[i] === true);
    const edges = binEdges(this.scores, threshold, bins);
    const hasTruth = withTruth.length > 0;
    return {
      pipeline: this.pipeline,
      calibration: { file: this.calibrationFile, fpr: cal.fpr, threshold, dataset: cal.dataset },
      modelVersions: this.rt.modelVersions,
      counts: {
        records: this.records,
        outputs: this.outputs.length,
        deadLetters: this.deadLetters,
        deadLettersByReason: { ...this.byReason },
        flagged: this.flagged,
        withGroundTruth: withTruth.length,
        labelled,
      },
      flagRate: this.outputs.length ? this.flagged / this.outputs.length : NaN,
      detection: truthSummary
        ? {
            truePositives: truthSummary.truePositives,
            falsePositives: truthSummary.falsePositives,
            falseNegatives: truthSummary.falseNegatives,
            trueNegatives: withTruth.length - truthSummary.truePositives - truthSummary.falsePositives - truthSummary.falseNegatives,
            precision: truthSummary.precision,
            recall: truthSummary.recall,
            falsePositiveRate: truthSummary.falsePositiveRate,
            auc: rocAuc(clean, adversarial),
          }
        : null,
      accuracy: labelled
        ? { before: all.accuracyBefore, after: all.accuracyAfter, beforeOnAdversarial: all.accuracyBeforeOnAdversarial, afterOnAdversarial: all.accuracyAfterOnAdversarial }
        : null,
      scores: {
        threshold,
        edges,
        all: histogram(this.scores, edges),
        ...(hasTruth ? { clean: histogram(clean, edges), adversarial: histogram(adversarial, edges) } : {}),
        stats: { all: scoreStats(this.scores), ...(hasTruth ? { clean: scoreStats(clean), adversarial: scoreStats(adversarial) } : {}) },
      },
      seconds: this.seconds,
      imagesPerSecond: this.seconds > 0 ? this.records / this.seconds : NaN,
      summary: all,
    };
  }
}

export async function runReplay(o: ReplayOptions): Promise<ReplayReport> {
  registerAvailableCodecs(); // inputs (or a guard's outputs) compressed with snappy, lz4 or zstd
  if (o.pipelines.length === 0) throw new Error('replay: give at least one --pipeline');
  const dup = o.pipelines.find((p, i) => o.pipelines.indexOf(p) !== i);
  if (dup) throw new Error(`replay: pipeline "${dup}" given twice`);
  const baseDir = o.baseDir ?? process.cwd();
  const models = o.models ?? 'models/mnist';
  const batchSize = o.batchSize ?? 64;
  const t0 = performance.now();

  const own = new Map<string, ModelRegistry>();
  const registries =
    o.registries ??
    ((dir: string) => {
      let r = own.get(dir);
      if (!r) own.set(dir, (r = new ModelRegistry(dir)));
      return r;
    });

  const kafka = new Kafka({ clientId: o.clientId ?? 'vqguard-replay', brokers: o.brokers, logLevel: logLevel.WARN });
  let producer: Producer | null = null;
  try {
    // The model set's classifier (an external one, from `vqguard fit`, loads asynchronously) and its input size.
    const reg = registries(isAbsolute(models) ? models : join(baseDir, models));
    await reg.prepare();
    const shape = reg.inputShape();
    const image = { colour: shape.channels === 3 ? ('rgb' as const) : ('grey' as const), width: shape.width, height: shape.height };
    // Build every runtime first: a missing calibration fails before anything is read.
    const stats = o.pipelines.map((p, i) => {
      const settings = replaySettings(o.topic, p, models, o.brokers, i === 0 ? o.outputTopic : undefined, image);
      const rt = buildTopicRuntime(settings, registries, baseDir);
      return new PipelineStats(rt, p, defaultCalibrationPath(models, [p]));
    });

    const admin = kafka.admin();
    await admin.connect();
    let partitions: PartitionRange[];
    try {
      const topics = await admin.listTopics();
      if (!topics.includes(o.topic)) throw new Error(`replay: topic "${o.topic}" does not exist`);
      partitions = await resolveRange(admin, o.topic, o.range ?? {});
      if (o.outputTopic && !topics.includes(o.outputTopic)) {
        // Created up front (as many partitions as the input) rather than auto-created on first send.
        await admin.createTopics({ topics: [{ topic: o.outputTopic, numPartitions: partitions.length }], waitForLeaders: true });
      }
    } finally {
      await admin.disconnect();
    }
    const total = rangeSize(partitions);

    if (o.outputTopic) {
      producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
      await producer.connect();
    }
    let produced = 0;
    let done = 0;
    const first = stats[0]!;
    const progress = () =>
      o.onProgress?.({ done, total, seconds: (performance.now() - t0) / 1000, flagged: Object.fromEntries(stats.map((s) => [s.pipeline, s.flagged])) });
    progress();

    const read = await readRange({
      kafka,
      topic: o.topic,
      ranges: partitions,
      maxBatch: batchSize,
      idleTimeoutMs: o.idleTimeoutMs,
      onBatch: async (partition: number, messages: InMessage[]) => {
        for (const s of stats) {
          const t = performance.now();
          const res = await processChunk(s.rt, o.topic, partition, messages);
          s.add(messages.length, res, performance.now() - t);
          if (s === first && producer && o.outputTopic) {
            const out = res.out.get(o.outputTopic) ?? [];
            if (out.length) {
              await producer.send({ topic: o.outputTopic, acks: -1, compression: CompressionTypes.None, messages: out });
              produced += out.length;
            }
          }
        }
        done += messages.length;
        progress();
      },
    });

    const seconds = (performance.now() - t0) / 1000;
    const bins = o.bins ?? 40;
    return {
      format: REPLAY_FORMAT,
      topic: o.topic,
      range: { spec: { from: describeBound(o.range?.from), to: describeBound(o.range?.to) }, partitions, offsets: total },
      records: read.records,
      pipelines: stats.map((s) => s.report(bins)),
      output: o.outputTopic ? { topic: o.outputTopic, produced, pipeline: first.pipeline } : null,
      batchSize,
      seconds,
      imagesPerSecond: seconds > 0 ? read.records / seconds : NaN,
      readGroupId: read.groupId,
      models,
      command: o.command ?? null,
      createdAt: new Date().toISOString(),
    };
  } finally {
    await producer?.disconnect().catch(() => undefined);
    for (const r of own.values()) r.dispose();
  }
}
