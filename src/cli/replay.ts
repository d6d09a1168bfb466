/**
 * `vqguard replay --topic T [--from-offset N | --from-time T] [--to-offset N | --to-time T]
 *   --pipeline P [--pipeline Q ...] --report DIR [--output-topic R]`
 * Reads a range of a topic without touching any consumer group's offsets, runs the pipelines
 * side by side, writes replay.json / replay.md / scores.png to DIR and prints a summary table.
 */
import type { Command } from 'commander';
import { commandLine, modelsOption, pipelineHelp } from './options.ts';
import cliProgress from 'cli-progress';
import { runReplay, type ReplayProgress } from '../replay/replay.ts';
import { writeReplayReport, summaryRows, SUMMARY_HEADERS } from '../replay/report.ts';
import type { RangeSpec } from '../replay/readRange.ts';
import { requiredBrokers } from '../config/schema.ts';
import { formatTable } from '../report/table.ts';

/** ISO-8601 time or milliseconds since the epoch -> ms. */
export function parseTimeArg(s: string, name = 'time'): number {
  const t = s.trim();
  const ms = /^\d+$/.test(t) ? Number(t) : Date.parse(t);
  if (!Number.isFinite(ms)) throw new Error(`--${name}: "${s}" is neither an ISO-8601 time nor milliseconds since the epoch`);
  return ms;
}

function parseOffsetArg(s: string, name: string): bigint {
  if (!/^\d+$/.test(s.trim())) throw new Error(`--${name}: expected a non-negative integer offset, got "${s}"`);
  return BigInt(s.trim());
}

export interface RangeArgs {
  fromOffset?: string;
  fromTime?: string;
  toOffset?: string;
  toTime?: string;
}

export function rangeFromArgs(o: RangeArgs): RangeSpec {
  if (o.fromOffset !== undefined && o.fromTime !== undefined) throw new Error('give at most one of --from-offset and --from-time');
  if (o.toOffset !== undefined && o.toTime !== undefined) throw new Error('give at most one of --to-offset and --to-time');
  const spec: RangeSpec = {};
  if (o.fromOffset !== undefined) spec.from = { offset: parseOffsetArg(o.fromOffset, 'from-offset') };
  if (o.fromTime !== undefined) spec.from = { time: parseTimeArg(o.fromTime, 'from-time') };
  if (o.toOffset !== undefined) spec.to = { offset: parseOffsetArg(o.toOffset, 'to-offset') };
  if (o.toTime !== undefined) spec.to = { time: parseTimeArg(o.toTime, 'to-time') };
  if (spec.from && spec.to && 'offset' in spec.from && 'offset' in spec.to && spec.to.offset < spec.from.offset) {
    throw new Error(`--to-offset ${spec.to.offset} is before --from-offset ${spec.from.offset}`);
  }
  if (spec.from && spec.to && 'time' in spec.from && 'time' in spec.to && spec.to.time < spec.from.time) {
    throw new Error('--to-time is before --from-time');
  }
  return spec;
}

/** A bar on a terminal; otherwise a line every few seconds (and at the end). */
function progressReporter(enabled: boolean): { update(p: ReplayProgress): void; stop(): void } {
  if (!enabled) return { update() {}, stop() {} };
  const rate = (p: ReplayProgress) => (p.seconds > 0 ? (p.done / p.seconds).toFixed(1) : '-');
  const flags = (p: ReplayProgress) => Object.entries(p.flagged).map(([k, v]) => `${k}:${v}`).join(' ');
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: 'replay [{bar}] {value}/{total} records | {rate} rec/s | flagged {flags}', stream: process.stderr, hideCursor: true, clearOnComplete: true },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(p) {
        if (!started) {
          bar.start(p.total, p.done, { rate: rate(p), flags: flags(p) });
          started = true;
        } else bar.update(p.done, { rate: rate(p), flags: flags(p) });
      },
      stop: () => bar.stop(),
    };
  }
  let last = -Infinity;
  let lastP: ReplayProgress | null = null;
  const line = (p: ReplayProgress) => {
    const pct = p.total ? ` (${Math.round((100 * p.done) / p.total)}%)` : '';
    process.stderr.write(`replay: ${p.done}/${p.total} records${pct}, ${rate(p)} records/s, flagged ${flags(p)}\n`);
  };
  return {
    update(p) {
      lastP = p;
      if (p.seconds - last >= 2 || p.done === p.total) {
        last = p.seconds;
        line(p);
      }
    },
    stop() {
      if (lastP && lastP.done !== lastP.total) line(lastP);
    },
  };
}

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .requiredOption('--topic <t>', 'input topic to read')
    .option('--brokers <list>', 'Kafka brokers (default $KAFKA_BROKERS)')
    .option('--from-offset <n>', 'first offset, every partition (default: the earliest)')
    .option('--from-time <t>', 'first record at or after this time (ISO-8601 or epoch ms)')
    .option('--to-offset <n>', 'last offset, inclusive, every partition (default: the latest at start)')
    .option('--to-time <t>', 'last records at or before this time (ISO-8601 or epoch ms)')
    .option('--pipeline <p>', pipelineHelp('pipeline to run (repeat for several, side by side)'), (v: string, prev: string[] = []) => [...prev, v], [] as string[])
    .requiredOption('--report <dir>', 'report folder (replay.json, replay.md, scores.png)')
    .option('--output-topic <t>', "republish the first pipeline's guarded records to this topic")
    .addOption(modelsOption())
    .option('--batch-size <n>', 'micro-batch size', '64')
    .option('--bins <n>', 'score histogram bins', '40')
    .option('--no-progress', 'no progress output on stderr')
    .option('--json', 'print the report as one JSON object instead of the table')
    .action(async (o: RangeArgs & { topic: string; brokers?: string; pipeline: string[]; report: string; outputTopic?: string; models: string; batchSize: string; bins: string; progress: boolean; json?: boolean }) => {
      const pipelines = o.pipeline.length ? o.pipeline : ['split2>full'];
      const range = rangeFromArgs(o);
      const batchSize = Number(o.batchSize);
      if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`--batch-size: expected a positive integer, got "${o.batchSize}"`);
      const bar = progressReporter(o.progress !== false);
      let report;
      try {
        report = await runReplay({
          brokers: requiredBrokers(o.brokers),
          topic: o.topic,
          range,
          pipelines,
          models: o.models,
          outputTopic: o.outputTopic,
          batchSize,
          bins: Number(o.bins),
          command: commandLine(),
          onProgress: (p) => bar.update(p),
        });
      } finally {
        bar.stop();
      }
      const files = await writeReplayReport(o.report, report);
      if (o.json) {
        process.stdout.write(JSON.stringify(report) + '\n');
      } else {
        process.stdout.write(`${report.topic}: ${report.records} records in ${report.seconds.toFixed(1)} s (${report.imagesPerSecond.toFixed(1)} records/s over ${pipelines.length} pipeline(s))\n`);
        process.stdout.write(formatTable(SUMMARY_HEADERS, summaryRows(report)) + '\n');
        if (report.output) process.stdout.write(`republished ${report.output.produced} guarded records (${report.output.pipeline}) to ${report.output.topic}\n`);
        process.stdout.write(`report: ${files.markdown}, ${files.json}, ${files.png}\n`);
      }
    });
}
