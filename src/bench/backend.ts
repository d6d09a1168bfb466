/**
 * Backend throughput: a conv2d training step (forward + both gradients) and a matMul, in
 * GFLOP/s, on the native backend and on the pure-JS CPU backend, same shapes, one process.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor4D, Tensor2D } from '@tensorflow/tfjs-node';

export interface BackendBenchRow {
  op: string;
  shape: string;
  backend: string;
  gflopPerCall: number;
  medianMs: number;
  gflops: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function time(fn: () => void, reps: number, warmup = 1): number {
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

export interface BackendBenchShapes {
  conv: { n: number; hw: number; cin: number; cout: number; k: number };
  matmul: number;
  reps: number;
}

export const DEFAULT_BACKEND_SHAPES: BackendBenchShapes = {
  conv: { n: 32, hw: 14, cin: 64, cout: 64, k: 3 },
  matmul: 512,
  reps: 3,
};

export async function benchBackend(backends: string[], shapes = DEFAULT_BACKEND_SHAPES): Promise<BackendBenchRow[]> {
  const rows: BackendBenchRow[] = [];
  const original = tf.getBackend();
  for (const be of backends) {
    await tf.setBackend(be);
    await tf.ready();
    const { n, hw, cin, cout, k } = shapes.conv;
    const x = tf.randomNormal([n, hw, hw, cin], 0, 1, 'float32', 1) as Tensor4D;
    const w = tf.randomNormal([k, k, cin, cout], 0, 0.1, 'float32', 2) as Tensor4D;
    const convFlop = 3 * 2 * n * hw * hw * k * k * cin * cout; // forward + dx + dw
    const step = () => {
      const g = tf.tidy(() => {
        const grads = tf.grads((a, b) => tf.sum(tf.conv2d(a as Tensor4D, b as Tensor4D, 1, 'same')))([x, w]);
        return grads;
      });
      g.forEach((t) => t.dataSync());
      tf.dispose(g);
    };
    const convMs = time(step, shapes.reps);
    rows.push({ op: 'conv2d train step', shape: `${n}x${hw}x${hw}x${cin} * ${k}x${k}x${cin}x${cout}`, backend: be, gflopPerCall: convFlop / 1e9, medianMs: convMs, gflops: convFlop / convMs / 1e6 });
    const m = shapes.matmul;
    const a = tf.randomNormal([m, m], 0, 1, 'float32', 3) as Tensor2D;
    const mmFlop = 2 * m * m * m;
    const mmMs = time(() => {
      const c = tf.matMul(a, a);
      c.dataSync();
      c.dispose();
    }, shapes.reps);
    rows.push({ op: 'matMul', shape: `${m}x${m} * ${m}x${m}`, backend: be, gflopPerCall: mmFlop / 1e9, medianMs: mmMs, gflops: mmFlop / mmMs / 1e6 });
    tf.dispose([x, w, a]);
  }
  await tf.setBackend(original);
  return rows;
}
