/**
 * Model throughput: images/s per pipeline and batch size, purification alone and with
 * detection (classifier before and after, all scores), FLOPs per image counted from the
 * architecture, achieved GFLOP/s and its share of the measured ceiling.
 */
import { tf } from '../backend/tf.ts';
import type { Tensor4D } from '@tensorflow/tfjs-node';
import type { ModelRegistry } from '../models/registry.ts';
import { Detector } from '../detect/detector.ts';
import { measureBatchLimit, runChunked } from '../backend/webgpu/batch.ts';

export interface ModelBenchRow {
  pipeline: string;
  mode: 'purify' | 'detect';
  batch: number;
  imagesPerSec: number;
  msPerBatch: number;
  gflopPerImage: number;
  gflops: number;
  peakFraction: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Times fn until at least minMs elapsed and minReps repetitions ran; returns the median ms. */
function timeIt(fn: () => void, minMs: number, minReps: number): number {
  fn(); // warm-up
  const ts: number[] = [];
  const start = performance.now();
  while (ts.length < minReps || performance.now() - start < minMs) {
    const t0 = performance.now();
    fn();
    ts.push(performance.now() - t0);
    if (ts.length > 200) break;
  }
  return median(ts);
}

/** timeIt for async work (reads through `await t.data()`, as WebGPU needs). */
export async function timeItAsync(fn: () => Promise<unknown>, minMs: number, minReps: number, warmups = 1): Promise<number> {
  for (let i = 0; i < warmups; i++) await fn();
  const ts: number[] = [];
  const start = performance.now();
  while (ts.length < minReps || performance.now() - start < minMs) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
    if (ts.length > 200) break;
  }
  return median(ts);
}

export async function benchModel(reg: ModelRegistry, pipelines: string[], batches: number[], ceilingGflops: number | null, opts: { minMs: number; minReps: number; h?: number; w?: number; c?: number; modes?: ('purify' | 'detect')[]; log?: (s: string) => void }): Promise<ModelBenchRow[]> {
  const clf = reg.classifier();
  const { height: h, width: w, channels: c } = clf.config;
  const modes = opts.modes ?? ['purify', 'detect'];
  const rows: ModelBenchRow[] = [];
  for (const spec of pipelines) {
    const p = reg.pipeline(spec);
    const det = new Detector(clf, [p], { temperature: 10 });
    const purifyFlops = p.flopsPerImage(h, w);
    const detectFlops = purifyFlops + 2 * clf.flopsPerImage();
    // Purification alone, split like detection by the device's limits (Infinity off WebGPU).
    const limit = await measureBatchLimit((n) => p.apply(tf.zeros([n, h, w, c]) as Tensor4D));
    for (const n of batches) {
      const x = tf.randomUniform([n, h, w, c], 0, 1, 'float32', 1) as Tensor4D;
      const times: [string, number, number][] = [];
      if (modes.includes('purify')) {
        const purifyMs = await timeItAsync(async () => {
          await runChunked(n, limit, async (s, k) => {
            const y = tf.tidy(() => p.apply(k === n ? x : (tf.slice(x, [s, 0, 0, 0], [k, h, w, c]) as Tensor4D)));
            await y.data();
            y.dispose();
          });
        }, opts.minMs, opts.minReps);
        times.push(['purify', purifyMs, purifyFlops]);
      }
      if (modes.includes('detect')) times.push(['detect', await timeItAsync(() => det.rawAsync(x), opts.minMs, opts.minReps), detectFlops]);
      x.dispose();
      for (const [mode, ms, flops] of times) {
        const ips = (n / ms) * 1000;
        const gflops = (ips * flops) / 1e9;
        rows.push({ pipeline: spec, mode: mode as 'purify' | 'detect', batch: n, imagesPerSec: ips, msPerBatch: ms, gflopPerImage: flops / 1e9, gflops, peakFraction: ceilingGflops ? gflops / ceilingGflops : NaN });
        opts.log?.(`${spec} ${mode} batch ${n}: ${ips.toFixed(0)} images/s`);
      }
    }
  }
  return rows;
}

/** Peak GFLOP/s of the dominant ops at large shapes (forward conv 3x3 and matMul). */
export function ceiling(opts: { minMs: number; minReps: number }): { conv2dGflops: number; matMulGflops: number } {
  const x = tf.randomNormal([256, 14, 14, 128], 0, 1, 'float32', 1) as Tensor4D;
  const k = tf.randomNormal([3, 3, 128, 128], 0, 0.1, 'float32', 2) as Tensor4D;
  const convMs = timeIt(() => {
    const y = tf.conv2d(x, k, 1, 'same');
    y.dataSync();
    y.dispose();
  }, opts.minMs, opts.minReps);
  const conv2dGflops = (2 * 256 * 14 * 14 * 9 * 128 * 128) / convMs / 1e6;
  const a = tf.randomNormal([2048, 2048], 0, 1, 'float32', 3);
  const mmMs = timeIt(() => {
    const y = tf.matMul(a, a);
    y.dataSync();
    y.dispose();
  }, opts.minMs, opts.minReps);
  tf.dispose([x, k, a]);
  return { conv2dGflops, matMulGflops: (2 * 2048 ** 3) / mmMs / 1e6 };
}
