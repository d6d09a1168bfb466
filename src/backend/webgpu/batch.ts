/**
 * Batch splitting for the WebGPU backend, from the device's own limits (never a hard-coded
 * number). Two limits were hit on the H200 (../shared/docs/gpu-notes.md): a storage binding over
 * maxStorageBufferBindingSize (2.9 GB at batch 16384 of `full`), and a dispatch over
 * maxComputeWorkgroupsPerDimension in Y or Z (`split2>full` at batch 8192). Lavapipe's storage
 * limit is 128 MiB, so the same split is exercised by the tests on CPU machines.
 *
 * `measureBatchLimit` runs the forward pass at two small batch sizes while recording every WebGPU
 * program the backend dispatches (its output and input sizes, its dispatch grid). Each quantity
 * grows linearly with the batch (a + b*n); the largest batch for which every one stays within the
 * device's limits is the answer. A forward pass that still trips a dispatch assertion halves the
 * chunk (runChunked), so an estimate that is off costs time, not a failure.
 */
import type { Tensor } from '@tensorflow/tfjs-node';
import { tf, backendInfo } from '../tf.ts';

interface ProgramRecord {
  name: string;
  bytes: number;
  /** Dispatch dims that the backend cannot reshape (layouts with y or z), else empty. */
  dims: number[];
}

interface ProgramLike {
  constructor: { name: string };
  outputShape?: number[];
  dispatch?: number[];
  dispatchLayout?: { x?: number[]; y?: number[]; z?: number[] };
}
interface TensorInfoLike {
  shape: number[];
}
type RunProgram = (program: ProgramLike, inputs: TensorInfoLike[], ...rest: unknown[]) => unknown;

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

async function record(fn: (n: number) => Tensor | Tensor[], n: number): Promise<ProgramRecord[]> {
  const be = tf.backend() as unknown as { runWebGPUProgram: RunProgram };
  const orig = be.runWebGPUProgram;
  const recs: ProgramRecord[] = [];
  be.runWebGPUProgram = function (this: unknown, program, inputs, ...rest) {
    const shapes = [program.outputShape ?? [], ...inputs.map((t) => t.shape)];
    const layout = program.dispatchLayout ?? {};
    const dims = layout.y !== undefined || layout.z !== undefined ? [...(program.dispatch ?? [])] : [];
    recs.push({ name: program.constructor.name, bytes: 4 * Math.max(...shapes.map(size)), dims });
    return orig.call(this, program, inputs, ...rest);
  } as RunProgram;
  try {
    const out = tf.tidy(() => fn(n));
    const list = Array.isArray(out) ? out : [out];
    await Promise.all(list.map((t) => t.data()));
    tf.dispose(list);
  } finally {
    be.runWebGPUProgram = orig;
  }
  return recs;
}

export interface BatchLimit {
  /** Largest batch the device takes in one forward pass. */
  maxBatch: number;
  /** Which limit binds, for logs and doctor. */
  boundBy: string;
}

/** Largest n with a + b*n <= limit for every linear quantity; Infinity when nothing grows. */
function fit(a: number, b: number, limit: number): number {
  if (b <= 0) return Infinity;
  return Math.floor((limit - a) / b);
}

/**
 * Largest batch for `fn(n)` (which builds its own input of batch n) under the WebGPU device's
 * limits; Infinity on other backends.
 */
export async function measureBatchLimit(fn: (n: number) => Tensor | Tensor[], n1 = 8, n2 = 16): Promise<BatchLimit> {
  const lim = backendInfo.kind === 'webgpu' ? backendInfo.adapter?.limits : undefined;
  if (!lim) return { maxBatch: Infinity, boundBy: 'none (not WebGPU)' };
  const r1 = await record(fn, n1);
  const r2 = await record(fn, n2);
  const bytesLimit = Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize);
  const dimLimit = lim.maxComputeWorkgroupsPerDimension;
  let best = Infinity;
  let boundBy = 'none';
  const consider = (n: number, what: string) => {
    if (n < best) {
      best = n;
      boundBy = what;
    }
  };
  const paired = r1.length === r2.length && r1.every((r, i) => r.name === r2[i]!.name && r.dims.length === r2[i]!.dims.length);
  r2.forEach((b, i) => {
    // Same program sequence at both sizes: exact line through the two points. Otherwise assume
    // the quantity is proportional to the batch (a = 0), from the larger run.
    const a = paired ? r1[i]! : null;
    const slope = (v2: number, v1: number | undefined) => (v1 === undefined ? v2 / n2 : (v2 - v1) / (n2 - n1));
    const icpt = (v2: number, s: number) => v2 - s * n2;
    const sb = slope(b.bytes, a?.bytes);
    consider(fit(icpt(b.bytes, sb), sb, bytesLimit), `maxStorageBufferBindingSize (${b.name})`);
    b.dims.forEach((d, j) => {
      const sd = slope(d, a?.dims[j]);
      consider(fit(icpt(d, sd), sd, dimLimit), `maxComputeWorkgroupsPerDimension (${b.name}, dim ${j})`);
    });
  });
  return { maxBatch: Math.max(1, best), boundBy };
}

const DISPATCH_ERR = /exceeds WebGPU (limits|maximum)|exceeds the max|maxStorageBufferBindingSize/i;

/**
 * Runs `fn` over [0, n) in chunks of at most `limit.maxBatch`, halving on a device-limit error.
 * `fn(start, count)` must do its own reads (async) and return per-chunk results in order.
 */
export async function runChunked<T>(n: number, limit: BatchLimit, fn: (start: number, count: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let chunk = Math.max(1, Math.min(n, limit.maxBatch));
  for (let start = 0; start < n; ) {
    const count = Math.min(chunk, n - start);
    try {
      out.push(await fn(start, count));
      start += count;
    } catch (e) {
      if (count > 1 && DISPATCH_ERR.test((e as Error).message)) {
        chunk = Math.max(1, Math.floor(count / 2));
        limit.maxBatch = chunk;
        limit.boundBy = `halved after: ${(e as Error).message.slice(0, 120)}`;
        continue;
      }
      throw e;
    }
  }
  return out;
}
