/** `vqguard dlq replay --topic <dlq> --to <input>`: sends chosen dead letters back (src/replay/dlqReplay.ts). */
import type { Command } from 'commander';
import { brokersOption, jsonOption } from './options.ts';
import { requiredBrokers } from '../config/schema.ts';
import { dlqReplay } from '../replay/dlqReplay.ts';
import { parseList } from './eval.ts';

export function registerDlq(program: Command): void {
  const dlq = program.command('dlq');
  dlq
    .command('replay')
    .description('send dead letters (avro envelope or Kafka Connect format) back to a topic with their original key, value and headers')
    .requiredOption('--topic <t>', 'dead-letter topic to read')
    .requiredOption('--to <t>', 'topic to send the originals to (the guard input)')
    .addOption(brokersOption())
    .option('--reason <list>', 'only these reason codes (comma-separated, e.g. processing_error,poison)')
    .option('--from-offset <n>', 'first offset, every partition (default: the earliest)')
    .option('--limit <n>', 'send at most this many')
    .option('--dry-run', 'read and count, send nothing')
    .addOption(jsonOption())
    .action(async (o: { topic: string; to: string; brokers?: string; reason?: string; fromOffset?: string; limit?: string; dryRun?: boolean; json?: boolean }) => {
      const r = await dlqReplay({
        brokers: requiredBrokers(o.brokers),
        topic: o.topic,
        to: o.to,
        reasons: o.reason ? parseList(o.reason) : undefined,
        fromOffset: o.fromOffset !== undefined ? BigInt(o.fromOffset) : undefined,
        limit: o.limit !== undefined ? Number(o.limit) : undefined,
        dryRun: Boolean(o.dryRun),
      });
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else {
        const reasons = Object.entries(r.byReason).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
        const skipped = Object.entries(r.skipped).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
        process.stdout.write(
          `${r.topic} -> ${r.to}: read ${r.read} (avro ${r.formats.avro}, connect ${r.formats.connect}); ${r.dryRun ? 'would send' : 'sent'} ${r.sent} (${reasons}); skipped: ${skipped}\n`,
        );
      }
    });
}
