/**
 * Defense-GAN-style baseline: `defensegan` (L = 200 gradient steps, R = 10 restarts) or
 * `defensegan-L<steps>-R<restarts>`: project the input onto the range of a trained generator.
 * Needs <models>/generator.
 */
import { z } from 'zod';
import type { Generator } from '../../baselines/generator.ts';
import type { StageKind } from './types.ts';
import { identityBackward } from './bpda.ts';

export const defenseGanStage: StageKind<{ steps: number; restarts: number }> = {
  kind: 'defensegan',
  syntax: 'defensegan, defensegan-L<steps>-R<restarts>',
  description: 'Defense-GAN-style projection onto a trained generator (baseline)',
  pattern: /^defensegan(?:-L(?<steps>\d+)-R(?<restarts>\d+))?$/,
  options: z.object({
    steps: z.coerce.number().int().min(1).max(100_000).default(200),
    restarts: z.coerce.number().int().min(1).max(1000).default(10),
  }),
  bundles: () => ['generator'],
  bpda: 'identity',
  examples: ['defensegan-L2-R1'],
  create: (name, { steps, restarts }, ctx) => {
    const g = ctx.bundle<Generator>('generator');
    // Dense, convT 7->14 (64->32), convT 14->28 (32->C); forward + backward per step.
    const perStep = 2 * 3 * (g.config.latent * 49 * 64 + 49 * 16 * 32 * 64 + 196 * 16 * g.config.channels * 32);
    // BPDA: the projection is an inner optimisation; its backward is the identity.
    return { name, bpda: 'identity', apply: identityBackward(ctx.tf, (x) => g.purify(x, steps, restarts)), flopsPerImage: () => steps * restarts * perStep };
  },
};
