/** `vqguard bench backend`: native vs pure-JS throughput. */
import type { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { benchBackend } from '../bench/backend.ts';
import { backendInfo, tfVersion } from '../backend/tf.ts';
import { formatTable } from './table.ts';
import { machineDescription } from '../bench/machine.ts';

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('benchmarks (tables on stdout, JSON under reports/bench/)');
  bench
    .command('backend')
    .description('conv2d training-step and matMul GFLOP/s, native vs pure-JS backend')
    .option('--json', 'print the JSON result')
    .option('--out <file>', 'JSON output file', 'reports/bench/backend.json')
    .option('--no-js', 'skip the pure-JS backend')
    .action(async (o: { json?: boolean; out: string; js: boolean }) => {
      const backends = ['tensorflow', ...(o.js ? ['cpu'] : [])];
      if (!backendInfo.native) throw new Error('the native backend is not loaded; run make install');
      const rows = await benchBackend(backends);
      const ratio = (op: string) => {
        const n = rows.find((r) => r.op === op && r.backend === 'tensorflow');
        const j = rows.find((r) => r.op === op && r.backend === 'cpu');
        return n && j ? n.gflops / j.gflops : null;
      };
      const result = {
        command: `vqguard bench backend${o.js ? '' : ' --no-js'}`,
        machine: machineDescription(),
        tfVersion: tfVersion(),
        rows,
        nativeOverJs: { conv2dTrainStep: ratio('conv2d train step'), matMul: ratio('matMul') },
        date: new Date().toISOString(),
      };
      mkdirSync(dirname(o.out), { recursive: true });
      writeFileSync(o.out, JSON.stringify(result, null, 2) + '\n');
      if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
      else {
        process.stdout.write(
          formatTable(['op', 'shape', 'backend', 'GFLOP/call', 'median ms', 'GFLOP/s'], rows.map((r) => [r.op, r.shape, r.backend, r.gflopPerCall, r.medianMs, r.gflops])) + '\n',
        );
        process.stdout.write(`native / pure-JS: conv2d step ${result.nativeOverJs.conv2dTrainStep?.toFixed(1)}x, matMul ${result.nativeOverJs.matMul?.toFixed(1)}x\nwritten to ${o.out}\n`);
      }
    });
}
