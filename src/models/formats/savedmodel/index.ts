/**
 * TensorFlow SavedModel directories, executed by tfjs-node's libtensorflow
 * (tf.node.loadSavedModel). Forward only: no gradients through the native session.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../../../backend/tf.ts';
import { DeclarationError, type ClassifierDeclaration } from '../declaration.ts';
import type { FormatModel, TensorInfo } from '../types.ts';

/** Signature shapes come back as protobuf-ish objects in some builds; read what can be read. */
function dims(shape: unknown): (number | null)[] | null {
  if (!Array.isArray(shape)) return null;
  return shape.map((s: unknown) => {
    if (typeof s === 'number') return s;
    if (s && typeof s === 'object') {
      const o = s as Record<string, unknown>;
      if (typeof o.size === 'number') return o.size;
      if (typeof o.size === 'string') return Number(o.size);
    }
    return null;
  });
}

export async function openSavedModel(d: ClassifierDeclaration): Promise<FormatModel> {
  if (!existsSync(join(d.path, 'saved_model.pb'))) throw new DeclarationError('path', `no saved_model.pb in ${d.path}`);
  const metas = await tf.node.getMetaGraphsFromSavedModel(d.path);
  const meta = metas.find((m) => d.tags.every((t) => m.tags.includes(t)) && m.tags.length === d.tags.length);
  if (!meta) throw new DeclarationError('tags', `no meta graph tagged [${d.tags.join(', ')}] in ${d.path} (has: ${metas.map((m) => `[${m.tags.join(', ')}]`).join(' ') || 'none'})`);
  const sig = meta.signatureDefs[d.signature];
  if (!sig) throw new DeclarationError('signature', `no signature '${d.signature}' in ${d.path} (has: ${Object.keys(meta.signatureDefs).join(', ')})`);
  const inputs: TensorInfo[] = Object.entries(sig.inputs).map(([name, t]) => ({ name, shape: dims((t as { shape?: unknown }).shape) }));
  const outputs: TensorInfo[] = Object.entries(sig.outputs).map(([name, t]) => ({ name, shape: dims((t as { shape?: unknown }).shape) }));
  const model = await tf.node.loadSavedModel(d.path, d.tags, d.signature);
  // The native session runs synchronously (no gradients flow through it).
  const forwardSync = (x: Tensor4D, inName: string, outName: string): Tensor2D => {
    const y = model.predict({ [inName]: x }) as Record<string, Tensor2D>;
    const out = y[outName];
    for (const [k, t] of Object.entries(y)) if (k !== outName) t.dispose();
    if (!out) throw new DeclarationError('output.name', `signature '${d.signature}' returned no '${outName}'`);
    return out;
  };
  return {
    inputs,
    outputs,
    hasGradients: false,
    forwardSync,
    run: async (x, inName, outName) => forwardSync(x, inName, outName),
    dispose: () => model.dispose(),
  };
}
