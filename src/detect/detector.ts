/**
 * Runs a topic's pipelines and the classifier on a batch and turns the outputs into scores
 * and verdicts. The first pipeline is the primary one: its output is the cleaned image.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
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

  /** Scores of a batch; needs a classifier with synchronous logits (use rawAsync for any). */
  raw(x: Tensor4D): RawScores {
    const f = this.classifier.logits;
    if (!f) throw new Error(`classifier ${this.classifier.source} runs only asynchronously: use rawAsync`);
    const { logitsB, outs } = tf.tidy(() => {
      const logitsB = f(x);
      const outs = this.pipelines.map((p) => {
        const px = p.apply(x);
        return { px, logits: f(px) };
      });
      return { logitsB, outs };
    });
    return this.score(x, logitsB, outs);
  }

  /** Scores of a batch with any classifier (ONNX runs only asynchronously). */
  async rawAsync(x: Tensor4D): Promise<RawScores> {
    if (this.classifier.logits) return this.raw(x);
    const pxs = this.pipelines.map((p) => tf.tidy(() => p.apply(x)));
    const logitsB = await this.classifier.logitsAsync(x);
    const outs: { px: Tensor4D; logits: Tensor2D }[] = [];
    for (const px of pxs) outs.push({ px, logits: await this.classifier.logitsAsync(px) });
    return this.score(x, logitsB, outs);
  }

  /** Turns the classifier's outputs before/after each pipeline into scores (disposes them). */
  private score(x: Tensor4D, logitsB: Tensor2D, outs: { px: Tensor4D; logits: Tensor2D }[]): RawScores {
    const [n, h, w, c] = x.shape;
    const size = h * w * c;
    const xv = x.dataSync() as Float32Array;
    const lb = logitsB.dataSync();
    const k = lb.length / n;
    const outData = outs.map((o) => ({ px: o.px.dataSync() as Float32Array, la: o.logits.dataSync() }));
    tf.dispose([logitsB, ...outs.flatMap((o) => [o.px, o.logits])]);
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
