/** Types shared by the backends (issue 16): the choice, what was loaded, and why. */
export type BackendChoice = 'auto' | 'cpu' | 'cuda' | 'webgpu';
export const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'cpu', 'cuda', 'webgpu'];

export type TF = typeof import('@tensorflow/tfjs-node');

export interface AdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** true for software adapters (lavapipe/llvmpipe, SwiftShader) or Dawn's fallback adapter. */
  cpu: boolean;
  limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupsPerDimension: number;
    maxComputeInvocationsPerWorkgroup: number;
    maxComputeWorkgroupStorageSize: number;
  };
}

export interface BackendInfo {
  /** What was asked for (config `backend`, --backend, VQGUARD_BACKEND), `auto` by default. */
  choice: BackendChoice;
  /** What runs: cpu (libtensorflow on CPU), cuda (libtensorflow with a CUDA device), webgpu, or js (pure-JS fallback). */
  kind: 'cpu' | 'cuda' | 'webgpu' | 'js';
  packageName: string;
  native: boolean;
  gpu: boolean;
  cudaDriver: boolean;
  libtensorflowDir: string | null;
  libtensorflowProvenance: string | null;
  /** The WebGPU adapter in use (webgpu), or the one probed and not taken (doctor fills this in). */
  adapter: AdapterInfo | null;
  /** Why each backend that was not taken was not taken. */
  notTaken: Partial<Record<'cuda' | 'webgpu' | 'cpu', string>>;
}

export function parseBackendChoice(s: string, source: string): BackendChoice {
  const t = s.trim().toLowerCase();
  if ((BACKEND_CHOICES as readonly string[]).includes(t)) return t as BackendChoice;
  throw new Error(`${source}: unknown backend "${s}": expected ${BACKEND_CHOICES.join(', ')}`);
}
