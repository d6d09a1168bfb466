/** `vqguard demo`: the main job on the embedded default (see src/demo/demo.ts). */
import type { Command } from 'commander';
import { runDemo } from '../demo/demo.ts';
import type { AttackName } from '../attacks/attacks.ts';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .option('--config <file>', 'guard configuration', 'examples/guard.yaml')
    .option('--count <n>', 'records', '2000')
    .option('--adversarial-ratio <x>', 'share attacked', '0.5')
    .option('--attack <name>', 'fgsm | pgd', 'fgsm')
    .option('--eps <x>', 'attack epsilon', '0.1')
    .option('--partitions <n>', 'input topic partitions', '4')
    .option('--out <dir>', 'summary folder', 'demo-output')
    .option('--timeout <x>', 'give up after this many seconds', '600')
    .action(async (o: Record<string, string>) => {
      await runDemo({
        config: o.config!, count: Number(o.count), adversarialRatio: Number(o.adversarialRatio), attack: o.attack as AttackName,
        eps: Number(o.eps), partitions: Number(o.partitions), outDir: o.out!, timeoutMs: Number(o.timeout) * 1000,
      });
      process.exit(0);
    });
}
