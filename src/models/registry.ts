/**
 * Loads the bundles of one model set (a folder such as models/mnist) lazily and builds
 * pipelines from specs. Layout:
 *   <dir>/classifier
 *   <dir>/purifier-split<k>        clean-trained purifier for a k x k split (k = 1: whole image)
 *   <dir>/purifier-split<k>-adv    adversarially trained (Defense-VAE style)
 * A pipeline spec may carry the variant as a prefix: `adv:split2>full`.
 */
import { join, resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { loadBundle, BundleError, type BundleManifest } from './bundle.ts';
import type { Classifier } from '../detect/classifier.ts';
import type { VqVae } from '../purify/vqvae.ts';
import { SQUEEZE_STAGES } from '../detect/squeeze.ts';
import type { Generator } from '../baselines/generator.ts';
import { composePipeline, parsePipeline, vqStage, type Pipeline, type Stage } from '../purify/pipeline.ts';

export type Variant = 'clean' | 'adv';

export type ExtraStageFactory = (name: string) => Stage;

export function purifierDirName(k: number, variant: Variant): string {
  return `purifier-split${k}${variant === 'adv' ? '-adv' : ''}`;
}

export function splitVariant(spec: string): { variant: Variant; stages: string } {
  const m = /^(clean|adv):(.*)$/.exec(spec.trim());
  return m ? { variant: m[1] as Variant, stages: m[2]! } : { variant: 'clean', stages: spec.trim() };
}

export class ModelRegistry {
  private clf: { model: Classifier; manifest: BundleManifest } | null = null;
  private readonly purifiers = new Map<string, { model: VqVae; manifest: BundleManifest }>();

  constructor(readonly dir: string, private readonly extraStages: Record<string, ExtraStageFactory> = SQUEEZE_STAGES) {
    if (!existsSync(dir)) throw new BundleError(`model directory ${dir} does not exist`);
  }

  classifier(): Classifier {
    this.clf ??= loadBundle<Classifier>(join(this.dir, 'classifier'));
    return this.clf.model;
  }

  classifierManifest(): BundleManifest {
    this.classifier();
    return this.clf!.manifest;
  }

  purifier(k: number, variant: Variant = 'clean'): VqVae {
    return this.purifierEntry(k, variant).model;
  }

  purifierEntry(k: number, variant: Variant = 'clean'): { model: VqVae; manifest: BundleManifest } {
    const name = purifierDirName(k, variant);
    let e = this.purifiers.get(name);
    if (!e) {
      e = loadBundle<VqVae>(join(this.dir, name));
      this.purifiers.set(name, e);
    }
    return e;
  }

  private generatorModel: Generator | null = null;

  /** Defense-GAN-style stage `defensegan` (L=200, R=10) or `defensegan-L<steps>-R<restarts>`. */
  private defenseGanStage(name: string): Stage {
    const m = /^defensegan(?:-L(\d+)-R(\d+))?$/.exec(name)!;
    const steps = Number(m[1] ?? 200), restarts = Number(m[2] ?? 10);
    this.generatorModel ??= loadBundle<Generator>(join(this.dir, 'generator')).model;
    const g = this.generatorModel;
    // Dense, convT 7->14 (64->32), convT 14->28 (32->C); forward + backward per step.
    const perStep = 2 * 3 * (g.config.latent * 49 * 64 + 49 * 16 * 32 * 64 + 196 * 16 * g.config.channels * 32);
    return { name, apply: (x) => g.purify(x, steps, restarts), flopsPerImage: () => steps * restarts * perStep };
  }

  /** Builds a pipeline such as `split2>full` or `adv:full`. */
  pipeline(spec: string): Pipeline {
    const { variant, stages } = splitVariant(spec);
    const dg = stages.split('>').map((s) => s.trim()).filter((s) => /^defensegan(-L\d+-R\d+)?$/.test(s));
    const parsed = parsePipeline(stages, [...Object.keys(this.extraStages), ...dg]);
    const built = parsed.map((s) =>
      s.kind === 'split' ? vqStage(s.k, this.purifier(s.k, variant)) : dg.includes(s.name) ? this.defenseGanStage(s.name) : this.extraStages[s.name]!(s.name),
    );
    return composePipeline(spec.trim(), built);
  }

  /** Versions (sha256 prefixes) of the bundles a pipeline uses. */
  versions(spec: string): Record<string, string> {
    const { variant, stages } = splitVariant(spec);
    const out: Record<string, string> = { classifier: this.classifierManifest().weightsSha256.slice(0, 12) };
    for (const s of parsePipeline(stages, Object.keys(this.extraStages))) {
      if (s.kind === 'split') out[purifierDirName(s.k, variant)] = this.purifierEntry(s.k, variant).manifest.weightsSha256.slice(0, 12);
    }
    return out;
  }

  dispose(): void {
    this.clf?.model.dispose();
    this.generatorModel?.dispose();
    this.generatorModel = null;
    for (const e of this.purifiers.values()) e.model.dispose();
    this.purifiers.clear();
    this.clf = null;
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
