/**
 * Loads the bundles of one model set (a folder such as models/mnist) lazily and builds
 * pipelines from specs. Layout:
 *   <dir>/classifier
 *   <dir>/purifier-split<k>        clean-trained purifier for a k x k split (k = 1: whole image)
 *   <dir>/purifier-split<k>-adv    adversarially trained (Defense-VAE style)
 *   <dir>/generator                the Defense-GAN-style baseline's generator
 * A pipeline spec may carry the variant as a prefix: `adv:split2>full`. Which bundles a stage
 * needs and how it is built is declared by its stage kind (src/purify/stages/).
 */
import { join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { tf } from '../backend/tf.ts';
import { loadBundle, BundleError, type BundleManifest, type Model } from './bundle.ts';
import type { Classifier } from '../detect/classifier.ts';
import type { VqVae } from '../purify/vqvae.ts';
import { composePipeline, type Pipeline } from '../purify/pipeline.ts';
import { buildStage, parsePipeline, pipelineBundles, purifierDirName, type StageContext, type Variant } from '../purify/stages/index.ts';

export type { Variant } from '../purify/stages/index.ts';
export { purifierDirName, splitVariant } from '../purify/stages/index.ts';

export class ModelRegistry {
  /** Loaded bundles by folder name (classifier, purifier-split2-adv, generator, ...). */
  private readonly bundles = new Map<string, { model: Model; manifest: BundleManifest }>();

  constructor(readonly dir: string) {
    if (!existsSync(dir)) throw new BundleError(`model directory ${dir} does not exist`);
  }

  /** The bundle `<dir>/<name>`, loaded (sha256-checked) on first use. */
  entry<M extends Model>(name: string): { model: M; manifest: BundleManifest } {
    let e = this.bundles.get(name);
    if (!e) {
      e = loadBundle(join(this.dir, name));
      this.bundles.set(name, e);
    }
    return e as { model: M; manifest: BundleManifest };
  }

  classifier(): Classifier {
    return this.entry<Classifier>('classifier').model;
  }

  classifierManifest(): BundleManifest {
    return this.entry('classifier').manifest;
  }

  purifier(k: number, variant: Variant = 'clean'): VqVae {
    return this.purifierEntry(k, variant).model;
  }

  purifierEntry(k: number, variant: Variant = 'clean'): { model: VqVae; manifest: BundleManifest } {
    return this.entry<VqVae>(purifierDirName(k, variant));
  }

  /** Builds a pipeline such as `split2>full`, `adv:full`, `bits1` from the stage registry. */
  pipeline(spec: string): Pipeline {
    const parsed = parsePipeline(spec);
    const ctx: StageContext = { tf, variant: parsed.variant, bundle: <M>(name: string) => this.entry(name).model as M };
    return composePipeline(parsed.spec, parsed.stages.map((s) => buildStage(s, ctx)));
  }

  /** Versions (sha256 prefixes) of the bundles a pipeline uses, the classifier first. */
  versions(spec: string): Record<string, string> {
    const out: Record<string, string> = { classifier: this.classifierManifest().weightsSha256.slice(0, 12) };
    for (const name of pipelineBundles(spec)) out[name] = this.entry(name).manifest.weightsSha256.slice(0, 12);
    return out;
  }

  dispose(): void {
    for (const e of this.bundles.values()) e.model.dispose();
    this.bundles.clear();
  }
}

/** Canonical form of a dataset name for comparison: idx directories by absolute path. */
export function canonicalDataset(name: string): string {
  const m = /^idx:(.*?)(#[^#]*)?$/.exec(name.trim());
  return m ? `idx:${resolve(m[1]!)}${m[2] ?? ''}` : name.trim();
}

/**
 * A model set must be evaluated on the images it was trained on: a clear error when the
 * classifier was trained on another dataset (unless `allowMismatch`, for transfer studies)
 * or expects another image shape (always).
 */
export function checkModelsFitDataset(
  reg: ModelRegistry,
  data: { name: string; test: { height: number; width: number; channels: number } },
  allowMismatch = false,
): void {
  const m = reg.classifierManifest();
  const c = reg.classifier().config;
  const { height, width, channels } = data.test;
  if (c.height !== height || c.width !== width || c.channels !== channels) {
    throw new BundleError(`${reg.dir}: the classifier takes ${c.height}x${c.width}x${c.channels} images, dataset ${data.name} has ${height}x${width}x${channels}`);
  }
  if (!allowMismatch && canonicalDataset(m.dataset.name) !== canonicalDataset(data.name)) {
    throw new BundleError(
      `${reg.dir} was trained on '${m.dataset.name}' but --dataset is '${data.name}': pass --models <the set trained on it>` +
        ' (or --allow-dataset-mismatch to evaluate these models on other images on purpose)',
    );
  }
}
