/**
 * Black-box transfer: the attacker has no access to the guard's models. They train their own
 * substitute classifier (a different architecture: LeNet-style 5x5 convolutions with max
 * pooling, TF.js layers API) on data disjoint from the test split, craft FGSM / PGD on it,
 * and send the result through the guard. Reported per pipeline: accuracy after purification,
 * detection rate at the calibrated 1% FPR, guard success (correct or flagged).
 */
import { tf } from '../backend/tf.ts';
import type { Tensor, Tensor1D, Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import type { ImageSet } from '../data/dataset.ts';
import type { Classifier } from '../detect/classifier.ts';
import type { Detector } from '../detect/detector.ts';
import type { Pipeline } from '../purify/pipeline.ts';
import { fgsm, pgd, type LogitsFn } from '../attacks/attacks.ts';
import { flagged, wilson } from './worstCase.ts';

export interface Substitute {
  logits: LogitsFn;
  cleanAccuracy: number;
  trainImages: number;
  epochs: number;
  seconds: number;
  dispose(): void;
}

/** Trains the substitute (LeNet-style, unlike the guard's 3x3 conv classifier). */
export async function trainSubstitute(train: ImageSet, test: ImageSet, opts: { epochs: number; seed: number }): Promise<Substitute> {
  const t0 = Date.now();
  const { height: h, width: w, channels: c } = train;
  const init = (s: number) => tf.initializers.glorotUniform({ seed: opts.seed + s });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [h, w, c], filters: 16, kernelSize: 5, padding: 'same', activation: 'tanh', kernelInitializer: init(1) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 32, kernelSize: 5, padding: 'same', activation: 'tanh', kernelInitializer: init(2) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 100, activation: 'tanh', kernelInitializer: init(3) }),
      tf.layers.dense({ units: 10, kernelInitializer: init(4) }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(0.001), loss: (yt: Tensor, yp: Tensor) => tf.losses.softmaxCrossEntropy(yt, yp) });
  const xs = tf.tensor4d(train.images, [train.n, h, w, c]);
  const ys = tf.oneHot(tf.tensor1d(train.labels, 'int32'), 10);
  await model.fit(xs, ys, { epochs: opts.epochs, batchSize: 64, shuffle: true, verbose: 0 });
  tf.dispose([xs, ys]);
  const logits: LogitsFn = (x) => model.apply(x) as Tensor2D;
  const xt = tf.tensor4d(test.images, [test.n, h, w, c]);
  const pred = tf.tidy(() => tf.argMax(logits(xt as Tensor4D), 1).dataSync());
  xt.dispose();
  let ok = 0;
  for (let i = 0; i < test.n; i++) if (pred[i] === test.labels[i]) ok++;
  return { logits, cleanAccuracy: ok / test.n, trainImages: train.n, epochs: opts.epochs, seconds: (Date.now() - t0) / 1000, dispose: () => model.dispose() };
}

export interface TransferCell {
  pipeline: string;
  attack: string;
  eps: number;
  images: number;
  /** Accuracy of the substitute on its own adversarials (white-box on the substitute). */
  substituteAccuracy: number;
  accuracy: number;
  accuracyCi: [number, number];
  detector: string | null;
  detectionRate: number | null;
  flaggedAll: number | null;
  guardSuccess: number;
  guardCi: [number, number];
}

export function transferCells(clf: Classifier, sub: Substitute, targets: { name: string; pipeline: Pipeline | null; det: Detector | null }[], set: ImageSet, attack: 'fgsm' | 'pgd', eps: number, steps: number): TransferCell[] {
  const shape: [number, number, number, number] = [set.n, set.height, set.width, set.channels];
  const x = tf.tensor4d(set.images, shape) as Tensor4D;
  const y = tf.tensor1d(set.labels, 'int32') as Tensor1D;
  const adv = attack === 'fgsm' ? fgsm(sub.logits, x, y, eps) : pgd(sub.logits, x, y, { eps, steps, seed: 0 });
  const predOf = (f: LogitsFn) => tf.tidy(() => tf.argMax(f(adv), 1).dataSync());
  const subPred = predOf(sub.logits);
  const subAcc = set.labels.reduce((a, l, i) => a + (subPred[i] === l ? 1 : 0), 0) / set.n;
  const advData = adv.dataSync() as Float32Array;
  const out: TransferCell[] = [];
  for (const t of targets) {
    const pred = predOf((xi) => clf.logits(t.pipeline ? t.pipeline.apply(xi) : xi));
    const flags = t.det ? flagged(t.det, advData, shape) : null;
    let correct = 0, wrong = 0, wrongFlagged = 0, guard = 0, fl = 0;
    for (let i = 0; i < set.n; i++) {
      const ok = pred[i] === set.labels[i];
      const f = flags ? flags[i]! : false;
      if (ok) correct++; else wrong++;
      if (!ok && f) wrongFlagged++;
      if (f) fl++;
      if (ok || f) guard++;
    }
    out.push({
      pipeline: t.name, attack, eps, images: set.n, substituteAccuracy: subAcc,
      accuracy: correct / set.n, accuracyCi: wilson(correct, set.n),
      detector: t.det ? t.det.pipelines.map((p) => p.name).join('+') : null,
      detectionRate: t.det && wrong > 0 ? wrongFlagged / wrong : null,
      flaggedAll: t.det ? fl / set.n : null,
      guardSuccess: guard / set.n, guardCi: wilson(guard, set.n),
    });
  }
  tf.dispose([x, y, adv]);
  return out;
}
