/**
 * TF.js models: `model.json` + weight shards, Layers ("layers-model") or Graph ("graph-model").
 * Both run as TF.js ops, so gradients are available (white-box attacks).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { GraphModel, LayersModel, NamedTensorMap, Tensor, Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../../../backend/tf.ts';
import { DeclarationError, type ClassifierDeclaration } from '../declaration.ts';
import type { FormatModel, TensorInfo } from '../types.ts';

function modelJsonPath(path: string): string {
  const p = existsSync(path) && statSync(path).isDirectory() ? join(path, 'model.json') : path;
  if (!existsSync(p)) throw new DeclarationError('path', `TF.js model.json not found at ${p}`);
  return resolve(p);
}

/** 'layers-model' or 'graph-model', from model.json's `format` (or its topology when absent). */
export function tfjsKind(path: string): 'layers' | 'graph' {
  const file = modelJsonPath(path);
  let j: { format?: string; modelTopology?: { node?: unknown; model_config?: unknown; class_name?: unknown } };
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new DeclarationError('path', `${file} is not valid JSON (${(e as Error).message})`);
  }
  if (j.format === 'layers-model') return 'layers';
  if (j.format === 'graph-model') return 'graph';
  if (j.modelTopology?.node) return 'graph';
  if (j.modelTopology?.model_config || j.modelTopology?.class_name) return 'layers';
  throw new DeclarationError('format', `${file} is neither a TF.js layers-model nor a graph-model (format: ${String(j.format)})`);
}

export async function openTfjs(d: ClassifierDeclaration): Promise<FormatModel> {
  const file = modelJsonPath(d.path);
  const kind = tfjsKind(file);
  if (d.format === 'tfjs-layers' && kind !== 'layers') throw new DeclarationError('format', `${file} is a TF.js graph model, declared tfjs-layers (use tfjs-graph or tfjs)`);
  if (d.format === 'tfjs-graph' && kind !== 'graph') throw new DeclarationError('format', `${file} is a TF.js layers model, declared tfjs-graph (use tfjs-layers or tfjs)`);
  const url = `file://${file}`;
  return kind === 'layers' ? openLayers(await tf.loadLayersModel(url)) : openGraph(await tf.loadGraphModel(url));
}

function openLayers(m: LayersModel): FormatModel {
  const inputs: TensorInfo[] = m.inputs.map((t, i) => ({ name: m.inputNames[i] ?? t.name, shape: t.shape.map((s) => s ?? -1) }));
  const outputs: TensorInfo[] = m.outputs.map((t, i) => ({ name: m.outputNames[i] ?? t.name, shape: t.shape.map((s) => s ?? -1) }));
  const runSync = (x: Tensor4D, _in: string, out: string): Tensor2D => {
    const y = m.apply(x, { training: false }) as Tensor | Tensor[];
    if (!Array.isArray(y)) return y as Tensor2D;
    const k = m.outputNames.indexOf(out);
    y.forEach((t, i) => i !== k && t.dispose());
    return y[k] as Tensor2D;
  };
  return {
    inputs,
    outputs,
    hasGradients: true,
    runSync,
    run: async (x, i, o) => tf.tidy(() => runSync(x, i, o)),
    dispose: () => m.dispose(),
  };
}

function openGraph(m: GraphModel): FormatModel {
  const info = (t: { name: string; shape?: number[] }): TensorInfo => ({ name: t.name, shape: t.shape ?? null });
  // With a signature, inputs/outputs are named by the signature's keys (inputNodes/outputNodes).
  const inputs = m.inputs.map((t, i) => info({ ...t, name: m.inputNodes[i] ?? t.name }));
  const outputs = m.outputs.map((t, i) => info({ ...t, name: m.outputNodes[i] ?? t.name }));
  const runSync = (x: Tensor4D, inName: string, outName: string): Tensor2D => {
    const y = m.execute({ [inName]: x } as NamedTensorMap, outName);
    return (Array.isArray(y) ? y[0] : y) as Tensor2D;
  };
  return {
    inputs,
    outputs,
    hasGradients: true,
    runSync,
    run: async (x, i, o) => {
      try {
        return runSync(x, i, o);
      } catch (e) {
        // Graphs with control flow or dynamic shapes only run asynchronously.
        if (!/executeAsync/.test((e as Error).message)) throw e;
        const y = await m.executeAsync({ [i]: x } as NamedTensorMap, o);
        return (Array.isArray(y) ? y[0] : y) as Tensor2D;
      }
    },
    dispose: () => m.dispose(),
  };
}
