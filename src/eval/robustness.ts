/**
 * Accuracy under attack for the undefended classifier and for purification pipelines.
 * FGSM and PGD attack the classifier alone (the paper's threat model): one adversarial set
 * per epsilon, shared by every pipeline. BPDA attacks each pipeline end to end (PGD through
 * purifier and classifier, straight-through at the quantiser), so its adversarial set is
 * made per pipeline.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor1D, Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import type { ImageSet } from '../data/dataset.ts';
import type { Classifier } from '../detect/classifier.ts';
import type { Pipeline } from '../purify/pipeline.ts';
import { runAttack, type AttackSpec } from '../attacks/attacks.ts';
import { batchTensor } from '../train/evaluate.ts';

export interface RobustnessRow {
  pipeline: string;
  attack: string;
  eps: number;
  accuracy: number;
  samples: number;
}

export interface RobustnessOptions {
  attack: AttackSpec;
  eps: number[];
  batch?: number;
  onProgress?: (done: number, total: number) => void;
}

function countCorrect(clf: Classifier, x: Tensor4D, labels: Int32Array): number {
  const pred = clf.predict(x);
  const p = pred.dataSync();
  pred.dispose();
  let c = 0;
  for (let i = 0; i < p.length; i++) if (p[i] === labels[i]) c++;
  return c;
}

export function evaluateRobustness(clf: Classifier, pipelines: Pipeline[], set: ImageSet, opts: RobustnessOptions): RobustnessRow[] {
  const batch = opts.batch ?? 200;
  const names = ['undefended', ...pipelines.map((p) => p.name)];
  const correct = new Map<string, number>();
  const key = (name: string, eps: number) => `${name}@${eps}`;
  const bpda = opts.attack.name === 'bpda';
  const total = opts.eps.length * Math.ceil(set.n / batch);
  let done = 0;
  for (const eps of opts.eps) {
    for (let s = 0; s < set.n; s += batch) {
      const e = Math.min(set.n, s + batch);
      const labels = set.labels.subarray(s, e);
      const x = batchTensor(set, s, e);
      const y = tf.tensor1d(labels, 'int32') as Tensor1D;
      const clfFn = (xi: Tensor4D) => clf.logits(xi);
      // The classifier-only adversarial set (also the undefended row for BPDA).
      const adv = runAttack(bpda ? { ...opts.attack, name: 'pgd' } : opts.attack, clfFn, x, y, eps);
      correct.set(key('undefended', eps), (correct.get(key('undefended', eps)) ?? 0) + countCorrect(clf, adv, labels));
      for (const p of pipelines) {
        const advP = bpda ? runAttack(opts.attack, (xi) => clf.logits(p.apply(xi)), x, y, eps) : adv;
        const c = tf.tidy(() => countCorrect(clf, p.apply(advP), labels));
        correct.set(key(p.name, eps), (correct.get(key(p.name, eps)) ?? 0) + c);
        if (advP !== adv) advP.dispose();
      }
      tf.dispose([x, y, adv]);
      opts.onProgress?.(++done, total);
    }
  }
  const rows: RobustnessRow[] = [];
  for (const name of names) {
    for (const eps of opts.eps) {
      rows.push({ pipeline: name, attack: opts.attack.name, eps, accuracy: (correct.get(key(name, eps)) ?? 0) / set.n, samples: set.n });
    }
  }
  return rows;
}

/**
 * The same evaluation for a classifier that is not a vqguard bundle (TF.js, SavedModel, ONNX):
 * adversarial examples are made with `attackLogits` (the classifier itself when it has gradients,
 * else the model set's surrogate: a transfer attack), and every accuracy is judged by the guarded
 * classifier's own scores (`judge`, async: ONNX runs only that way). BPDA runs through each
 * pipeline into `attackLogits`.
 */
export async function evaluateRobustnessWith(
  attackLogits: (x: Tensor4D) => Tensor2D,
  judge: (x: Tensor4D) => Promise<Tensor2D>,
  pipelines: Pipeline[],
  set: ImageSet,
  opts: RobustnessOptions,
): Promise<RobustnessRow[]> {
  const batch = opts.batch ?? 200;
  const names = ['undefended', ...pipelines.map((p) => p.name)];
  const correct = new Map<string, number>();
  const key = (name: string, eps: number) => `${name}@${eps}`;
  const add = (name: string, eps: number, c: number) => correct.set(key(name, eps), (correct.get(key(name, eps)) ?? 0) + c);
  const count = async (x: Tensor4D, labels: Int32Array) => {
    const logits = await judge(x);
    const pred = tf.tidy(() => logits.argMax(1));
    const p = await pred.data();
    tf.dispose([logits, pred]);
    let c = 0;
    for (let i = 0; i < p.length; i++) if (p[i] === labels[i]) c++;
    return c;
  };
  const bpda = opts.attack.name === 'bpda';
  const total = opts.eps.length * Math.ceil(set.n / batch);
  let done = 0;
  for (const eps of opts.eps) {
    for (let s = 0; s < set.n; s += batch) {
      const e = Math.min(set.n, s + batch);
      const labels = set.labels.subarray(s, e);
      const x = batchTensor(set, s, e);
      const y = tf.tensor1d(labels, 'int32') as Tensor1D;
      const adv = runAttack(bpda ? { ...opts.attack, name: 'pgd' } : opts.attack, attackLogits, x, y, eps);
      add('undefended', eps, await count(adv, labels));
      for (const p of pipelines) {
        const advP = bpda ? runAttack(opts.attack, (xi) => attackLogits(p.apply(xi)), x, y, eps) : adv;
        const purified = tf.tidy(() => p.apply(advP));
        add(p.name, eps, await count(purified, labels));
        purified.dispose();
        if (advP !== adv) advP.dispose();
      }
      tf.dispose([x, y, adv]);
      opts.onProgress?.(++done, total);
    }
  }
  return names.flatMap((name) => opts.eps.map((eps) => ({ pipeline: name, attack: opts.attack.name, eps, accuracy: (correct.get(key(name, eps)) ?? 0) / set.n, samples: set.n })));
}
