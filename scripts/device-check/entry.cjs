// Entry of the GPU check's single-file bundle (scripts/device-check.sh build). CommonJS on
// purpose: these requires are static, so esbuild bundles tfjs and its WebGPU backend, and lazy,
// so the backend package loads only after navigator.gpu exists (src/backend/webgpu/load.ts).
globalThis.__vqguardLoaders = {
  tfjs: () => require('@tensorflow/tfjs'),
  webgpuBackend: () => require('@tensorflow/tfjs-backend-webgpu'),
  dawn: () => require('webgpu'),
};
import('../../src/cli/main.ts');
