/**
 * Test traffic: labelled test images, a share of them attacked against the classifier,
 * encoded as PNG inside Avro ImageRecords (ground truth in `label` and the attributes
 * `adversarial`, `attack`, `eps`). For demos, tests and replay.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor1D } from '@tensorflow/tfjs-node';
import type { ImageSet } from '../data/dataset.ts';
import { mulberry32 } from '../data/dataset.ts';
import type { Classifier } from '../detect/classifier.ts';
import type { LogitsFn } from '../attacks/attacks.ts';
import { runAttack, type AttackName } from '../attacks/attacks.ts';
import { batchTensor } from '../train/evaluate.ts';
import { encodeImage } from '../image/decode.ts';
import { encodeImageRecord } from '../records/avro.ts';

export interface SampleOptions {
  count: number;
  adversarialRatio: number;
  attack: AttackName;
  eps: number;
  seed: number;
  steps?: number;
  idPrefix?: string;
}

export interface SampleRecord {
  id: string;
  label: number;
  adversarial: boolean;
  value: Buffer;
}

/** Builds `count` records cycling through the set; which ones are attacked is seeded. */
/** `clf`: what the attack differentiates (vqguard's classifier, or a logits function such as a surrogate's). */
export async function buildSamples(set: ImageSet, clf: Classifier | LogitsFn, o: SampleOptions): Promise<SampleRecord[]> {
  const f: LogitsFn = typeof clf === 'function' ? clf : (xi) => clf.logits(xi);
  const rng = mulberry32(o.seed);
  const out: SampleRecord[] = [];
  const size = set.height * set.width * set.channels;
  const batch = 200;
  for (let start = 0; start < o.count; start += batch) {
    const n = Math.min(batch, o.count - start);
    const idx = Array.from({ length: n }, (_, i) => (start + i) % set.n);
    const attacked = idx.map(() => rng() < o.adversarialRatio);
    // Contiguous copy of the chosen images.
    const pix = new Float32Array(n * size);
    idx.forEach((j, i) => pix.set(set.images.subarray(j * size, (j + 1) * size), i * size));
    const labels = Int32Array.from(idx.map((j) => set.labels[j]!));
    const sub: ImageSet = { ...set, images: pix, labels, n };
    const x = batchTensor(sub, 0, n);
    const y = tf.tensor1d(labels, 'int32') as Tensor1D;
    const adv = runAttack({ name: o.attack, steps: o.steps ?? 40, seed: o.seed + start }, f, x, y, o.eps);
    const advData = adv.dataSync() as Float32Array;
    tf.dispose([x, y, adv]);
    for (let i = 0; i < n; i++) {
      const src = attacked[i] ? advData : pix;
      const png = await encodeImage(src.subarray(i * size, (i + 1) * size), set.width, set.height, set.channels as 1 | 3, 'png');
      const id = `${o.idPrefix ?? 'sample'}-${start + i}`;
      out.push({
        id,
        label: labels[i]!,
        adversarial: attacked[i]!,
        value: encodeImageRecord({
          id,
          contentType: 'image/png',
          image: png,
          width: set.width,
          height: set.height,
          label: labels[i]!,
          attributes: attacked[i] ? { adversarial: 'true', attack: o.attack, eps: String(o.eps) } : { adversarial: 'false' },
          producedAt: Date.now(),
        }),
      });
    }
  }
  return out;
}
