/**
 * The compute backend, chosen once at start-up by `initBackend(choice)` (the CLI calls it before
 * any command runs, from --backend, VQGUARD_BACKEND or the config's `backend`, `auto` by default):
 *   - cuda:   @tensorflow/tfjs-node-gpu with a working CUDA device (backend/cuda),
 *   - webgpu: @tensorflow/tfjs-backend-webgpu on Dawn (backend/webgpu),
 *   - cpu:    @tensorflow/tfjs-node, native libtensorflow on CPU (backend/cpu); the pure-JS
 *             backend only as a loud last resort (VQGUARD_REQUIRE_NATIVE=1 forbids it).
 * `auto` prefers CUDA, then a WebGPU adapter that is a real GPU (not lavapipe), then CPU, and
 * records why each one not taken was not taken (`backendInfo.notTaken`, shown by `doctor` and
 * /metrics).
 *
 * `tf` stays the one import for the rest of the code: it forwards to the module of the backend in
 * use. Code that touches `tf` before initBackend (tests, library use) gets the CPU backend loaded
 * synchronously, as before (tfjs-node-gpu first when a CUDA driver is present); initBackend may
 * then still switch once.
 */
import type { BackendChoice, BackendInfo, TF } from './types.ts';
import { parseBackendChoice } from './types.ts';
import { loadCpu } from './cpu/load.ts';
import { probeCuda } from './cuda/load.ts';
import { gpuDeviceNodes, loadWebgpu, probeWebgpu } from './webgpu/load.ts';

export type { BackendChoice, BackendInfo, AdapterInfo, TF } from './types.ts';
export { BACKEND_CHOICES, parseBackendChoice } from './types.ts';

let current: { tf: TF; info: BackendInfo } | null = null;
let chosen: BackendChoice | null = null;

/** The old implicit behaviour: tfjs-node-gpu when it finds a CUDA device, else tfjs-node. Synchronous. */
function implicitLoad(): { tf: TF; info: BackendInfo } {
  const base = { choice: 'auto' as const, notTaken: { webgpu: 'not probed (initBackend was not called)' } };
  const c = probeCuda(base);
  if (c.ok) return { tf: c.tf, info: c.info };
  return loadCpu({ ...base, notTaken: { ...base.notTaken, cuda: c.reason } }, c.loaded);
}

function ensure(): { tf: TF; info: BackendInfo } {
  if (!current) current = implicitLoad();
  return current;
}

/** Forwards every property to the active backend's tfjs module. */
export const tf: TF = new Proxy({} as TF, {
  get: (_t, k) => Reflect.get(ensure().tf, k),
  has: (_t, k) => Reflect.has(ensure().tf, k),
});

/** What runs and why (live: reflects initBackend). */
export const backendInfo: BackendInfo = new Proxy({} as BackendInfo, {
  get: (_t, k) => Reflect.get(ensure().info, k),
  has: (_t, k) => Reflect.has(ensure().info, k),
  ownKeys: () => Reflect.ownKeys(ensure().info),
  getOwnPropertyDescriptor: (_t, k) => {
    const d = Reflect.getOwnPropertyDescriptor(ensure().info, k);
    return d ? { ...d, configurable: true } : undefined;
  },
});

export function getBackendInfo(): BackendInfo {
  return { ...ensure().info };
}

/** Flag > VQGUARD_BACKEND > config > auto. */
export function resolveBackendChoice(flag?: string, config?: string, env: NodeJS.ProcessEnv = process.env): BackendChoice {
  if (flag !== undefined) return parseBackendChoice(flag, '--backend');
  if (env.VQGUARD_BACKEND) return parseBackendChoice(env.VQGUARD_BACKEND, 'VQGUARD_BACKEND');
  if (config !== undefined) return parseBackendChoice(config, 'config backend');
  return 'auto';
}

/**
 * Chooses and loads the backend. Call once at start-up; a second call with the same choice is a
 * no-op, with another choice an error. Throws (with the reason) when an explicit choice cannot run.
 */
export async function initBackend(choice: BackendChoice): Promise<BackendInfo> {
  if (chosen !== null) {
    if (chosen === choice) return getBackendInfo();
    throw new Error(`the backend was already chosen (${chosen}); it cannot be changed to ${choice} in the same process`);
  }
  const notTaken: BackendInfo['notTaken'] = {};
  const base = { choice, notTaken };
  const loadedNative = current && current.info.kind !== 'webgpu' ? { tf: current.tf, pkg: current.info.packageName } : undefined;
  let next: { tf: TF; info: BackendInfo };
  if (choice === 'cpu') {
    notTaken.cuda = 'not asked for (backend: cpu)';
    notTaken.webgpu = 'not asked for (backend: cpu)';
    if (current && current.info.kind === 'js') next = { tf: current.tf, info: { ...current.info, ...base } };
    else next = loadCpu(base, loadedNative);
  } else if (choice === 'cuda') {
    const c = probeCuda(base);
    if (!c.ok) throw new Error(`backend cuda unavailable: ${c.reason}`);
    next = c;
  } else if (choice === 'webgpu') {
    next = await loadWebgpu(base);
  } else {
    const c = probeCuda(base);
    if (c.ok) next = c;
    else {
      notTaken.cuda = c.reason;
      const nodes = gpuDeviceNodes();
      let webgpu: { tf: TF; info: BackendInfo } | null = null;
      if (nodes.length === 0) notTaken.webgpu = 'no GPU device nodes (/dev/nvidia0, /dev/dri/renderD*): only a software adapter could exist';
      else {
        const p = await probeWebgpu();
        if (!p.ok) notTaken.webgpu = p.reason;
        else if (p.adapter.cpu) notTaken.webgpu = `the WebGPU adapter is a CPU/software one (${p.adapter.description || p.adapter.device || p.adapter.vendor}), slower than native CPU`;
        else webgpu = await loadWebgpu(base, p.adapter);
      }
      next = webgpu ?? loadCpu(base, c.loaded ?? loadedNative);
    }
  }
  current = next;
  chosen = choice;
  return getBackendInfo();
}

/** True when tensors cannot be read synchronously (WebGPU in Node): use `await t.data()`. */
export function asyncReadOnly(): boolean {
  return ensure().info.kind === 'webgpu';
}

/** Version string of the libtensorflow the native binding is linked against (null on WebGPU). */
export function tfVersion(): string | null {
  const be = ensure().tf.backend() as unknown as { binding?: { TF_Version?: string } };
  return be.binding?.TF_Version ?? null;
}

/** Labels of the vqguard_backend_info gauge: what runs, what was asked for, the adapter, and why the others were not taken. */
export function backendInfoLabels(): Record<'package' | 'native' | 'gpu' | 'tf_version' | 'backend' | 'choice' | 'adapter' | 'not_taken', string> {
  const i = ensure().info;
  const a = i.adapter;
  return {
    package: i.packageName,
    native: String(i.native),
    gpu: String(i.gpu),
    tf_version: tfVersion() ?? 'unknown',
    backend: i.kind,
    choice: i.choice,
    adapter: a ? [a.vendor, a.architecture, a.description || a.device].filter(Boolean).join(' / ') : '',
    not_taken: Object.entries(i.notTaken).map(([k, v]) => `${k}: ${v}`).join('; '),
  };
}
