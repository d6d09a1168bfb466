import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf, backendInfo, tfVersion } from '../src/backend/tf.ts';
import type { Tensor4D } from '@tensorflow/tfjs-node';

test('the native TensorFlow backend is loaded', async () => {
  await tf.ready();
  assert.equal(backendInfo.native, true, 'native backend expected');
  assert.equal(tf.getBackend(), 'tensorflow');
  assert.match(tfVersion() ?? '', /^\d+\.\d+/);
});

// Float64 reference conv2d (NHWC, HWIO, stride 1, 'valid') and its gradients, in plain JS.
function rng(seed: number) {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  };
}

test('conv2d forward and gradients match a float64 reference (rel. error < 1e-4)', () => {
  const [n, h, w, ci, co, k] = [2, 7, 6, 3, 4, 3];
  const r = rng(42);
  const x = Float64Array.from({ length: n * h * w * ci }, r);
  const f = Float64Array.from({ length: k * k * ci * co }, r);
  const dy = Float64Array.from({ length: n * (h - k + 1) * (w - k + 1) * co }, r);
  const oh = h - k + 1, ow = w - k + 1;
  const xi = (b: number, y: number, xx: number, c: number) => ((b * h + y) * w + xx) * ci + c;
  const fi = (a: number, bb: number, c: number, o: number) => ((a * k + bb) * ci + c) * co + o;
  const yi = (b: number, y: number, xx: number, o: number) => ((b * oh + y) * ow + xx) * co + o;
  const y = new Float64Array(n * oh * ow * co);
  const dx = new Float64Array(x.length);
  const df = new Float64Array(f.length);
  for (let b = 0; b < n; b++)
    for (let p = 0; p < oh; p++)
      for (let q = 0; q < ow; q++)
        for (let o = 0; o < co; o++)
          for (let a = 0; a < k; a++)
            for (let bb = 0; bb < k; bb++)
              for (let c = 0; c < ci; c++) {
                y[yi(b, p, q, o)]! += x[xi(b, p + a, q + bb, c)]! * f[fi(a, bb, c, o)]!;
                dx[xi(b, p + a, q + bb, c)]! += dy[yi(b, p, q, o)]! * f[fi(a, bb, c, o)]!;
                df[fi(a, bb, c, o)]! += dy[yi(b, p, q, o)]! * x[xi(b, p + a, q + bb, c)]!;
              }
  const tx = tf.tensor4d(Float32Array.from(x), [n, h, w, ci]);
  const tfil = tf.tensor4d(Float32Array.from(f), [k, k, ci, co]);
  const tdy = tf.tensor4d(Float32Array.from(dy), [n, oh, ow, co]);
  const ty = tf.conv2d(tx, tfil, 1, 'valid');
  const [gx, gf] = tf.grads((a, b) => tf.sum(tf.mul(tf.conv2d(a as Tensor4D, b as Tensor4D, 1, 'valid'), tdy)))([tx, tfil]);
  const relErr = (got: ArrayLike<number>, want: Float64Array) => {
    let num = 0, den = 0;
    for (let i = 0; i < want.length; i++) {
      num += (got[i]! - want[i]!) ** 2;
      den += want[i]! ** 2;
    }
    return Math.sqrt(num / den);
  };
  assert.ok(relErr(ty.dataSync(), y) < 1e-4, `forward rel err ${relErr(ty.dataSync(), y)}`);
  assert.ok(relErr(gx!.dataSync(), dx) < 1e-4, `dx rel err ${relErr(gx!.dataSync(), dx)}`);
  assert.ok(relErr(gf!.dataSync(), df) < 1e-4, `dfilter rel err ${relErr(gf!.dataSync(), df)}`);
  tf.dispose([tx, tfil, tdy, ty, gx!, gf!]);
});

// ---------------------------------------------------------------------------------------------
// Backend choice (issue 16): precedence, errors, and what doctor reports, in fresh processes.

import { execFileSync, spawnSync } from 'node:child_process';
import { resolveBackendChoice } from '../src/backend/tf.ts';
import { parseConfig } from '../src/config/schema.ts';
import { existsSync } from 'node:fs';

test('backend choice: --backend > VQGUARD_BACKEND > config > auto; unknown names are clear errors', () => {
  assert.equal(resolveBackendChoice(undefined, undefined, {}), 'auto');
  assert.equal(resolveBackendChoice(undefined, 'webgpu', {}), 'webgpu');
  assert.equal(resolveBackendChoice(undefined, 'webgpu', { VQGUARD_BACKEND: 'cpu' }), 'cpu');
  assert.equal(resolveBackendChoice('CUDA', 'webgpu', { VQGUARD_BACKEND: 'cpu' }), 'cuda');
  assert.throws(() => resolveBackendChoice('gpu', undefined, {}), /--backend: unknown backend "gpu": expected auto, cpu, cuda, webgpu/);
  assert.throws(() => resolveBackendChoice(undefined, undefined, { VQGUARD_BACKEND: 'tpu' }), /VQGUARD_BACKEND: unknown backend/);
  const base = { kafka: { brokers: ['b:9092'] }, topics: [{ input: 'a', output: 'b', deadLetter: 'c', pipeline: 'full' }] };
  assert.equal(parseConfig(base).backend, 'auto');
  assert.equal(parseConfig({ ...base, backend: 'webgpu' }).backend, 'webgpu');
  assert.throws(() => parseConfig({ ...base, backend: 'metal' }), /backend/);
});

function doctor(args: string[], env: NodeJS.ProcessEnv = {}) {
  const out = execFileSync(process.execPath, ['bin/vqguard.mjs', ...args, 'doctor', '--json'], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(out.trim().split('\n').pop()!) as { choice: string; kind: string; notTaken: Record<string, string>; adapter: { cpu: boolean; limits: Record<string, number> } | null; adapterNote: string | null };
}

test('doctor reports the choice, what runs, the adapter and why the others were not taken', { timeout: 240_000 }, () => {
  const cpu = doctor(['--backend', 'cpu']);
  assert.equal(cpu.choice, 'cpu');
  assert.equal(cpu.kind, 'cpu');
  assert.match(cpu.notTaken.cuda ?? '', /not asked for/);
  // auto on a machine with no NVIDIA driver: CUDA not taken with the reason; WebGPU only on a real GPU.
  const auto = doctor([], { VQGUARD_BACKEND: '' });
  assert.equal(auto.choice, 'auto');
  if (auto.kind !== 'cuda') assert.ok(auto.notTaken.cuda, 'a reason for not taking CUDA');
  if (auto.kind === 'cpu') assert.ok(auto.notTaken.webgpu, 'a reason for not taking WebGPU');
  if (auto.adapter) {
    assert.ok((auto.adapter.limits.maxStorageBufferBindingSize ?? 0) > 0);
    if (auto.adapter.cpu) assert.notEqual(auto.kind, 'webgpu', 'auto never takes a software adapter');
  } else assert.ok(auto.adapterNote, 'why there is no adapter');
  // An explicit choice that cannot run fails with the reason.
  const r = spawnSync(process.execPath, ['bin/vqguard.mjs', '--backend', 'cuda', 'doctor'], { encoding: 'utf8', timeout: 120_000 });
  if (!existsSync('/proc/driver/nvidia/version')) {
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /backend cuda unavailable: no NVIDIA driver/);
  }
});
