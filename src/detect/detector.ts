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
import { argmax, baseScores, logitScores, softmax, BASE_SCORES } from './scores.ts';
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
    // On the GPU: the reconstruction errors are reduced there (tensor ops), so only the logits, the
    // primary pipeline's output (it is republished) and two numbers per image and pipeline come
    // back; the input itself and the other pipelines' outputs are never read back.
    const parts = await runChunked(n, limit, async (start, count) => {
      const { logitsB, outs, errs } = tf.tidy(() => {
        const xs = count === n ? x : (tf.slice(x, [start, 0, 0, 0], [count, h, w, c]) as Tensor4D);
        const f = this.forwardTensors(xs);
        return { ...f, errs: f.outs.map((o) => reconErrorsTensor(xs, o.px, this.tileGrid)) };
      });
      try {
        const all = (await Promise.all([logitsB.data(), outs[0]!.px.data(), ...outs.map((o) => o.logits.data()), ...errs.map((e) => e.data())])) as Float32Array[];
        const m = outs.length;
        return { lb: all[0]!, px: all[1]!, las: all.slice(2, 2 + m), errs: all.slice(2 + m) };
      } finally {
        tf.dispose([logitsB, ...outs.flatMap((o) => [o.px, o.logits]), ...errs]);
      }
    });
    const lb = concat(parts.map((p) => p.lb));
    const outData = this.pipelines.map((_, j) => ({ la: concat(parts.map((p) => p.las[j]!)), errs: concat(parts.map((p) => p.errs[j]!)) }));
    return this.scoresFromErrors(lb, concat(parts.map((p) => p.px)), outData, n);
  }

  /** Scores when the reconstruction errors were reduced on the device: errs = [recon, reconWorstTile] per image. */
  private scoresFromErrors(lb: Float32Array, purified: Float32Array, outData: { la: Float32Array; errs: Float32Array }[], n: number): RawScores {
    const k = lb.length / n;
    const res: RawScores = { scores: [], labelBefore: [], labelAfter: [], confidenceBefore: [], confidenceAfter: [], purified };
    for (let i = 0; i < n; i++) {
      const zb = lb.subarray(i * k, (i + 1) * k);
      const scores: Record<string, number> = {};
      this.pipelines.forEach((p, j) => {
        const o = outData[j]!;
        const s = logitScores(zb, o.la.subarray(i * k, (i + 1) * k), this.options.temperature);
        const all = { ...s, recon: o.errs[2 * i]!, reconWorstTile: o.errs[2 * i + 1]! };
        for (const name of BASE_SCORES) scores[scoreKey(p.name, name, this.multi)] = all[name];
      });
      pushLabels(res, zb, outData[0]!.la.subarray(i * k, (i + 1) * k));
      res.scores.push(scores);
    }
    return res;
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
      res.scores.push(scores);
      pushLabels(res, zb, outData[0]!.la.subarray(i * k, (i + 1) * k));
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

function pushLabels(res: RawScores, zb: ArrayLike<number>, za: ArrayLike<number>): void {
  const pb = softmax(zb);
  const pa = softmax(za);
  const lbI = argmax(pb), laI = argmax(pa);
  res.labelBefore.push(lbI);
  res.labelAfter.push(laI);
  res.confidenceBefore.push(pb[lbI]!);
  res.confidenceAfter.push(pa[laI]!);
}

/**
 * recon and reconWorstTile (scores.ts) of every image as tensor ops on the backend: [N, 2].
 * Tiles are ceil(H/k) x ceil(W/k) as in worstTileError; the input is zero-padded to k tiles each
 * way and every tile's sum divided by its real pixel count (an empty tile scores 0).
 */
export function reconErrorsTensor(x: Tensor4D, px: Tensor4D, k: number): Tensor2D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const d = tf.squaredDifference(x, px) as Tensor4D;
    const recon = tf.mean(d, [1, 2, 3]);
    const th = Math.ceil(h / k), tw = Math.ceil(w / k);
    const padded = th * k === h && tw * k === w ? d : tf.pad(d, [[0, 0], [0, th * k - h], [0, tw * k - w], [0, 0]]);
    const sums = tf.sum(tf.reshape(padded, [n, k, th, k, tw, c]), [2, 4, 5]);
    const counts: number[] = [];
    for (let ty = 0; ty < k; ty++) {
      for (let tx = 0; tx < k; tx++) {
        const rows = Math.max(0, Math.min(h, (ty + 1) * th) - ty * th), cols = Math.max(0, Math.min(w, (tx + 1) * tw) - tx * tw);
        counts.push(Math.max(1, rows * cols * c));
      }
    }
    const worst = tf.max(tf.reshape(tf.div(sums, tf.tensor2d(counts, [k, k])), [n, k * k]), 1);
    return tf.stack([recon, worst], 1) as Tensor2D;
  });
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
