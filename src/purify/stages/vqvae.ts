/**
 * VQ-VAE purification: `full` (= `split1`, the whole-image VQ-VAE) and `split<k>` (cut into a
 * k x k grid, purify every tile of the batch as one batch with the tile VQ-VAE trained for that
 * k, stitch back). Needs <models>/purifier-split<k> (or purifier-split<k>-adv with `adv:`).
 */
import type { Tensor4D } from '@tensorflow/tfjs-node';
import { z } from 'zod';
import { splitTiles, stitchTiles } from '../split.ts';
import type { VqVae } from '../vqvae.ts';
import { purifierDirName, type Stage, type StageKind, type TF } from './types.ts';

export const vqvaeStage: StageKind<{ k: number }> = {
  kind: 'vqvae',
  syntax: 'full, split<k> (k = 1..99)',
  description: 'VQ-VAE purifier on the whole image (full) or on each tile of a k x k grid (split<k>)',
  pattern: /^(?:full|split(?<k>\d+))$/,
  options: z.object({ k: z.coerce.number().int().min(1).max(99).default(1) }),
  bundles: ({ k }, variant) => [purifierDirName(k, variant)],
  bpda: 'straight-through',
  examples: ['full', 'split2'],
  create: (_name, { k }, ctx) => vqStage(ctx.tf, k, ctx.bundle<VqVae>(purifierDirName(k, ctx.variant))),
};

/**
 * Stochastic quantisation: `full-T<t>` / `split<k>-T<t>` draw every code with probability
 * proportional to exp(-||z - e||^2 / t) instead of taking the nearest (t in squared-distance
 * units of the codebook space; on the shipped whole-image purifier the median gap between the
 * nearest and second-nearest code is about 0.01). The output is random, so attacks average
 * gradients over samples (EOT); the backward is straight-through as for the nearest code.
 */
export const vqvaeSampledStage: StageKind<{ k: number; t: number }> = {
  kind: 'vqvae-sampled',
  syntax: 'full-T<t>, split<k>-T<t> (t > 0, e.g. full-T0.03)',
  description: 'VQ-VAE purifier with stochastic quantisation: codes sampled by distance at temperature t (random output)',
  pattern: /^(?:full|split(?<k>\d+))-T(?<t>\d+(?:\.\d+)?)$/,
  options: z.object({ k: z.coerce.number().int().min(1).max(99).default(1), t: z.coerce.number().positive().max(100) }),
  bundles: ({ k }, variant) => [purifierDirName(k, variant)],
  bpda: 'straight-through',
  examples: ['full-T0.03', 'split2-T0.01'],
  create: (name, { k, t }, ctx) => ({ ...vqStage(ctx.tf, k, ctx.bundle<VqVae>(purifierDirName(k, ctx.variant)), t), name }),
};

/** The stage for a purifier trained on k x k tiles (also used directly by the codebook sweep). */
export function vqStage(tf: TF, k: number, model: VqVae, temperature = 0): Stage {
  if (model.config.split !== k) {
    throw new Error(`stage split${k} needs a purifier trained for split ${k}, got one for split ${model.config.split}`);
  }
  return {
    name: k === 1 ? 'full' : `split${k}`,
    grid: k,
    // The codebook lookup passes dy straight through (VqVae.quantize); the rest is exact.
    bpda: 'straight-through',
    ...(temperature > 0 ? { random: true } : {}),
    apply: (x: Tensor4D) =>
      tf.tidy(() => {
        const [, h, w] = x.shape;
        return stitchTiles(tf, model.forward(splitTiles(tf, x, k), temperature).recon, k, h, w);
      }),
    flopsPerImage: (h, w) => k * k * model.flopsPerImage(Math.ceil(h / k), Math.ceil(w / k)),
  };
}
