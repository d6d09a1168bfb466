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
  /**
   * What sits between the convolutions and the dense layers. flatten (the 28x28 layout, and
   * the meaning of a missing key in older bundles): maxpool 2 then flatten, whose dense layer
   * grows with the image (99M weights at 224x224); global: maxpool 2 then a global average
   * pool, so the dense layer has conv2 x hidden weights at any size.
   */
  pool?: 'flatten' | 'global';
}

/** Images larger than this many pixels get global pooling by default. */
const FLATTEN_MAX_PIXELS = 32 * 32;

export function defaultClassifierConfig(over: Partial<ClassifierConfig> & Pick<ClassifierConfig, 'height' | 'width' | 'channels' | 'classes'>): ClassifierConfig {
  const pool = over.height * over.width > FLATTEN_MAX_PIXELS ? 'global' : 'flatten';
  return { kind: 'classifier', conv1: 32, conv2: 64, hidden: 128, ...(pool === 'global' ? { pool } : {}), ...over };
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
    if (this.config.pool === 'global') return conv2;
    return Math.floor((h - 4) / 2) * Math.floor((w - 4) / 2) * conv2;
  }

  /** Logits [N, classes] for images [N,H,W,C] in [0,1]. Differentiable. */
  logits(x: Tensor4D, dropout = 0, seed?: number): Tensor2D {
    const p = this.params;
    let h = tf.relu(conv(p, 'conv1', x, 1, 'valid'));
    h = tf.relu(conv(p, 'conv2', h, 1, 'valid'));
    h = tf.maxPool(h, 2, 2, 'valid');
    let f = (this.config.pool === 'global' ? tf.mean(h, [1, 2]) : tf.reshape(h, [x.shape[0], -1])) as Tensor2D;
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
