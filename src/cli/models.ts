/** `vqguard models convert --dtype float16 <bundle dirs...>`: store a bundle's weights as float16. */
import type { Command } from 'commander';
import { convertBundleToFloat16 } from '../models/bundle.ts';
import { commandLine } from './options.ts';

export function registerModels(program: Command): void {
  const models = program.command('models').description('model bundle maintenance');
  models
    .command('convert')
    .description('rewrite bundles\' weights.bin as float16 in place (verifies sha256 first; records the command in model.json)')
    .requiredOption('--dtype <dtype>', 'storage type: float16')
    .argument('<dirs...>', 'bundle folders (each holds model.json and weights.bin)')
    .action((dirs: string[], o: { dtype: string }) => {
      if (o.dtype !== 'float16') throw new Error(`--dtype: only float16 is supported, got "${o.dtype}"`);
      const cmd = commandLine();
      for (const d of dirs) {
        const r = convertBundleToFloat16(d, cmd);
        process.stdout.write(r ? `${d}: ${r.bytesBefore} -> ${r.bytesAfter} bytes, max |error| ${r.maxAbsError.toExponential(2)}\n` : `${d}: already float16\n`);
      }
    });
}
