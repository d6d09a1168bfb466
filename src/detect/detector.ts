/**
 * Runs a topic's pipelines and the classifier on a batch and turns the outputs into scores
 * and verdicts. The first pipeline is the primary one: its output is the cleaned image.
 */
import { tf, asyncReadOnly } from '../backend/tf.ts';
import type { Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import { measureBatchLimit, runChunked, type BatchLimit } from '../backend/webgpu/batch.ts';
import { Classifier } from './classifier.ts';
import { bundleScoring, type ScoringClassifier } from './scoringClassifier.ts';
import type { Pipeline } from '../purify/pipeline.ts';
import { argmax, baseScores, softmax, BASE_SCORES } from './scores.ts';
import { combinedScore } from './combine.ts';
import type { Calibration } from './calibration.ts';
import type { Verdict } from '../records/avro.ts';

export interface RawScores {
  scores: Record<string, number>[];
  labelBefore: number[];
  labelAfter: number[];
  confidenceBefore: number[];
  confidenceAfter: number[];
  /** Primary pipeline's output, N*H*W*C floats. */
  purified: Float32Array;
}

/** The one Verdict type: the wire record's (records/avro.ts, io.vqguard.GuardedImage's verdict). */
export type { Verdict } from '../records/avro.ts';

export interface DetectorOptions {
  temperature: number;
  /** Grid for the worst-tile error; default: the finest split in the pipelines, at least 2. */
  tileGrid?: number;
}

export function scoreKey(pipeline: string, score: string, multi: boolean): string {
  return multi ? `${pipeline}:${score}` : score;
}

function finestSplit(pipelines: Pipeline[]): number {
  let k = 2;
  for (const p of pipelines) for (const s of p.stages) k = Math.max(k, s.grid ?? 0);
  return k;
}

export class Detector {
  readonly tileGrid: number;
  /** The classifier being guarded (vqguard's own, or an external model behind the same interface). */
  readonly classifier: ScoringClassifier;

  constructor(
    classifier: Classifier | ScoringClassifier,
    readonly pipelines: Pipeline[],
    readonly options: DetectorOptions,
    readonly calibration?: Calibration,
  ) {
    if (pipelines.length === 0) throw new Error('a detector needs at least one pipeline');
    this.classifier = classifier instanceof Classifier ? bundleScoring(classifier, 'vqguard-bundle') : classifier;
    this.tileGrid = options.tileGrid ?? finestSplit(pipelines);
  }

  get multi(): boolean {
    return this.pipelines.length > 1;
  }

  /** Names of all base score keys this detector produces. */
  scoreKeys(): string[] {
    return this.pipelines.flatMap((p) => BASE_SCORES.map((s) => scoreKey(p.name, s, this.multi)));
  }

  /** The classifier's synchronous logits; async-only formats (ONNX) go through rawAsync. */
  private syncLogits(): (x: Tensor4D) => Tensor2D {
    const f = this.classifier.logits;
    if (!f) throw new Error(`classifier ${this.classifier.source} runs only asynchronously: use rawAsync`);
    return f;
  }

  /** Classifier before, each pipeline and the classifier after it: tensors the caller disposes. */
  private forwardTensors(x: Tensor4D): { logitsB: Tensor2D; outs: { px: Tensor4D; logits: Tensor2D }[] } {
    const f = this.syncLogits();
    return tf.tidy(() => {
      const logitsB = f(x);
      const outs = this.pipelines.map((p) => {
        const px = p.apply(x);
        return { px, logits: f(px) };
      });
      return { logitsB, outs };
    });
  }

  /** Synchronous forward and scores (CPU/CUDA backends). On WebGPU use rawAsync. */
  raw(x: Tensor4D): RawScores {
    if (asyncReadOnly()) throw new Error('Detector.raw reads tensors synchronously, which the WebGPU backend cannot do: use rawAsync');
    const n = x.shape[0];
    const { logitsB, outs } = this.forwardTensors(x);
    const xv = x.dataSync() as Float32Array;
    const lb = logitsB.dataSync() as Float32Array;
    const outData = outs.map((o) => ({ px: o.px.dataSync() as Float32Array, la: o.logits.dataSync() as Float32Array }));
    tf.dispose([logitsB, ...outs.flatMap((o) => [o.px, o.logits])]);
    return this.scoresFrom(x.shape, xv, lb, outData, n);
  }

  private limits = new Map<string, Promise<BatchLimit>>();

  /** Largest batch one forward pass may take on this device (Infinity off WebGPU); measured once per image shape. */
  batchLimit(h: number, w: number, c: number): Promise<BatchLimit> {
    const key = `${h}x${w}x${c}`;
    let p = this.limits.get(key);
    if (!p) {
      p = measureBatchLimit((n) => {
        const { logitsB, outs } = this.forwardTensors(tf.zeros([n, h, w, c]) as Tensor4D);
        return [logitsB, ...outs.flatMap((o) => [o.px, o.logits])];
      });
      this.limits.set(key, p);
      p.catch(() => this.limits.delete(key));
    }
    return p;
  }

  /**
   * Same as raw, reading tensors asynchronously; on WebGPU the batch is split to respect the
   * device's limits (batchLimit). Use this on every path that may run on WebGPU.
   */
  async rawAsync(x: Tensor4D): Promise<RawScores> {
    if (!this.classifier.logits) return this.rawAsyncOnly(x);
    if (!asyncReadOnly()) return this.raw(x);
    const [n, h, w, c] = x.shape;
    const limit = await this.batchLimit(h, w, c);
    const parts = await runChunked(n, limit, async (start, count) => {
      const { logitsB, outs } = tf.tidy(() => this.forwardTensors(count === n ? x : (tf.slice(x, [start, 0, 0, 0], [count, h, w, c]) as Tensor4D)));
      try {
        const all = (await Promise.all([logitsB.data(), ...outs.flatMap((o) => [o.px.data(), o.logits.data()])])) as Float32Array[];
        return { lb: all[0]!, outs: outs.map((_, j) => ({ px: all[1 + 2 * j]!, la: all[2 + 2 * j]! })) };
      } finally {
        tf.dispose([logitsB, ...outs.flatMap((o) => [o.px, o.logits])]);
      }
    });
    const xv = (await x.data()) as Float32Array;
    const lb = concat(parts.map((p) => p.lb));
    const outData = this.pipelines.map((_, j) => ({ px: concat(parts.map((p) => p.outs[j]!.px)), la: concat(parts.map((p) => p.outs[j]!.la)) }));
    return this.scoresFrom(x.shape, xv, lb, outData, n);
  }

  /** A classifier that runs only asynchronously (ONNX): pipelines on the backend, the classifier through its own runtime. */
  private async rawAsyncOnly(x: Tensor4D): Promise<RawScores> {
    const pxs = this.pipelines.map((p) => tf.tidy(() => p.apply(x)));
    const tensors: Tensor2D[] = [];
    try {
      const logitsB = await this.classifier.logitsAsync(x);
      tensors.push(logitsB);
      for (const px of pxs) tensors.push(await this.classifier.logitsAsync(px));
      const [xv, lb, ...rest] = (await Promise.all([x.data(), ...tensors.map((t) => t.data()), ...pxs.map((t) => t.data())])) as Float32Array[];
      const las = rest.slice(0, pxs.length);
      const pxd = rest.slice(pxs.length);
      return this.scoresFrom(x.shape, xv!, lb!, pxs.map((_, j) => ({ px: pxd[j]!, la: las[j]! })), x.shape[0]);
    } finally {
      tf.dispose([...pxs, ...tensors]);
    }
  }

  private scoresFrom(shape: readonly number[], xv: Float32Array, lb: Float32Array, outData: { px: Float32Array; la: Float32Array }[], n: number): RawScores {
    const [, h, w, c] = shape as [number, number, number, number];
    const size = h * w * c;
    const k = lb.length / n;
    const res: RawScores = { scores: [], labelBefore: [], labelAfter: [], confidenceBefore: [], confidenceAfter: [], purified: outData[0]!.px };
    for (let i = 0; i < n; i++) {
      const zb = lb.subarray(i * k, (i + 1) * k);
      const img = xv.subarray(i * size, (i + 1) * size);
      const scores: Record<string, number> = {};
      this.pipelines.forEach((p, j) => {
        const o = outData[j]!;
        const s = baseScores({
          image: img,
          purified: o.px.subarray(i * size, (i + 1) * size),
          logitsBefore: zb,
          logitsAfter: o.la.subarray(i * k, (i + 1) * k),
          height: h, width: w, channels: c,
          tileGrid: this.tileGrid,
          temperature: this.options.temperature,
        });
        for (const [name, v] of Object.entries(s)) scores[scoreKey(p.name, name, this.multi)] = v;
      });
      const pb = softmax(zb);
      const pa = softmax(outData[0]!.la.subarray(i * k, (i + 1) * k));
      const lbI = argmax(pb), laI = argmax(pa);
      res.scores.push(scores);
      res.labelBefore.push(lbI);
      res.labelAfter.push(laI);
      res.confidenceBefore.push(pb[lbI]!);
      res.confidenceAfter.push(pa[laI]!);
    }
    return res;
  }

  /** Adds the combined score to raw scores (needs a calibration). */
  withCombined(raw: RawScores): RawScores {
    const cal = this.requireCalibration();
    for (const s of raw.scores) s.combined = combinedScore(s, cal.combiner);
    return raw;
  }

  verdicts(raw: RawScores): Verdict[] {
    const cal = this.requireCalibration();
    const threshold = cal.thresholds.combined!;
    return this.withCombined(raw).scores.map((scores, i) => ({
      flagged: scores.combined! > threshold,
      score: scores.combined!,
      threshold,
      scores,
      labelBefore: raw.labelBefore[i]!,
      labelAfter: raw.labelAfter[i]!,
      confidenceBefore: raw.confidenceBefore[i]!,
      confidenceAfter: raw.confidenceAfter[i]!,
    }));
  }

  private requireCalibration(): Calibration {
    if (!this.calibration) throw new Error('this detector has no calibration: run `vqguard calibrate` first');
    return this.calibration;
  }
}

function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
