/**
 * CPU backend: @tensorflow/tfjs-node (native libtensorflow on CPU); the pure-JS backend only as a
 * last resort, with a loud warning (about 0.8 GFLOP/s for conv here, 100x+ slower).
 * VQGUARD_REQUIRE_NATIVE=1 turns that fallback into an error.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { BackendInfo, TF } from '../types.ts';

const require = createRequire(import.meta.url);

// Keep libtensorflow's C++ info lines (CPU feature notices) out of our logs.
process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';

export function cudaDriverPresent(): boolean {
  return existsSync('/proc/driver/nvidia/version');
}

export function tryRequire(name: string): { tf: TF } | { error: string } {
  try {
    return { tf: require(name) as TF };
  } catch (e) {
    return { error: (e as Error).message.split('\n')[0]! };
  }
}

export function depsDir(pkg: string): string | null {
  try {
    const dir = join(dirname(require.resolve(`${pkg}/package.json`)), 'deps');
    return existsSync(dir) ? dir : null;
  } catch {
    return null;
  }
}

export function packageResolvable(pkg: string): boolean {
  try {
    require.resolve(`${pkg}/package.json`);
    return true;
  } catch {
    return false;
  }
}

/** Info for a loaded libtensorflow binding (tfjs-node or tfjs-node-gpu). */
export function nativeInfo(pkg: string, gpu: boolean, base: Pick<BackendInfo, 'choice' | 'notTaken'>): BackendInfo {
  const deps = depsDir(pkg);
  const provFile = deps ? join(deps, 'PROVENANCE') : null;
  const provenance = provFile && existsSync(provFile) ? readFileSync(provFile, 'utf8').trim() : deps ? 'tfjs-node download' : null;
  return {
    ...base,
    kind: gpu ? 'cuda' : 'cpu',
    packageName: pkg,
    native: true,
    gpu,
    cudaDriver: cudaDriverPresent(),
    libtensorflowDir: deps ? join(deps, 'lib') : null,
    libtensorflowProvenance: provenance,
    adapter: null,
  };
}

/** Loads the native CPU backend (or, failing that and allowed, the pure-JS one). Synchronous. */
export function loadCpu(base: Pick<BackendInfo, 'choice' | 'notTaken'>, already?: { tf: TF; pkg: string }): { tf: TF; info: BackendInfo } {
  if (already) return { tf: already.tf, info: nativeInfo(already.pkg, false, base) };
  const r = tryRequire('@tensorflow/tfjs-node');
  if ('tf' in r) return { tf: r.tf, info: nativeInfo('@tensorflow/tfjs-node', false, base) };
  if (process.env.VQGUARD_REQUIRE_NATIVE === '1') {
    throw new Error(
      'vqguard: the native TensorFlow backend (@tensorflow/tfjs-node) did not load and ' +
        'VQGUARD_REQUIRE_NATIVE=1 forbids the pure-JS fallback. Run `make install` ' +
        `(scripts/setup-native.sh) to provision libtensorflow. (${r.error})`,
    );
  }
  const banner = '!'.repeat(78);
  process.stderr.write(
    `${banner}\nvqguard WARNING: native TensorFlow backend unavailable; falling back to the pure-JS\n` +
      `CPU backend, which is 100x or more slower (conv ~0.8 GFLOP/s measured). Run\n` +
      `\`make install\` to provision libtensorflow. Not for real work.\n${banner}\n`,
  );
  const custom = (globalThis as unknown as { __vqguardLoaders?: { tfjs(): TF } }).__vqguardLoaders;
  const tf = custom ? custom.tfjs() : (require('@tensorflow/tfjs') as TF);
  return {
    tf,
    info: {
      ...base,
      notTaken: { ...base.notTaken, cpu: `native libtensorflow did not load: ${r.error}` },
      kind: 'js',
      packageName: '@tensorflow/tfjs',
      native: false,
      gpu: false,
      cudaDriver: cudaDriverPresent(),
      libtensorflowDir: null,
      libtensorflowProvenance: null,
      adapter: null,
    },
  };
}
