/**
 * vqguard CLI: a thin layer over the modules. Commands are loaded lazily: only the module of
 * the command being run is imported, so `vqguard --help`, `vqguard config check` and
 * `vqguard run` load none of the research and lab code (vega, cli-progress, the dev broker),
 * and the first two load neither TensorFlow nor sharp. The one-line descriptions live here.
 */
import { Command } from 'commander';
import { packageVersion } from './version.ts';
import { checkNumericOptions } from './options.ts';

type Register = (program: Command) => void;

/** Commands that never compute: no backend is chosen for them (they must stay light). */
const NO_BACKEND = new Set(['config', 'dlq']);

/** The `backend` key of a --config file, if the command has one (the full check comes later). */
async function configBackend(file: unknown): Promise<string | undefined> {
  if (typeof file !== 'string') return undefined;
  try {
    const { readFileSync } = await import('node:fs');
    const { parse } = await import('yaml');
    const raw = parse(readFileSync(file, 'utf8')) as { backend?: unknown } | null;
    return typeof raw?.backend === 'string' ? raw.backend : undefined;
  } catch {
    return undefined; // the command reports an unreadable or invalid config itself
  }
}

/** Every top-level command: name (with its arguments), description, and how to load it. */
const COMMANDS: { name: string; description: string; load: () => Promise<Register> }[] = [
  { name: 'run', description: 'run the streaming guard (Kafka in, purification and detection, cleaned images out)', load: async () => (await import('./run.ts')).registerRun },
  { name: 'config', description: 'check a guard configuration without starting anything (`config check <file>`)', load: async () => (await import('./config.ts')).registerConfig },
  { name: 'doctor', description: 'report the compute backend, libtensorflow, versions and broker reachability', load: async () => (await import('./doctor.ts')).registerDoctor },
  { name: 'fit', description: 'guard your own classifier on your own images: purifiers, calibration, evaluation, a model set, guard.yaml and a report', load: async () => (await import('./fit.ts')).registerFit },
  { name: 'train', description: 'train the classifier or a purifier and write a model bundle', load: async () => (await import('./train.ts')).registerTrain },
  { name: 'eval', description: 'classifier accuracy under attack, undefended and after each pipeline', load: async () => (await import('./eval.ts')).registerEval },
  { name: 'bench [suite]', description: 'benchmarks: `bench` (ceiling, model, stream, baselines), `bench backend` (native vs pure-JS), `bench png` (sharp vs PNG fast path), `bench footprint` (idle RSS and start-to-ready of `vqguard run`), `bench model` (images/s on the chosen backend), `bench pipeline` (in-memory stream vs model-only, no broker)', load: async () => (await import('./bench.ts')).registerBench },
  { name: 'calibrate', description: 'set detection thresholds on held-out clean data for a target false-positive rate', load: async () => (await import('./detect.ts')).registerDetect },
  { name: 'detect-eval', description: 'ROC-AUC and TPR at calibrated FPRs for adversarial-input detection', load: async () => (await import('./detect.ts')).registerDetect },
  { name: 'worst-case', description: 'worst case over BPDA, BPDA-identity and PGD (N steps x R restarts, any-step success): accuracy, detection at 1% FPR, guard success', load: async () => (await import('./attack.ts')).registerAttack },
  { name: 'adaptive', description: 'detector-aware attack (C&W-style: classifier loss + lambda x detection score, BPDA): guard success vs lambda and epsilon', load: async () => (await import('./attack.ts')).registerAdaptive },
  { name: 'transfer', description: 'black-box transfer: FGSM/PGD crafted on a substitute classifier of another architecture; accuracy, detection, guard success', load: async () => (await import('./attack.ts')).registerTransfer },
  { name: 'sweep', description: 'codebook-size sweep (paper Tables 2/3): train one purifier per K, accuracy under FGSM; resumable', load: async () => (await import('./research.ts')).registerResearch },
  { name: 'examples', description: "one PNG grid: clean, adversarial, and each pipeline's restoration at a few epsilons (paper Fig. 1/2)", load: async () => (await import('./research.ts')).registerResearch },
  { name: 'produce-sample', description: 'produce labelled test images (part attacked) as Avro ImageRecords into a topic', load: async () => (await import('./sample.ts')).registerSample },
  { name: 'demo', description: 'local broker, sample traffic (half attacked), the guard, and a summary', load: async () => (await import('./demo.ts')).registerDemo },
  { name: 'models', description: 'model bundle tools (`models convert --dtype float16`: store weights as float16, sha256 re-recorded)', load: async () => (await import('./models.ts')).registerModels },
  { name: 'dlq', description: 'dead-letter tools (`dlq replay --topic <dlq> --to <input> [--reason R] [--from-offset N] [--limit N]`: send chosen dead letters back with their original key, value and headers)', load: async () => (await import('./dlq.ts')).registerDlq },
  { name: 'topics', description: 'topic tools (`topics create --config <file>`: create the input, output, dead-letter and alert topics a configuration needs that do not exist yet)', load: async () => (await import('./topics.ts')).registerTopics },
  { name: 'replay', description: 'replay a range of a topic through one or several pipelines (no consumer-group offsets touched) and write a report', load: async () => (await import('./replay.ts')).registerReplay },
];

const word = (name: string) => name.split(' ')[0]!;

/** Usage errors (unknown option, bad option value, missing argument) exit 2; help and version 0. */
function exitCodeOf(code: string, exitCode: number): number {
  if (code === 'commander.helpDisplayed' || code === 'commander.help' || code === 'commander.version') return 0;
  return code.startsWith('commander.') ? 2 : exitCode;
}

async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('vqguard')
    .description('Streaming guard for image ingestion: VQ-VAE purification and adversarial detection')
    .version(packageVersion())
    .exitOverride((err) => process.exit(exitCodeOf(err.code, err.exitCode)))
    .option('--backend <choice>', "compute backend: auto | cpu | cuda | webgpu (default: $VQGUARD_BACKEND, the config's backend, else auto)")
    .hook('preAction', (_root, action) => checkNumericOptions(action))
    // The backend is chosen once, explicitly, before a command that computes runs.
    .hook('preAction', async (root, action) => {
      let top = action;
      while (top.parent && top.parent !== root) top = top.parent;
      if (NO_BACKEND.has(top.name())) return;
      const { initBackend, resolveBackendChoice } = await import('../backend/tf.ts');
      await initBackend(resolveBackendChoice(root.opts().backend as string | undefined, await configBackend(action.opts().config)));
    });
  const args = argv.slice(2);
  // The command is the first word that is neither an option nor the value of --backend.
  const i = args.findIndex((a, k) => !a.startsWith('-') && !(k > 0 && args[k - 1] === '--backend'));
  const target = i < 0 ? undefined : args[i] === 'help' ? args[i + 1] : args[i];
  const chosen = COMMANDS.filter((c) => word(c.name) === target);
  if (chosen.length) {
    const registers = new Set(await Promise.all(chosen.map((c) => c.load())));
    for (const r of registers) r(program);
    for (const c of program.commands) {
      const d = COMMANDS.find((x) => word(x.name) === c.name());
      if (d) c.description(d.description);
    }
  } else {
    // Listing only (help, or an unknown command, which commander reports): nothing is loaded.
    for (const c of COMMANDS) program.command(c.name).description(c.description);
  }
  await program.parseAsync(argv);
}

/**
 * Exit codes (README "Exit codes"): 2 usage (commander), 78 configuration (EX_CONFIG: an invalid
 * config file, missing model bundles, missing topics), 3 consumer could not be recreated, 1 any
 * other runtime error. An error carrying a numeric `exitCode` (ConfigError, MissingTopicsError) sets it.
 */
export const EXIT_CONFIG = 78;

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`vqguard: ${err instanceof Error ? err.message : String(err)}\n`);
  const code = (err as { exitCode?: unknown } | null)?.exitCode;
  process.exit(typeof code === 'number' && Number.isInteger(code) && code > 0 ? code : err instanceof Error && err.name === 'ConfigError' ? EXIT_CONFIG : 1);
});
