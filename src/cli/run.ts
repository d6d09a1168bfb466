/** `vqguard run --config guard.yaml`: the streaming guard. */
import type { Command } from 'commander';
import { loadConfig, checkModelBundles, ConfigError } from '../config/load.ts';
import { parseBrokerList } from '../config/schema.ts';
import { Guard, createLogger } from '../consumer/guard.ts';

export function registerRun(program: Command): void {
  program
    .command('run')
    .requiredOption('--config <file>', 'guard configuration (YAML or JSON)')
    .option('--brokers <list>', 'override kafka.brokers')
    .option('--http-port <n>', 'override http.port (0 = any free port)')
    .action(async (o: { config: string; brokers?: string; httpPort?: string }) => {
      const log = createLogger();
      const config = loadConfig(o.config);
      if (o.brokers) config.kafka.brokers = parseBrokerList(o.brokers);
      const baseDir = process.cwd();
      const check = checkModelBundles(config, baseDir);
      if (!check.ok) throw new ConfigError(check.problems.map((p) => `model bundles: ${p}`), o.config);
      const guard = new Guard(config, { baseDir, logger: log, httpPort: o.httpPort !== undefined ? Number(o.httpPort) : undefined });
      let stopping = false;
      const shutdown = (sig: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal: sig }, 'shutting down: finishing in-flight batches');
        const timer = setTimeout(() => {
          log.error('shutdown timed out; exiting');
          process.exit(1);
        }, config.shutdownTimeoutMs);
        timer.unref();
        guard.stop().then(
          () => process.exit(0),
          (e: Error) => {
            log.error({ error: e.message }, 'error during shutdown');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
      process.on('unhandledRejection', (e) => log.error({ error: String(e) }, 'unhandled rejection'));
      await guard.start();
    });
}
