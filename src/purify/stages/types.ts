/**
 * What a pipeline stage kind declares (modelled on Benthos processors: one module registers a
 * name pattern, an option schema, the bundles it needs and a constructor). This file and every
 * declaration in this folder load neither TensorFlow nor sharp: the compute backend reaches a
 * stage only through `StageContext.tf` when the stage is built, so validating a configuration
 * stays cheap.
 */
import type { Tensor4D } from '@tensorflow/tfjs-node';
import type { z } from 'zod';

/** The TensorFlow.js namespace a stage computes with (passed in; never imported here). */
export type TF = typeof import('@tensorflow/tfjs-node');

/** `clean` (default) or `adv` (`adv:` prefix): which trained purifiers a pipeline uses. */
export type Variant = 'clean' | 'adv';

/**
 * How the gradient passes a stage under BPDA (Athalye et al. 2018). The forward value is always
 * the stage's exact output; only the backward pass differs:
 *   exact             the stage is differentiable as it stands (median2's sum - max - min);
 *   straight-through  rounding / quantisation passes dy unchanged (bits<n>, the VQ-VAE codebook);
 *   identity          the whole stage's backward is the identity (no better approximation:
 *                     sorting median, Defense-GAN's inner optimisation).
 * Every stage's `apply` carries its declared gradient, so tf.grad through any pipeline is
 * never zero or missing.
 */
export type BpdaMode = 'exact' | 'straight-through' | 'identity';

export interface Stage {
  name: string;
  /** Purification [N,H,W,C] -> same shape; differentiable with the gradient `bpda` declares. */
  apply(x: Tensor4D): Tensor4D;
  /** The backward pass `apply` carries (see BpdaMode). */
  bpda: BpdaMode;
  /** True when the output is random (an attack must then average gradients over samples: EOT). */
  random?: boolean;
  flopsPerImage(h: number, w: number): number;
  /** Tile grid this stage works on (k of split<k>), for the detector's worst-tile score. */
  grid?: number;
}

/** What a stage's constructor may use: the backend and the model set's bundles (loaded once). */
export interface StageContext {
  tf: TF;
  variant: Variant;
  /** Loads (or returns the cached) bundle folder `<models>/<dir>`; its sha256 is checked. */
  bundle<M>(dir: string): M;
}

export interface StageKind<O = unknown> {
  /** Short identifier of the kind, e.g. `vqvae`, `bits`. */
  kind: string;
  /** How names of this kind are written, for error messages and --help, e.g. `bits<n> (n = 1..8)`. */
  syntax: string;
  description: string;
  /** The name pattern: its named groups are the raw options (strings), checked by `options`. */
  pattern: RegExp;
  /** Option schema: turns the pattern's groups into typed options (or reports what is wrong). */
  options: z.ZodType<O, z.ZodTypeDef, unknown>;
  /** Bundle folders (under the model set) the stage needs with these options and variant. */
  bundles(o: O, variant: Variant): string[];
  /** How the gradient passes stages of this kind under BPDA (see BpdaMode). */
  bpda: BpdaMode;
  /** Names covering every code path of the kind (the BPDA gradient test builds each one). */
  examples: string[];
  /** The constructor. */
  create(name: string, o: O, ctx: StageContext): Stage;
}

/** Purifier bundle folder for a k x k split: purifier-split<k>[-adv]. */
export function purifierDirName(k: number, variant: Variant): string {
  return `purifier-split${k}${variant === 'adv' ? '-adv' : ''}`;
}
