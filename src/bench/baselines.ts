/**
 * Baselines beside our pipelines, same machine, same run: cost per image and accuracy under
 * FGSM at epsilon 0.1 and 0.3 (classifier-only attack, the paper's threat model).
 */
import { tf } from '../backend/tf.ts';
import type { Tensor4D } from '@tensorflow/tfjs-node';
import type { ModelRegistry } from '../models/registry.ts';
import type { ImageSet } from '../data/dataset.ts';
import { evaluateRobustness } from '../eval/robustness.ts';

export interface BaselineRow {
  name: string;
  /** Test images behind the accuracies. */
  samples: number;
  imagesPerSec: number;
  accuracyEps01: number;
  accuracyEps03: number;
}

export function benchBaselines(reg: ModelRegistry, names: { name: string; pipeline: string; samples?: number; batch?: number }[], set: ImageSet, batch = 128): BaselineRow[] {
  const clf = reg.classifier();
  const rows: BaselineRow[] = [];
  for (const { name, pipeline, samples, batch: b } of names) {
    const p = reg.pipeline(pipeline);
    const nb = b ?? batch;
    const x = tf.randomUniform([nb, set.height, set.width, set.channels], 0, 1, 'float32', 1) as Tensor4D;
    const run = () => {
      const y = p.apply(x);
      y.dataSync();
      y.dispose();
    };
    run();
    const t0 = performance.now();
    let n = 0;
    while ((performance.now() - t0 < 1500 && n < 50) || n < 2) {
      run();
      n++;
    }
    const ips = (n * nb) / ((performance.now() - t0) / 1000);
    x.dispose();
    const evalSet = samples && samples < set.n ? { ...set, n: samples, images: set.images.subarray(0, samples * set.height * set.width * set.channels), labels: set.labels.subarray(0, samples) } : set;
    const acc = evaluateRobustness(clf, [p], evalSet, { attack: { name: 'fgsm' }, eps: [0.1, 0.3] }).filter((r) => r.pipeline === p.name);
    rows.push({ name, samples: evalSet.n, imagesPerSec: ips, accuracyEps01: acc.find((r) => r.eps === 0.1)!.accuracy, accuracyEps03: acc.find((r) => r.eps === 0.3)!.accuracy });
  }
  return rows;
}
