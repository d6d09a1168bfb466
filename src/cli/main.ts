/** vqguard CLI: a thin layer over the modules. */
import { Command } from 'commander';
import { registerDoctor } from './doctor.ts';
import { registerTrain } from './train.ts';
import { registerEval } from './eval.ts';
import { registerBench } from './bench.ts';
import { registerDetect } from './detect.ts';
import { registerResearch } from './research.ts';
import { registerSample } from './sample.ts';
import { registerRun } from './run.ts';
import { registerDemo } from './demo.ts';
import { registerReplay } from './replay.ts';
import { registerModels } from './models.ts';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { initBackend, resolveBackendChoice } from '../backend/tf.ts';

/** The `backend` key of a --config file, if the command has one (the full check comes later). */
function configBackend(file: unknown): string | undefined {
  if (typeof file !== 'string') return undefined;
  try {
    const raw = parseYaml(readFileSync(file, 'utf8')) as { backend?: unknown } | null;
    return typeof raw?.backend === 'string' ? raw.backend : undefined;
  } catch {
    return undefined; // the command reports an unreadable or invalid config itself
  }
}

const program = new Command();
program.name('vqguard').description('Streaming guard for image ingestion: VQ-VAE purification and adversarial detection').version('0.1.0');
program.option('--backend <choice>', 'compute backend: auto | cpu | cuda | webgpu (default: $VQGUARD_BACKEND, the config\'s backend, else auto)');
// The backend is chosen once, before any command runs.
program.hook('preAction', async (root, action) => {
  const choice = resolveBackendChoice(root.opts().backend as string | undefined, configBackend(action.opts().config));
  await initBackend(choice);
});
registerDoctor(program);
registerTrain(program);
registerEval(program);
registerBench(program);
registerDetect(program);
registerResearch(program);
registerSample(program);
registerRun(program);
registerDemo(program);
registerReplay(program);
registerModels(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`vqguard: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
