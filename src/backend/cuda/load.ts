/**
 * CUDA backend: @tensorflow/tfjs-node-gpu (libtensorflow built for CUDA 12 with cuDNN/cuBLAS of
 * that major; `make install BACKEND=cuda` provisions it). NOT tested on this project's machines:
 * its GPU test machine has CUDA 13 only (see README, "GPU").
 */
import type { BackendInfo, TF } from '../types.ts';
import { cudaDriverPresent, nativeInfo, packageResolvable, tryRequire } from '../cpu/load.ts';

const PKG = '@tensorflow/tfjs-node-gpu';

export type CudaProbe = { ok: true; tf: TF; info: BackendInfo } | { ok: false; reason: string; loaded?: { tf: TF; pkg: string } };

/**
 * Loads tfjs-node-gpu when a CUDA driver is present and the package is installed, and keeps it
 * only when libtensorflow reports a usable GPU device. When the package loads but finds no device,
 * the loaded module is handed back (`loaded`): it still works as a CPU backend, and a second
 * libtensorflow binding cannot be loaded into the same process.
 */
export function probeCuda(base: Pick<BackendInfo, 'choice' | 'notTaken'>): CudaProbe {
  if (!cudaDriverPresent()) return { ok: false, reason: 'no NVIDIA driver (/proc/driver/nvidia/version absent)' };
  if (!packageResolvable(PKG)) return { ok: false, reason: `${PKG} is not installed (make install BACKEND=cuda)` };
  const r = tryRequire(PKG);
  if (!('tf' in r)) return { ok: false, reason: `${PKG} did not load: ${r.error}` };
  const be = r.tf.backend() as unknown as { isUsingGpuDevice?: boolean };
  if (!be.isUsingGpuDevice) return { ok: false, reason: `${PKG} loaded but libtensorflow found no usable CUDA device`, loaded: { tf: r.tf, pkg: PKG } };
  return { ok: true, tf: r.tf, info: nativeInfo(PKG, true, base) };
}
