/**
 * A model bundle is a folder:
 *   model.json   architecture (config), parameter layout, dataset, training command and seed,
 *                metrics, and the sha256 of weights.bin;
 *   weights.bin  all parameters, float32 little-endian, in the order listed in model.json.
 * Loading verifies the sha256 before any weight is used; a mismatch is refused.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Classifier } from '../detect/classifier.ts';
import { VqVae } from '../purify/vqvae.ts';
import type { ParamStore } from '../nn/params.ts';
import { Generator } from '../baselines/generator.ts';
import { BUNDLE_FORMAT, BundleError, readManifest, type BundleManifest, type ModelConfig } from './manifest.ts';

export { BUNDLE_FORMAT, BundleError, readManifest, manifestSchema } from './manifest.ts';
export type { BundleManifest, ModelConfig, TrainingRecord } from './manifest.ts';

export type Model = Classifier | VqVae | Generator;

export function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

export function createModel(config: ModelConfig, seed = 1): Model {
  if (config.kind === 'classifier') return new Classifier(config, seed);
  if (config.kind === 'generator') return new Generator(config, seed);
  return new VqVae(config, seed);
}

function serialise(params: ParamStore): { buf: Buffer; layout: BundleManifest['params'] } {
  const specs = params.specs();
  const total = specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
  const all = new Float32Array(total);
  const layout: BundleManifest['params'] = [];
  let offset = 0;
  for (const spec of specs) {
    const data = params.get(spec.name).dataSync() as Float32Array;
    all.set(data, offset);
    layout.push({ ...spec, offset, length: data.length });
    offset += data.length;
  }
  return { buf: Buffer.from(all.buffer, all.byteOffset, all.byteLength), layout };
}

export function saveBundle(
  dir: string,
  model: Model,
  meta: Omit<BundleManifest, 'format' | 'config' | 'params' | 'weightsFile' | 'weightsSha256' | 'createdAt'>,
): BundleManifest {
  mkdirSync(dir, { recursive: true });
  const { buf, layout } = serialise(model.params);
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    ...meta,
    config: model.config,
    params: layout,
    weightsFile: 'weights.bin',
    weightsSha256: sha256(buf),
    createdAt: new Date().toISOString(),
  };
  // Write to temporary names then rename, so a crash never leaves a half-written bundle.
  writeFileSync(join(dir, 'weights.bin.tmp'), buf);
  writeFileSync(join(dir, 'model.json.tmp'), JSON.stringify(manifest, null, 2) + '\n');
  renameSync(join(dir, 'weights.bin.tmp'), join(dir, 'weights.bin'));
  renameSync(join(dir, 'model.json.tmp'), join(dir, 'model.json'));
  return manifest;
}

export function loadBundle<M extends Model = Model>(dir: string): { model: M; manifest: BundleManifest } {
  const manifest = readManifest(dir);
  const wpath = join(dir, manifest.weightsFile);
  if (!existsSync(wpath)) throw new BundleError(`model bundle ${dir}: weights file ${manifest.weightsFile} is missing`);
  const buf = readFileSync(wpath);
  const digest = sha256(buf);
  if (digest !== manifest.weightsSha256) {
    throw new BundleError(
      `model bundle ${dir}: sha256 mismatch for ${manifest.weightsFile} (expected ${manifest.weightsSha256}, got ${digest}); refusing a tampered or corrupt bundle`,
    );
  }
  const floats = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const model = createModel(manifest.config);
  const values = new Map<string, Float32Array>();
  for (const p of manifest.params) {
    if (p.offset + p.length > floats.length) throw new BundleError(`model bundle ${dir}: parameter ${p.name} lies outside weights.bin`);
    values.set(p.name, floats.subarray(p.offset, p.offset + p.length));
  }
  const expected = model.params.names();
  const extra = manifest.params.map((p) => p.name).filter((n) => !expected.includes(n));
  if (extra.length) throw new BundleError(`model bundle ${dir}: unexpected parameters ${extra.join(', ')}`);
  try {
    model.params.restore(values);
  } catch (e) {
    model.dispose();
    throw new BundleError(`model bundle ${dir}: ${(e as Error).message}`);
  }
  if (model instanceof VqVae) model.initialised = true;
  return { model: model as M, manifest };
}
