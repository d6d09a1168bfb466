/**
 * WebGPU backend: @tensorflow/tfjs-backend-webgpu on Dawn for Node (npm `webgpu`), over the
 * machine's Vulkan driver (NVIDIA's on GPU hosts, Mesa's lavapipe on CPU machines for tests).
 * Reads no data synchronously (dataSync needs OffscreenCanvas, absent in Node): forward paths use
 * `await t.data()` (Detector.rawAsync). The tfjs union package (@tensorflow/tfjs) is loaded, not
 * tfjs-node, so no libtensorflow is needed: the union registers the gradients (tfjs-core alone
 * does not), so attacks run here too.
 */
import { createRequire } from 'node:module';
import { existsSync, readdirSync } from 'node:fs';
import type { AdapterInfo, BackendInfo, TF } from '../types.ts';
import { cudaDriverPresent } from '../cpu/load.ts';

const require = createRequire(import.meta.url);

interface GpuAdapterLike {
  info?: Record<string, unknown>;
  isFallbackAdapter?: boolean;
  limits: Record<string, number>;
}
interface GpuLike {
  requestAdapter(o?: { powerPreference?: string }): Promise<GpuAdapterLike | null>;
}

/**
 * How the packages are loaded: plain require by default; the GPU check's single-file bundle
 * (scripts/device-check.sh) installs loaders whose static requires esbuild can bundle.
 */
interface Loaders {
  tfjs(): TF;
  webgpuBackend(): unknown;
  dawn(): { create(o: string[]): GpuLike; globals: Record<string, unknown> };
}
const loaders: Loaders = (globalThis as unknown as { __vqguardLoaders?: Loaders }).__vqguardLoaders ?? {
  tfjs: () => require('@tensorflow/tfjs') as TF,
  webgpuBackend: () => require('@tensorflow/tfjs-backend-webgpu'),
  dawn: () => require('webgpu') as ReturnType<Loaders['dawn']>,
};

let gpu: GpuLike | null = null;

/** Installs Dawn's globals and navigator.gpu (once). Throws when the `webgpu` package or Dawn cannot load. */
function installDawn(): GpuLike {
  if (gpu) return gpu;
  const mod = loaders.dawn();
  Object.assign(globalThis, mod.globals);
  gpu = mod.create([]);
  const nav = (globalThis as unknown as { navigator?: Record<string, unknown> }).navigator;
  if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  return gpu;
}

const SOFTWARE_RE = /llvmpipe|lavapipe|swiftshader|software|\bcpu\b/i;

export function adapterInfoOf(a: GpuAdapterLike): AdapterInfo {
  const i = a.info ?? {};
  const s = (k: string) => (typeof i[k] === 'string' ? (i[k] as string) : '');
  const [vendor, architecture, device, description] = [s('vendor'), s('architecture'), s('device'), s('description')];
  const fallback = Boolean(i.isFallbackAdapter ?? a.isFallbackAdapter);
  const l = a.limits;
  return {
    vendor, architecture, device, description,
    cpu: fallback || SOFTWARE_RE.test(`${vendor} ${architecture} ${device} ${description}`),
    limits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize!,
      maxBufferSize: l.maxBufferSize!,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension!,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup!,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize!,
    },
  };
}

/** GPU device nodes a real Vulkan driver would use; none means only software adapters can exist. */
export function gpuDeviceNodes(): string[] {
  const out: string[] = [];
  if (existsSync('/dev/nvidia0')) out.push('/dev/nvidia0');
  try {
    for (const f of readdirSync('/dev/dri')) if (f.startsWith('renderD')) out.push(`/dev/dri/${f}`);
  } catch {
    /* no /dev/dri */
  }
  return out;
}

export type WebgpuProbe = { ok: true; adapter: AdapterInfo } | { ok: false; reason: string; adapter?: AdapterInfo };

/** Asks Dawn for its high-performance adapter and describes it. Never throws. */
export async function probeWebgpu(): Promise<WebgpuProbe> {
  let g: GpuLike;
  try {
    g = installDawn();
  } catch (e) {
    return { ok: false, reason: `Dawn (npm webgpu) did not load: ${(e as Error).message.split('\n')[0]}` };
  }
  try {
    const a = await g.requestAdapter({ powerPreference: 'high-performance' });
    if (!a) return { ok: false, reason: 'no WebGPU adapter (no Vulkan driver Dawn accepts; on CPU machines run scripts/setup-webgpu.sh for lavapipe)' };
    return { ok: true, adapter: adapterInfoOf(a) };
  } catch (e) {
    return { ok: false, reason: `requesting a WebGPU adapter failed: ${(e as Error).message}` };
  }
}

/** Loads tfjs + the WebGPU backend on Dawn and makes it the active backend. */
export async function loadWebgpu(base: Pick<BackendInfo, 'choice' | 'notTaken'>, adapter?: AdapterInfo): Promise<{ tf: TF; info: BackendInfo }> {
  let a = adapter;
  if (!a) {
    const p = await probeWebgpu();
    if (!p.ok) throw new Error(`WebGPU backend unavailable: ${p.reason}`);
    a = p.adapter;
  }
  const tf = loaders.tfjs();
  // Must come after navigator.gpu exists: the package registers its backend only when it sees one.
  loaders.webgpuBackend();
  const ok = await tf.setBackend('webgpu');
  if (!ok || tf.getBackend() !== 'webgpu') throw new Error('WebGPU backend unavailable: tf.setBackend("webgpu") failed (see the messages above)');
  await tf.ready();
  return {
    tf,
    info: {
      ...base,
      kind: 'webgpu',
      packageName: '@tensorflow/tfjs-backend-webgpu',
      native: true,
      gpu: !a.cpu,
      cudaDriver: cudaDriverPresent(),
      libtensorflowDir: null,
      libtensorflowProvenance: null,
      adapter: { ...a, limits: deviceLimits(tf) ?? a.limits },
    },
  };
}

/** The limits of the device the backend actually opened (requested as the adapter's maxima). */
export function deviceLimits(tf: TF): AdapterInfo['limits'] | null {
  const be = tf.findBackend('webgpu') as unknown as { device?: { limits: Record<string, number> } } | null;
  if (!be?.device) return null;
  return adapterInfoOf({ limits: be.device.limits }).limits;
}
