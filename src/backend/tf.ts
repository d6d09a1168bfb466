/**
 * The compute backend, chosen once at start-up:
 *   - @tensorflow/tfjs-node-gpu when a CUDA driver is present and the package is installed,
 *   - @tensorflow/tfjs-node otherwise (native libtensorflow on CPU),
 *   - the pure-JS backend only as a last resort, with a loud warning (about 0.8 GFLOP/s for
 *     conv here, 100x+ slower). VQGUARD_REQUIRE_NATIVE=1 turns that fallback into an error.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

// Keep libtensorflow's C++ info lines (CPU feature notices) out of our logs.
process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';

export type TF = typeof import('@tensorflow/tfjs-node');

export interface BackendInfo {
  packageName: string;
  native: boolean;
  gpu: boolean;
  cudaDriver: boolean;
  libtensorflowDir: string | null;
  libtensorflowProvenance: string | null;
}

function cudaDriverPresent(): boolean {
  return existsSync('/proc/driver/nvidia/version');
}

function tryRequire(name: string): TF | null {
  try {
    return require(name) as TF;
  } catch {
    return null;
  }
}

function depsDir(pkg: string): string | null {
  try {
    const dir = join(dirname(require.resolve(`${pkg}/package.json`)), 'deps');
    return existsSync(dir) ? dir : null;
  } catch {
    return null;
  }
}

function load(): { tf: TF; info: BackendInfo } {
  const cuda = cudaDriverPresent();
  const candidates = cuda ? ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] : ['@tensorflow/tfjs-node'];
  for (const pkg of candidates) {
    const tf = tryRequire(pkg);
    if (tf) {
      const deps = depsDir(pkg);
      const provFile = deps ? join(deps, 'PROVENANCE') : null;
      const provenance = provFile && existsSync(provFile)
        ? require('node:fs').readFileSync(provFile, 'utf8').trim()
        : deps ? 'tfjs-node download' : null;
      return {
        tf,
        info: {
          packageName: pkg,
          native: true,
          gpu: pkg.endsWith('-gpu'),
          cudaDriver: cuda,
          libtensorflowDir: deps ? join(deps, 'lib') : null,
          libtensorflowProvenance: provenance,
        },
      };
    }
  }
  if (process.env.VQGUARD_REQUIRE_NATIVE === '1') {
    throw new Error(
      'vqguard: the native TensorFlow backend (@tensorflow/tfjs-node) did not load and ' +
        'VQGUARD_REQUIRE_NATIVE=1 forbids the pure-JS fallback. Run `make install` ' +
        '(scripts/setup-native.sh) to provision libtensorflow.',
    );
  }
  const banner = '!'.repeat(78);
  process.stderr.write(
    `${banner}\nvqguard WARNING: native TensorFlow backend unavailable; falling back to the pure-JS\n` +
      `CPU backend, which is 100x or more slower (conv ~0.8 GFLOP/s measured). Run\n` +
      `\`make install\` to provision libtensorflow. Not for real work.\n${banner}\n`,
  );
  const tf = require('@tensorflow/tfjs') as TF;
  return {
    tf,
    info: { packageName: '@tensorflow/tfjs', native: false, gpu: false, cudaDriver: cuda, libtensorflowDir: null, libtensorflowProvenance: null },
  };
}

const loaded = load();
export const tf: TF = loaded.tf;
export const backendInfo: BackendInfo = loaded.info;

/** Version string of the libtensorflow the native binding is linked against. */
export function tfVersion(): string | null {
  const be = tf.backend() as unknown as { binding?: { TF_Version?: string } };
  return be.binding?.TF_Version ?? null;
}
