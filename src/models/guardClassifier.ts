/**
 * An external classifier (TF.js, SavedModel, ONNX, or a vqguard bundle loaded through its
 * declaration) as the detector's ScoringClassifier, with its outputs reordered to the model
 * set's class order by class name: a dataset and a classifier may number the same classes
 * differently (folder datasets sort folder names; Fashion-MNIST starts with t-shirt).
 */
import { tf } from '../backend/tf.ts';
import type { Tensor1D, Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import type { LoadedClassifier } from './formats/types.ts';
import type { ScoringClassifier } from '../detect/scoringClassifier.ts';

/**
 * perm[i] = the classifier's output index of the model set's class i. Identity when `wanted`
 * is null or equal to the classifier's order. Throws when the two name different classes.
 */
export function classPermutation(classifierClasses: readonly string[], wanted: readonly string[] | null): number[] | null {
  if (!wanted || wanted.join('\u0000') === classifierClasses.join('\u0000')) return null;
  const missing = wanted.filter((c) => !classifierClasses.includes(c));
  const extra = classifierClasses.filter((c) => !wanted.includes(c));
  if (missing.length || extra.length) {
    throw new Error(
      `the classifier's classes and the dataset's differ: ` +
        [missing.length ? `not in the classifier: ${missing.join(', ')}` : '', extra.length ? `not in the dataset: ${extra.join(', ')}` : ''].filter(Boolean).join('; ') +
        ' (rename the folders or the declaration\'s classes so the names match)',
    );
  }
  return wanted.map((c) => classifierClasses.indexOf(c));
}

export function scoringFromLoaded(m: LoadedClassifier, source: string, classNames: readonly string[] | null): ScoringClassifier {
  const perm = classPermutation(m.classes, classNames);
  const reorder = (z: Tensor2D): Tensor2D => (perm ? (tf.gather(z, tf.tensor1d(perm, 'int32') as Tensor1D, 1) as Tensor2D) : z);
  const sync = m.logits ?? m.forward;
  return {
    height: m.height,
    width: m.width,
    channels: m.channels,
    classNames: classNames ?? m.classes,
    source,
    hasGradients: m.hasGradients && !!m.logits,
    ...(sync ? { logits: (x: Tensor4D) => tf.tidy(() => reorder(sync(x))) } : {}),
    logitsAsync: async (x: Tensor4D) => {
      if (sync) return tf.tidy(() => reorder(sync(x)));
      const p = await m.probabilities(x);
      // log p: its softmax is p again, so scores that use softmax(logits) see the model's probabilities.
      const z = tf.tidy(() => reorder(tf.log(tf.add(p, 1e-12)) as Tensor2D));
      p.dispose();
      return z;
    },
  };
}
