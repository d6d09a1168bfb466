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

/** The stage for a purifier trained on k x k tiles (also used directly by the codebook sweep). */
export function vqStage(tf: TF, k: number, model: VqVae): Stage {
  if (model.config.split !== k) {
    throw new Error(`stage split${k} needs a purifier trained for split ${k}, got one for split ${model.config.split}`);
  }
  return {
    name: k === 1 ? 'full' : `split${k}`,
    grid: k,
    // The codebook lookup passes dy straight through (VqVae.quantize); the rest is exact.
    bpda: 'straight-through',
    apply: (x: Tensor4D) =>
      tf.tidy(() => {
        const [, h, w] = x.shape;
        return stitchTiles(tf, model.forward(splitTiles(tf, x, k)).recon, k, h, w);
      }),
    flopsPerImage: (h, w) => k * k * model.flopsPerImage(Math.ceil(h / k), Math.ceil(w / k)),
  };
}
