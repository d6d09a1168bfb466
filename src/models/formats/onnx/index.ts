/**
 * ONNX models through onnxruntime-node (CPU execution provider; its binaries ship in the npm
 * package). Forward only.
 */
import { existsSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import type { Tensor2D } from '@tensorflow/tfjs-node';
import { tf } from '../../../backend/tf.ts';
import { DeclarationError, type ClassifierDeclaration } from '../declaration.ts';
import type { FormatModel, TensorInfo } from '../types.ts';

type Meta = { name: string; isTensor?: boolean; type?: string; shape?: readonly (number | string)[] };

function info(names: readonly string[], meta: readonly Meta[] | undefined): TensorInfo[] {
  return names.map((name) => {
    const m = meta?.find((x) => x.name === name);
    return { name, shape: m?.shape ? m.shape.map((s) => (typeof s === 'number' ? s : -1)) : null };
  });
}

export async function openOnnx(d: ClassifierDeclaration): Promise<FormatModel> {
  if (!existsSync(d.path)) throw new DeclarationError('path', `ONNX file not found: ${d.path}`);
  const session = await ort.InferenceSession.create(d.path, { executionProviders: ['cpu'], graphOptimizationLevel: 'all' });
  const s = session as unknown as { inputMetadata?: readonly Meta[]; outputMetadata?: readonly Meta[] };
  const inputs = info(session.inputNames, s.inputMetadata);
  const outputs = info(session.outputNames, s.outputMetadata);
  for (const m of s.inputMetadata ?? []) {
    if (m.name === (d.input.name ?? session.inputNames[0]) && m.type && m.type !== 'float32') {
      throw new DeclarationError('input.name', `ONNX input '${m.name}' takes ${m.type}; only float32 inputs are supported`);
    }
  }
  return {
    inputs,
    outputs,
    hasGradients: false,
    run: async (x, inName, outName) => {
      const data = x.dataSync() as Float32Array;
      const feeds = { [inName]: new ort.Tensor('float32', data, x.shape) };
      const res = await session.run(feeds, [outName]);
      const out = res[outName];
      if (!out) throw new DeclarationError('output.name', `ONNX session returned no '${outName}'`);
      if (out.type !== 'float32') throw new DeclarationError('output.name', `ONNX output '${outName}' is ${out.type}; float32 expected`);
      const dims = out.dims.map(Number);
      const t = tf.tensor(out.data as Float32Array, dims, 'float32');
      out.dispose?.();
      if (dims.length !== 2) {
        t.dispose();
        throw new DeclarationError('output.name', `ONNX output '${outName}' has shape [${dims.join(', ')}]; [N, classes] expected`);
      }
      return t as Tensor2D;
    },
    dispose: () => {
      void session.release();
    },
  };
}
