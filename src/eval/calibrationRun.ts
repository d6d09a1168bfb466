/**
 * Gathers what calibration needs from a clean held-out set: base scores of every image, and
 * base scores of attacked copies of the first half (FGSM and PGD-10 against the classifier,
 * epsilons spread over 0.05..0.3), for fitting the combined score.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor1D } from '@tensorflow/tfjs-node';
import type { ImageSet } from '../data/dataset.ts';
import type { Detector } from '../detect/detector.ts';
import { fgsm, pgd, type LogitsFn } from '../attacks/attacks.ts';
import { batchTensor } from '../train/evaluate.ts';

export const CALIBRATION_EPS = [0.05, 0.1, 0.15, 0.2, 0.3];

/**
 * `attackLogits`: what the attacks differentiate; default the detector's classifier (white-box).
 * For a classifier without gradients pass a surrogate's logits (transfer attacks).
 */
export async function calibrationScores(
  det: Detector,
  set: ImageSet,
  batch = 250,
  attackLogits?: LogitsFn,
  onProgress?: (done: number, total: number) => void,
): Promise<{ clean: Record<string, number>[]; attacked: Record<string, number>[] }> {
  const f = attackLogits ?? det.classifier.logits;
  if (!f || (!attackLogits && !det.classifier.hasGradients)) throw new Error(`classifier ${det.classifier.source} has no gradients: calibration needs a surrogate to attack`);
  const clean: Record<string, number>[] = [];
  const attacked: Record<string, number>[] = [];
  const half = Math.floor(set.n / 2);
  let k = 0;
  for (let s = 0; s < set.n; s += batch) {
    const e = Math.min(set.n, s + batch);
    const x = batchTensor(set, s, e);
    clean.push(...(await det.rawAsync(x)).scores);
    const e2 = Math.min(e, half);
    if (s < e2) {
      // Attacked copies of the images in [s, e2): alternate FGSM / PGD, cycle the epsilons.
      const xs = x.slice([0, 0, 0, 0], [e2 - s, -1, -1, -1]);
      const y = tf.tensor1d(set.labels.subarray(s, e2), 'int32') as Tensor1D;
      const eps = CALIBRATION_EPS[k % CALIBRATION_EPS.length]!;
      const adv = k % 2 === 0 ? fgsm(f, xs, y, eps) : pgd(f, xs, y, { eps, steps: 10, seed: k });
      k++;
      attacked.push(...(await det.rawAsync(adv)).scores);
      tf.dispose([xs, y, adv]);
    }
    x.dispose();
    onProgress?.(e, set.n);
  }
  return { clean, attacked };
}
