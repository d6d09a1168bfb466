/**
 * Loads the bundles of one model set (a folder such as models/mnist) lazily and builds
 * pipelines from specs. Layout:
 *   <dir>/classifier
 *   <dir>/purifier-split<k>        clean-trained purifier for a k x k split (k = 1: whole image)
 *   <dir>/purifier-split<k>-adv    adversarially trained (Defense-VAE style)
 *   <dir>/generator                the Defense-GAN-style baseline's generator
 *   <dir>/modelset.json            optional (written by `vqguard fit`): the class names, and the
 *                                  classifier being guarded when it is not <dir>/classifier: a
 *                                  declaration file (TF.js, SavedModel, ONNX; see models/formats/),
 *                                  plus <dir>/surrogate, a vqguard classifier trained on the same
 *                                  data, when that classifier has no gradients (transfer attacks)
 * A pipeline spec may carry the variant as a prefix: `adv:split2>full`. Which bundles a stage
 * needs and how it is built is declared by its stage kind (src/purify/stages/).
 */
import { dirname, join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { tf } from '../backend/tf.ts';
import { loadBundle, BundleError, type BundleManifest, type Model } from './bundle.ts';
import { readModelSetFile, type ModelSetManifest } from './manifest.ts';
import type { Classifier } from '../detect/classifier.ts';
import { bundleScoring, type ScoringClassifier } from '../detect/scoringClassifier.ts';
import { readDeclarationFile, type ClassifierDeclaration } from './formats/declaration.ts';
import { scoringFromLoaded } from './guardClassifier.ts';
import type { Tensor2D, Tensor4D } from '@tensorflow/tfjs-node';
import type { VqVae } from '../purify/vqvae.ts';
import { composePipeline, type Pipeline } from '../purify/pipeline.ts';
import { buildStage, parsePipeline, pipelineBundles, purifierDirName, type StageContext, type Variant } from '../purify/stages/index.ts';

export type { Variant } from '../purify/stages/index.ts';
export { purifierDirName, splitVariant } from '../purify/stages/index.ts';

export { MODELSET_FORMAT, modelSetSchema, type ModelSetManifest } from './manifest.ts';

/** The model set's modelset.json, or null (see readModelSetFile). */
export function readModelSet(dir: string): ModelSetManifest | null {
  return readModelSetFile(dir);
}

/** What attacks differentiate: the guarded classifier itself (white-box) or a surrogate (transfer). */
export interface AttackModel {
  logits: (x: Tensor4D) => Tensor2D;
  kind: 'white-box' | 'transfer';
  /** Words for reports: "white-box", or "transfer attack from a surrogate (<bundle>)". */
  describe: string;
}

export class ModelRegistry {
  /** Loaded bundles by folder name (classifier, purifier-split2-adv, generator, ...). */
  private readonly bundles = new Map<string, { model: Model; manifest: BundleManifest }>();
  readonly modelSet: ModelSetManifest | null;
  /** Declaration of an external guarded classifier (from modelset.json), or null. */
  readonly externalDeclaration: ClassifierDeclaration | null;
  private readonly externalDeclarationText: string | null;
  private external: ScoringClassifier | null = null;
  private externalDispose: (() => void) | null = null;

  constructor(readonly dir: string) {
    if (!existsSync(dir)) throw new BundleError(`model directory ${dir} does not exist`);
    this.modelSet = readModelSet(dir);
    const declFile = this.modelSet?.classifier ? resolve(dir, this.modelSet.classifier) : null;
    this.externalDeclaration = declFile ? readDeclarationFile(declFile) : null;
    this.externalDeclarationText = declFile ? readFileSync(declFile, 'utf8') : null;
    const d = this.externalDeclaration;
    if (d && this.modelSet && (d.input.height !== this.modelSet.height || d.input.width !== this.modelSet.width || d.input.channels !== this.modelSet.channels)) {
      throw new BundleError(`${dir}: ${this.modelSet.classifier} declares ${d.input.height}x${d.input.width}x${d.input.channels} input, modelset.json says ${this.modelSet.height}x${this.modelSet.width}x${this.modelSet.channels}`);
    }
  }

  /** Loads an external classifier (asynchronous formats); a no-op for vqguard bundles. */
  async prepare(): Promise<void> {
    const d = this.externalDeclaration;
    if (!d || this.external) return;
    const { loadClassifier } = await import('./formats/load.ts');
    const m = await loadClassifier(d, dirname(resolve(this.dir, this.modelSet!.classifier!)));
    this.external = scoringFromLoaded(m, `${d.format}:${d.path}`, this.modelSet!.classes);
    this.externalDispose = () => m.dispose();
  }

  /**
   * The classifier being guarded, as the detector uses it. For an external classifier this is
   * a handle usable at once (shape, classes) whose scoring works after `await prepare()`
   * (the guard's start-up does it), so runtimes can be built synchronously.
   */
  scoring(): ScoringClassifier {
    const d = this.externalDeclaration;
    if (d) {
      const self = this;
      const loaded = (): ScoringClassifier => {
        if (!self.external) throw new BundleError(`${self.dir}: the external classifier ${d.format}:${d.path} is not loaded yet (await registry.prepare())`);
        return self.external;
      };
      return {
        height: d.input.height,
        width: d.input.width,
        channels: d.input.channels,
        classNames: this.modelSet!.classes,
        source: `${d.format}:${d.path}`,
        get hasGradients() {
          return loaded().hasGradients;
        },
        get logits() {
          return loaded().logits;
        },
        logitsAsync: (x) => loaded().logitsAsync(x),
      };
    }
    return bundleScoring(this.classifier(), `vqguard-bundle:${join(this.dir, 'classifier')}`, this.modelSet?.classes ?? null);
  }

  /** Input size of the guarded classifier (no model loaded). */
  inputShape(): { height: number; width: number; channels: number } {
    const d = this.externalDeclaration;
    if (d) return { height: d.input.height, width: d.input.width, channels: d.input.channels };
    const c = this.classifierManifest().config as { height: number; width: number; channels: number };
    return { height: c.height, width: c.width, channels: c.channels };
  }

  /** What calibration and evaluation attack: the classifier when it has gradients, else the surrogate. */
  attackModel(): AttackModel {
    const surrogate = this.modelSet?.surrogate;
    if (this.externalDeclaration) {
      const s = this.scoring();
      if (s.hasGradients && s.logits) return { logits: s.logits, kind: 'white-box', describe: "white-box on the classifier alone (purifier-oblivious: the purifier is not in the attack's gradient)" };
      if (!surrogate) throw new BundleError(`${this.dir}: the classifier ${s.source} has no gradients and the model set has no surrogate`);
    }
    if (surrogate && this.externalDeclaration) {
      const clf = this.entry<Classifier>(surrogate).model;
      return { logits: (x) => clf.logits(x), kind: 'transfer', describe: `transfer attack from a surrogate (${join(this.dir, surrogate)})` };
    }
    const clf = this.classifier();
    return { logits: (x) => clf.logits(x), kind: 'white-box', describe: "white-box on the classifier alone (purifier-oblivious: the purifier is not in the attack's gradient)" };
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

  /** The vqguard classifier bundle <dir>/classifier (model sets with an external classifier have none: use scoring()). */
  classifier(): Classifier {
    if (this.externalDeclaration) {
      throw new BundleError(`${this.dir} guards an external classifier (${this.externalDeclaration.format}:${this.externalDeclaration.path}); this command needs a vqguard classifier bundle`);
    }
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
    const clfVersion = this.externalDeclarationText !== null
      ? createHash('sha256').update(this.externalDeclarationText).digest('hex').slice(0, 12)
      : this.classifierManifest().weightsSha256.slice(0, 12);
    const out: Record<string, string> = { classifier: clfVersion };
    for (const name of pipelineBundles(spec)) out[name] = this.entry(name).manifest.weightsSha256.slice(0, 12);
    return out;
  }

  dispose(): void {
    for (const e of this.bundles.values()) e.model.dispose();
    this.bundles.clear();
    this.externalDispose?.();
    this.external = null;
    this.externalDispose = null;
  }
}

/** Canonical form of a dataset name for comparison: idx directories by absolute path. */
export function canonicalDataset(name: string): string {
  const m = /^idx:(.*?)(#[^#]*)?$/.exec(name.trim());
  if (m) return `idx:${resolve(m[1]!)}${m[2] ?? ''}`;
  const f = /^folder:([^?]*)(\?.*)?$/.exec(name.trim());
  return f ? `folder:${resolve(f[1]!)}${f[2] ?? ''}` : name.trim();
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
  const c = reg.inputShape();
  const { height, width, channels } = data.test;
  if (c.height !== height || c.width !== width || c.channels !== channels) {
    throw new BundleError(`${reg.dir}: the classifier takes ${c.height}x${c.width}x${c.channels} images, dataset ${data.name} has ${height}x${width}x${channels}`);
  }
  const trainedOn = reg.modelSet?.dataset ?? reg.classifierManifest().dataset.name;
  if (!allowMismatch && canonicalDataset(trainedOn) !== canonicalDataset(data.name)) {
    throw new BundleError(
      `${reg.dir} was trained on '${trainedOn}' but --dataset is '${data.name}': pass --models <the set trained on it>` +
        ' (or --allow-dataset-mismatch to evaluate these models on other images on purpose)',
    );
  }
}
