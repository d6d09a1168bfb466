/**
 * The classifier under attack: conv 3x3 (32) - relu - conv 3x3 (64) - relu - maxpool 2 -
 * dense 128 - relu - dense classes. About 24 MFLOP per 28x28 image.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor1D, Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import { ParamStore, seedStream } from '../nn/params.ts';
import { addConv, addDense, conv, dense } from '../nn/layers.ts';

export interface ClassifierConfig {
  kind: 'classifier';
  height: number;
  width: number;
  channels: number;
  classes: number;
  conv1: number;
  conv2: number;
  hidden: number;
}

export function defaultClassifierConfig(over: Partial<ClassifierConfig> & Pick<ClassifierConfig, 'height' | 'width' | 'channels' | 'classes'>): ClassifierConfig {
  return { kind: 'classifier', conv1: 32, conv2: 64, hidden: 128, ...over };
}

export class Classifier {
  readonly params = new ParamStore();

  constructor(readonly config: ClassifierConfig, seed = 1) {
    const { channels, conv1, conv2, hidden, classes } = config;
    const next = seedStream(seed);
    addConv(this.params, 'conv1', 3, channels, conv1, next());
    addConv(this.params, 'conv2', 3, conv1, conv2, next());
    addDense(this.params, 'fc1', this.flatSize(), hidden, next());
    addDense(this.params, 'fc2', hidden, classes, next());
  }

  private flatSize(): number {
    const { height: h, width: w, conv2 } = this.config;
    return Math.floor((h - 4) / 2) * Math.floor((w - 4) / 2) * conv2;
  }

  /** Logits [N, classes] for images [N,H,W,C] in [0,1]. Differentiable. */
  logits(x: Tensor4D, dropout = 0, seed?: number): Tensor2D {
    const p = this.params;
    let h = tf.relu(conv(p, 'conv1', x, 1, 'valid'));
    h = tf.relu(conv(p, 'conv2', h, 1, 'valid'));
    h = tf.maxPool(h, 2, 2, 'valid');
    let f = tf.reshape(h, [x.shape[0], -1]) as Tensor2D;
    f = tf.relu(dense(p, 'fc1', f));
    if (dropout > 0) f = tf.dropout(f, dropout, undefined, seed) as Tensor2D;
    return dense(p, 'fc2', f);
  }

  probabilities(x: Tensor4D): Tensor2D {
    return tf.tidy(() => tf.softmax(this.logits(x)));
  }

  predict(x: Tensor4D): Tensor1D {
    return tf.tidy(() => tf.argMax(this.logits(x), 1) as Tensor1D);
  }

  flopsPerImage(): number {
    const { height: h, width: w, channels: c, conv1, conv2, hidden, classes } = this.config;
    return (
      2 * (h - 2) * (w - 2) * 9 * c * conv1 +
      2 * (h - 4) * (w - 4) * 9 * conv1 * conv2 +
      2 * this.flatSize() * hidden +
      2 * hidden * classes
    );
  }

  dispose(): void {
    this.params.dispose();
  }
}
