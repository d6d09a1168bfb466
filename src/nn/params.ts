/**
 * A flat, ordered store of named trainable tensors. Models are plain functions over a
 * ParamStore, so the same weights serve training, inference, attacks and serialisation.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor, Variable } from '@tensorflow/tfjs-node';
import { mulberry32 } from './random.ts';

export interface ParamSpec {
  name: string;
  shape: number[];
  trainable: boolean;
}

export class ParamStore {
  private readonly vars = new Map<string, Variable>();
  private readonly trainableNames = new Set<string>();

  add(name: string, init: Tensor, trainable = true): Variable {
    if (this.vars.has(name)) throw new Error(`duplicate parameter ${name}`);
    const v = tf.variable(init, trainable, `${name}_${Math.random().toString(36).slice(2, 8)}`);
    init.dispose();
    this.vars.set(name, v);
    if (trainable) this.trainableNames.add(name);
    return v;
  }

  get(name: string): Variable {
    const v = this.vars.get(name);
    if (!v) throw new Error(`unknown parameter ${name}`);
    return v;
  }

  has(name: string): boolean {
    return this.vars.has(name);
  }

  names(): string[] {
    return [...this.vars.keys()];
  }

  specs(): ParamSpec[] {
    return this.names().map((name) => ({ name, shape: this.get(name).shape.slice(), trainable: this.trainableNames.has(name) }));
  }

  trainable(): Variable[] {
    return [...this.trainableNames].map((n) => this.get(n));
  }

  count(): number {
    let n = 0;
    for (const v of this.vars.values()) n += v.size;
    return n;
  }

  /** Copy of every parameter's values (for best-checkpoint keeping). */
  snapshot(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const [name, v] of this.vars) out.set(name, v.dataSync() as Float32Array);
    return out;
  }

  restore(values: Map<string, Float32Array>): void {
    for (const [name, v] of this.vars) {
      const data = values.get(name);
      if (!data) throw new Error(`missing values for parameter ${name}`);
      if (data.length !== v.size) throw new Error(`parameter ${name}: expected ${v.size} values, got ${data.length}`);
      const t = tf.tensor(data, v.shape, 'float32');
      v.assign(t);
      t.dispose();
    }
  }

  dispose(): void {
    for (const v of this.vars.values()) v.dispose();
    this.vars.clear();
    this.trainableNames.clear();
  }
}

/** Deterministic per-parameter seeds derived from one model seed. */
export function seedStream(seed: number): () => number {
  const rng = mulberry32(seed);
  return () => (rng() * 4294967296) % 2147483647; // the generator's 32-bit output, as before
}

/** He-normal initialiser for a conv kernel [kh, kw, in, out] or dense [in, out]. */
export function heNormal(shape: number[], fanIn: number, seed: number): Tensor {
  return tf.randomNormal(shape, 0, Math.sqrt(2 / fanIn), 'float32', seed);
}
