/**
 * `vqguard config check <file>`: validates a guard configuration and the model bundles it names
 * (their manifests, not the weights), without loading TensorFlow or sharp or connecting to
 * anything. Exit 0 when it is good, 78 (EX_CONFIG) with every problem listed when it is not.
 */
import type { Command } from 'commander';
import { checkModelBundles, ConfigError, loadConfig } from '../config/load.ts';

export function registerConfig(program: Command): void {
  const config = program.command('config');
  config
    .command('check <file>')
    .description('validate a configuration file and check the model bundles it needs (no broker, no models loaded)')
    .option('--base-dir <dir>', 'folder relative paths (models, calibration) are resolved against', process.cwd())
    .option('--no-bundles', 'skip the model bundle check')
    .action((file: string, o: { baseDir: string; bundles: boolean }) => {
      let c;
      try {
        c = loadConfig(file);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        process.stderr.write(`${e.message}\n`);
        process.exit(78);
      }
      if (o.bundles) {
        const check = checkModelBundles(c, o.baseDir);
        if (!check.ok) {
          process.stderr.write(`${file}: model bundles missing or invalid:\n  - ${check.problems.join('\n  - ')}\n`);
          process.exit(78);
        }
      }
      const pipelines = [...new Set(c.topics.flatMap((t) => t.pipelines))];
      process.stdout.write(`${file}: ok (${c.topics.length} topic${c.topics.length === 1 ? '' : 's'}; pipelines ${pipelines.join(', ')})\n`);
    });
}
