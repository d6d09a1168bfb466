/**
 * A model bundle is a folder:
 *   model.json   architecture (config), parameter layout, dataset, training command and seed,
 *                metrics, and the sha256 of weights.bin;
 *   weights.bin  all parameters, little-endian, in the order listed in model.json: float32 as
 *                trained, or float16 after `vqguard models convert --dtype float16` (the shipped
 *                sets: half the bytes, so the repository fits a 64 MiB GPU-check bundle;
 *                `weightsDtype` and `conversion` in model.json say so and record the command).
 * Loading verifies the sha256 (of the file as stored) before any weight is used; a mismatch is
 * refused. float16 weights are widened to float32 on load; compute stays float32.
 */
import { Float16Array } from '@petamoriken/float16';
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

export type WeightsDtype = 'float32' | 'float16';
const BYTES: Record<WeightsDtype, number> = { float32: 4, float16: 2 };

/** The stored weights as float32 values. */
function decodeWeights(buf: Buffer, dtype: WeightsDtype, dir: string): Float32Array {
  if (buf.byteLength % BYTES[dtype] !== 0) throw new BundleError(`model bundle ${dir}: weights file size ${buf.byteLength} is not a multiple of ${BYTES[dtype]} (${dtype})`);
  const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  if (dtype === 'float32') return new Float32Array(bytes);
  return Float32Array.from(new Float16Array(bytes));
}

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
  const dtype = manifest.weightsDtype ?? 'float32';
  if (!(dtype in BYTES)) throw new BundleError(`model bundle ${dir}: unsupported weightsDtype "${dtype}" (expected float32 or float16)`);
  const floats = decodeWeights(buf, dtype, dir);
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

/**
 * Rewrites a bundle's weights.bin as float16 (round to nearest even), in place and atomically,
 * after verifying the float32 file's sha256. Refuses weights outside float16's range. Returns the
 * largest absolute rounding error; a bundle already in float16 is left as it is (null).
 */
export function convertBundleToFloat16(dir: string, command: string): { maxAbsError: number; bytesBefore: number; bytesAfter: number } | null {
  const manifest = readManifest(dir);
  if ((manifest.weightsDtype ?? 'float32') === 'float16') return null;
  const wpath = join(dir, manifest.weightsFile);
  const buf = readFileSync(wpath);
  if (sha256(buf) !== manifest.weightsSha256) throw new BundleError(`model bundle ${dir}: sha256 mismatch for ${manifest.weightsFile}; refusing to convert a corrupt bundle`);
  const floats = decodeWeights(buf, 'float32', dir);
  const half = Float16Array.from(floats);
  let maxAbsError = 0;
  for (let i = 0; i < floats.length; i++) {
    const v = half[i]!;
    if (!Number.isFinite(v)) throw new BundleError(`model bundle ${dir}: weight ${i} (${floats[i]}) is outside float16's range`);
    maxAbsError = Math.max(maxAbsError, Math.abs(v - floats[i]!));
  }
  const out = Buffer.from(half.buffer, half.byteOffset, half.byteLength);
  const next: BundleManifest = {
    ...manifest,
    weightsSha256: sha256(out),
    weightsDtype: 'float16',
    conversion: { command, from: 'float32', float32Sha256: manifest.weightsSha256, maxAbsError, convertedAt: new Date().toISOString() },
  };
  writeFileSync(join(dir, 'weights.bin.tmp'), out);
  writeFileSync(join(dir, 'model.json.tmp'), JSON.stringify(next, null, 2) + '\n');
  renameSync(join(dir, 'weights.bin.tmp'), wpath);
  renameSync(join(dir, 'model.json.tmp'), join(dir, 'model.json'));
  return { maxAbsError, bytesBefore: buf.byteLength, bytesAfter: out.byteLength };
}
