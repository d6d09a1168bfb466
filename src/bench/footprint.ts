/**
 * The sidecar's footprint: `vqguard run` is started as a child process against a real broker
 * (KAFKA_BROKERS, else the local dev broker), timed from spawn to the first 200 on /readyz, then
 * left idle and its resident memory read from /proc: VmRSS, and RSS by mapping (libtensorflow,
 * sharp/libvips, the node binary, other shared objects, anonymous memory: JS heap, TF allocations,
 * kafkajs buffers), plus the JS heap from the guard's own /metrics.
 * Linux only (/proc).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';

export interface FootprintOptions {
  brokers: string[];
  /** Launcher to measure (default this checkout's bin/vqguard.mjs); its folder's parent is the cwd. */
  bin: string;
  /** `source` forces TypeScript through tsx (VQGUARD_FROM_SOURCE=1); `default` lets the launcher choose. */
  mode: 'default' | 'source';
  pipeline: string;
  idleSeconds: number;
  port: number;
}

export interface FootprintRun {
  /** The measured checkout: its commit (and `+changes` when its tree differs from it). */
  checkout: string;
  mode: string;
  pipeline: string;
  startToReadyMs: number;
  idleRssMiB: number;
  /** From smaps_rollup: clean file pages (mostly libtensorflow's code, shared and reclaimable) vs private dirty memory. */
  cleanFileMiB: number;
  privateDirtyMiB: number;
  /** RSS by what is mapped, MiB, largest first. */
  breakdownMiB: Record<string, number>;
  jsHeapUsedMiB: number | null;
  jsHeapTotalMiB: number | null;
  externalMiB: number | null;
}

const MiB = 2 ** 20;

/** RSS (kB in smaps) grouped by mapping: named libraries, anonymous and heap. */
export function rssByMapping(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let key = 'anonymous';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+\s+\S+\s+\S+\s+\S+\s+\d+\s*(.*)$/.exec(line);
    if (head) {
      const path = head[1]!.trim();
      const name = basename(path);
      key = path === '' || path === '[heap]' || path.startsWith('[anon') ? 'anonymous (JS heap, TF tensors, buffers)'
        : /libtensorflow/.test(name) ? 'libtensorflow'
        : /sharp|vips/.test(path) ? 'sharp / libvips'
        : /tfjs_binding|tfjs-node/.test(path) ? 'tfjs-node binding'
        : name === 'node' || /bin\/node$/.test(path) ? 'node binary'
        : path.startsWith('[') ? 'other (stack, vdso)'
        : /\.so(\.|$)/.test(name) || name.endsWith('.node') ? 'other shared libraries'
        : 'other files';
      continue;
    }
    const m = /^Rss:\s+(\d+) kB/.exec(line);
    if (m) out[key] = (out[key] ?? 0) + Number(m[1]) / 1024;
  }
  return Object.fromEntries(Object.entries(out).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, Math.round(v * 10) / 10]));
}

function rollup(pid: number): { cleanFileMiB: number; privateDirtyMiB: number } {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  const r = (v: number) => Math.round((v / 1024) * 10) / 10;
  return { cleanFileMiB: r(kb('Shared_Clean') + kb('Private_Clean')), privateDirtyMiB: r(kb('Private_Dirty')) };
}

function vmRssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function metric(text: string, name: string): number | null {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) / MiB : null;
}

async function topics(brokers: string[], names: string[]): Promise<void> {
  const admin = new Kafka({ brokers, clientId: 'vqguard-bench-footprint', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: names.map((topic) => ({ topic, numPartitions: 1 })), waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

function checkoutOf(dir: string): string {
  const git = (...a: string[]) => spawnSync('git', ['-C', dir, ...a], { encoding: 'utf8' });
  const head = git('rev-parse', '--short', 'HEAD').stdout.trim();
  if (!head) return 'unknown';
  return git('status', '--porcelain', '--untracked-files=no').stdout.trim() ? `${head}+changes` : head;
}

export async function measureFootprint(o: FootprintOptions): Promise<FootprintRun> {
  const id = `footprint-${process.pid}-${Date.now().toString(36)}`;
  const t = { input: `${id}.in`, output: `${id}.out`, deadLetter: `${id}.dlq`, alerts: `${id}.alerts` };
  await topics(o.brokers, Object.values(t));
  const dir = mkdtempSync(join(tmpdir(), 'vqguard-footprint-'));
  const config = join(dir, 'guard.yaml');
  const cwd = resolve(o.bin, '..', '..');
  writeFileSync(config, JSON.stringify({
    kafka: { brokers: o.brokers, clientId: 'vqguard-footprint', groupId: id },
    http: { port: o.port, host: '127.0.0.1' },
    models: join(cwd, 'models', 'mnist'),
    alerts: { topic: t.alerts },
    topics: [{ input: t.input, output: t.output, deadLetter: t.deadLetter, alerts: t.alerts, pipeline: o.pipeline }],
  }));
  const env = { ...process.env, ...(o.mode === 'source' ? { VQGUARD_FROM_SOURCE: '1' } : {}) };
  const t0 = performance.now();
  const child = spawn(process.execPath, [o.bin, 'run', '--config', config], { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => void (stderr = (stderr + b.toString()).slice(-4000)));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let done = false;
  void exited.then(() => (done = true));
  try {
    const url = `http://127.0.0.1:${o.port}`;
    let readyMs = NaN;
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && !done) {
      const ok = await fetch(`${url}/readyz`).then((r) => r.status === 200, () => false);
      if (ok) {
        readyMs = performance.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    if (!Number.isFinite(readyMs)) throw new Error(`vqguard run did not become ready (exited: ${done}):\n${stderr}`);
    await new Promise((r) => setTimeout(r, o.idleSeconds * 1000));
    const rss = vmRssMiB(child.pid!);
    const breakdownMiB = rssByMapping(child.pid!);
    const { cleanFileMiB, privateDirtyMiB } = rollup(child.pid!);
    const text = await fetch(`${url}/metrics`).then((r) => r.text(), () => '');
    return {
      checkout: checkoutOf(cwd), mode: o.mode, pipeline: o.pipeline, startToReadyMs: Math.round(readyMs), idleRssMiB: Math.round(rss * 10) / 10, cleanFileMiB, privateDirtyMiB, breakdownMiB,
      jsHeapUsedMiB: metric(text, 'vqguard_process_nodejs_heap_size_used_bytes'),
      jsHeapTotalMiB: metric(text, 'vqguard_process_nodejs_heap_size_total_bytes'),
      externalMiB: metric(text, 'vqguard_process_nodejs_external_memory_bytes'),
    };
  } finally {
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(killer);
    rmSync(dir, { recursive: true, force: true });
  }
}
