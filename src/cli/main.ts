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

const program = new Command();
program.name('vqguard').description('Streaming guard for image ingestion: VQ-VAE purification and adversarial detection').version('0.1.0');
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

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`vqguard: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
