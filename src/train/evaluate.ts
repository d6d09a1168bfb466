/** Batched evaluation helpers shared by training and evaluation. */
import { tf } from '../backend/tf.ts';
import type { Tensor4D } from '@tensorflow/tfjs-node';
import type { ImageSet } from '../data/dataset.ts';
import type { Classifier } from '../detect/classifier.ts';

export function batchTensor(set: ImageSet, start: number, end: number): Tensor4D {
  const size = set.height * set.width * set.channels;
  return tf.tensor4d(set.images.subarray(start * size, end * size), [end - start, set.height, set.width, set.channels]);
}

/** Accuracy of the classifier on `set`, optionally after a transform (e.g. a purifier). */
export function accuracy(clf: Classifier, set: ImageSet, transform?: (x: Tensor4D) => Tensor4D, batch = 250): number {
  let correct = 0;
  for (let s = 0; s < set.n; s += batch) {
    const e = Math.min(set.n, s + batch);
    const pred = tf.tidy(() => {
      const x = batchTensor(set, s, e);
      return clf.predict(transform ? transform(x) : x);
    });
    const p = pred.dataSync();
    pred.dispose();
    for (let i = 0; i < p.length; i++) if (p[i] === set.labels[s + i]) correct++;
  }
  return correct / set.n;
}
