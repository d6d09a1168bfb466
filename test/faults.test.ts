// Crash faults at CI size: test/faults/kill.ts runs the real guard CLI over a stream of labelled
// records and SIGKILLs it K times at random points, restarting it each time; nothing may be lost
// (at-least-once) and nothing duplicated either (transactions, read_committed). Every 50th record is
// a 600 kB garbage value that must end as a truncated dead letter (a 256 KiB dead-letter topic).
// `make test-faults` runs the same driver at a larger N and K.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { getTestBroker, type TestBroker } from './helpers/broker.ts';
import { REPO } from './helpers/guard.ts';

const N = Number(process.env.FAULT_N ?? 300);
const K = Number(process.env.FAULT_K ?? 3);

interface DriverResult {
  code: number | string;
  out: string;
  summary: Record<string, number>;
}

function runDriver(mode: 'atleastonce' | 'transactions', brokers: string[], timeoutMs: number): Promise<DriverResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', 'test/faults/kill.ts'], {
      cwd: REPO,
      env: { ...process.env, KAFKA_BROKERS: brokers.join(','), FAULT_N: String(N), FAULT_K: String(K), FAULT_MODE: mode, FAULT_OVERSIZE: process.env.FAULT_OVERSIZE ?? '50' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`fault driver (${mode}) still running after ${timeoutMs} ms:\n${out.slice(-4000)}`));
    }, timeoutMs);
    p.once('exit', (code, sig) => {
      clearTimeout(timer);
      const lines = out.trim().split('\n');
      const last = lines[lines.length - 1] ?? '';
      const summary: Record<string, number> = {};
      for (const m of last.matchAll(/(\w+)=(\d+)/g)) summary[m[1]!] = Number(m[2]);
      resolve({ code: code ?? sig ?? -1, out, summary });
    });
  });
}

describe(`crash faults: ${K} SIGKILLs over ${N} records`, { timeout: 400_000 }, () => {
  let broker: TestBroker;
  before(async () => {
    broker = await getTestBroker();
  });
  after(async () => {
    await broker?.stop();
  });

  for (const mode of ['atleastonce', 'transactions'] as const) {
    test(`${mode}: every input offset answered${mode === 'transactions' ? ' exactly once' : ' at least once'}`, { timeout: 190_000 }, async (t) => {
      const r = await runDriver(mode, broker.brokers, 180_000);
      const progress = r.out.split('\n').filter((l) => l.startsWith('[faults') || l.startsWith('inputs='));
      for (const l of progress) t.diagnostic(l);
      const s = r.summary;
      assert.ok('lost' in s && 'duplicates' in s, `the driver printed its summary line:\n${r.out.slice(-4000)}`);
      assert.equal(s.inputs, N, 'all inputs produced');
      assert.equal(s.lost, 0, 'nothing lost');
      assert.equal(s.outputs! + s.deadLetters!, N + s.duplicates!, 'answers = inputs + duplicates');
      assert.ok(s.deadLetters! > 0, 'the malformed records were dead-lettered');
      if (mode === 'transactions') assert.equal(s.duplicates, 0, 'no duplicates with transactions (read_committed)');
      assert.match(progress.join('\n'), new RegExp(`kill ${K}/${K}: SIGKILL`), `all ${K} kills happened`);
      assert.equal(r.code, 0, `driver exit code:\n${r.out.slice(-4000)}`);
    });
  }
});
