/**
 * The stage registry: every pipeline stage kind the guard knows, in one place. A pipeline spec
 * is an optional variant prefix (`adv:` / `clean:`) and stage names joined by `>`:
 * `split2>full`, `adv:full`, `bits1`, `median2`, `defensegan-L100-R5`, `full-T0.03` (stochastic).
 *
 * Where does a new stage go? One module in this folder exporting a StageKind (name pattern,
 * option schema, bundles, constructor), listed in STAGE_KINDS below, plus its test. Config
 * validation, the bundle check, the model registry, the detector and the CLI all ask this
 * registry; nothing here loads TensorFlow or sharp.
 */
import type { z } from 'zod';
import { bitsStage, medianStage } from './squeeze.ts';
import { defenseGanStage } from './defensegan.ts';
import type { Stage, StageContext, StageKind, Variant } from './types.ts';
import { vqvaeSampledStage, vqvaeStage } from './vqvae.ts';

export type { Stage, StageContext, StageKind, TF, Variant } from './types.ts';
export { purifierDirName } from './types.ts';

const STAGE_KINDS: StageKind<any>[] = [vqvaeStage, vqvaeSampledStage, bitsStage, medianStage, defenseGanStage];

/** Adds a stage kind (for a plug-in or a test fixture). Its pattern must not overlap another's. */
export function registerStage<O>(kind: StageKind<O>): () => void {
  if (STAGE_KINDS.some((k) => k.kind === kind.kind)) throw new Error(`stage kind "${kind.kind}" is already registered`);
  STAGE_KINDS.push(kind as StageKind<any>);
  return () => {
    const i = STAGE_KINDS.indexOf(kind as StageKind<any>);
    if (i >= 0) STAGE_KINDS.splice(i, 1);
  };
}

export function stageKinds(): readonly StageKind<any>[] {
  return STAGE_KINDS;
}

/** One-line summary of the stage grammar, for errors and --help. */
export function stageSyntax(): string {
  return STAGE_KINDS.map((k) => k.syntax).join(', ');
}

export interface ParsedStage {
  name: string;
  kind: StageKind<any>;
  options: unknown;
}

export interface ParsedPipeline {
  spec: string;
  variant: Variant;
  stages: ParsedStage[];
}

export function parseStage(s: string): ParsedStage {
  const name = s.trim();
  for (const kind of STAGE_KINDS) {
    const m = kind.pattern.exec(name);
    if (!m) continue;
    const raw = Object.fromEntries(Object.entries(m.groups ?? {}).filter(([, v]) => v !== undefined));
    const r = (kind.options as z.ZodTypeAny).safeParse(raw);
    if (!r.success) {
      const why = r.error.issues.map((i) => `${i.path.join('.') || 'options'} ${i.message.toLowerCase()}`).join('; ');
      throw new Error(`pipeline stage "${name}": ${why} (expected ${kind.syntax})`);
    }
    return { name, kind, options: r.data };
  }
  throw new Error(`unknown pipeline stage "${name}": expected ${stageSyntax()}`);
}

/** Splits off the variant prefix: `adv:split2>full` -> adv, `split2>full`. */
export function splitVariant(spec: string): { variant: Variant; stages: string } {
  const m = /^(clean|adv):(.*)$/.exec(spec.trim());
  return m ? { variant: m[1] as Variant, stages: m[2]! } : { variant: 'clean', stages: spec.trim() };
}

/** Parses and validates a whole pipeline spec; throws an Error naming the bad stage. */
export function parsePipeline(spec: string): ParsedPipeline {
  const { variant, stages } = splitVariant(spec);
  const parts = stages.split('>');
  if (parts.some((p) => p.trim() === '')) throw new Error(`empty stage in pipeline "${spec.trim()}"`);
  return { spec: spec.trim(), variant, stages: parts.map(parseStage) };
}

/** Bundle folders (under the model set, besides the classifier) a pipeline needs, in order, no repeats. */
export function pipelineBundles(spec: string | ParsedPipeline): string[] {
  const p = typeof spec === 'string' ? parsePipeline(spec) : spec;
  return [...new Set(p.stages.flatMap((s) => s.kind.bundles(s.options, p.variant)))];
}

export function buildStage(s: ParsedStage, ctx: StageContext): Stage {
  return s.kind.create(s.name, s.options, ctx);
}
