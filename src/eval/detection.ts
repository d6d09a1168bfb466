/**
 * Detection evaluation: clean test images are the negatives; attacked test images the
 * positives, counted two ways (all attacked images, and only attacks that fooled the
 * undefended classifier). Thresholds come from the calibration (clean validation data),
 * never from the data evaluated here.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor1D } from '@tensorflow/tfjs-node';
import type { ImageSet } from '../data/dataset.ts';
import type { Detector } from '../detect/detector.ts';
import { runAttack, type AttackSpec, type LogitsFn } from '../attacks/attacks.ts';
import { batchTensor } from '../train/evaluate.ts';
import { rateAbove, rocAuc, rocCurve } from './roc.ts';

export interface DetectionRow {
  attack: string;
  eps: number;
  score: string;
  positives: 'all' | 'successful';
  nPositives: number;
  nNegatives: number;
  auc: number;
  tprAtFpr01: number;
  tprAtFpr05: number;
  /** Actual FPR on clean test data at the operating (1%) threshold. */
  fpr: number;
  fpr05: number;
}

export interface DetectionResult {
  rows: DetectionRow[];
  curves: { eps: number; score: string; points: { fpr: number; tpr: number }[]; auc: number }[];
}

async function collect(det: Detector, set: ImageSet, transform: ((x: ReturnType<typeof batchTensor>, s: number, e: number) => ReturnType<typeof batchTensor>) | null, batch: number, onBatch?: (images: number) => void) {
  const scores: Record<string, number>[] = [];
  const labelBefore: number[] = [];
  for (let s = 0; s < set.n; s += batch) {
    const e = Math.min(set.n, s + batch);
    const x = batchTensor(set, s, e);
    const xi = transform ? transform(x, s, e) : x;
    const raw = det.withCombined(await det.rawAsync(xi));
    scores.push(...raw.scores);
    labelBefore.push(...raw.labelBefore);
    if (xi !== x) xi.dispose();
    x.dispose();
    onBatch?.(e - s);
  }
  return { scores, labelBefore };
}

/** `attackLogits`: what the attack differentiates (default the detector's classifier; a surrogate's for transfer attacks). */
/** `onProgress(done, total)`: images scored so far, of set.n x (1 + epsilons). */
export async function evaluateDetection(
  det: Detector,
  set: ImageSet,
  attack: AttackSpec,
  epsList: number[],
  batch = 200,
  attackLogits?: LogitsFn,
  onProgress?: (done: number, total: number) => void,
): Promise<DetectionResult> {
  const f = attackLogits ?? det.classifier.logits;
  if (!f || (!attackLogits && !det.classifier.hasGradients)) throw new Error(`classifier ${det.classifier.source} has no gradients: pass a surrogate to attack`);
  const cal = det.calibration;
  if (!cal) throw new Error('detection evaluation needs a calibrated detector');
  const keys = ['combined', ...det.scoreKeys()];
  const total = set.n * (1 + epsList.length);
  let done = 0;
  const onBatch = (n: number) => onProgress?.((done += n), total);
  const clean = await collect(det, set, null, batch, onBatch);
  const t01 = cal.thresholdsByFpr['0.01'] ?? cal.thresholds;
  const t05 = cal.thresholdsByFpr['0.05'] ?? cal.thresholds;
  const rows: DetectionRow[] = [];
  const curves: DetectionResult['curves'] = [];
  for (const eps of epsList) {
    const adv = await collect(det, set, (x, s, e) => {
      const y = tf.tensor1d(set.labels.subarray(s, e), 'int32') as Tensor1D;
      const out = runAttack(attack, f, x, y, eps);
      y.dispose();
      return out;
    }, batch, onBatch);
    const successful = adv.labelBefore.map((l, i) => l !== set.labels[i]);
    for (const key of keys) {
      const neg = clean.scores.map((s) => s[key]!);
      const posAll = adv.scores.map((s) => s[key]!);
      for (const which of ['all', 'successful'] as const) {
        const pos = which === 'all' ? posAll : posAll.filter((_, i) => successful[i]);
        rows.push({
          attack: attack.name, eps, score: key, positives: which,
          nPositives: pos.length, nNegatives: neg.length,
          auc: rocAuc(neg, pos),
          tprAtFpr01: rateAbove(pos, t01[key]!),
          tprAtFpr05: rateAbove(pos, t05[key]!),
          fpr: rateAbove(neg, t01[key]!),
          fpr05: rateAbove(neg, t05[key]!),
        });
        if (which === 'successful' && pos.length > 0) curves.push({ eps, score: key, points: rocCurve(neg, pos), auc: rocAuc(neg, pos) });
      }
    }
  }
  return { rows, curves };
}
