/**
 * Image decode and encode off the main thread: a pool of worker threads (piscina) running
 * src/consumer/imageWorker.ts, which uses the same functions as the main thread
 * (src/image/decode.ts), so a record decodes to the same pixels, fails with the same reason and
 * encodes to the same bytes wherever it runs.
 *
 * A micro-batch is cut into contiguous slices, one task per slice (at most one per thread, so a
 * 28x28 PNG's ~0.03 ms is not swamped by a message per record); each slice travels as one
 * transferred ArrayBuffer and comes back as one; results are returned in the input's order.
 *
 * A task that fails (the worker crashed or was ended, or the task ran past its time limit, after
 * which piscina ends the worker) never stalls the batch: the pool is recreated, the slice is
 * retried record by record, and a record whose own task fails again comes back as `crashed`
 * (processChunk dead-letters it). A slice that fails only because the pool was recreated under
 * it (another slice's crash) is retried as a whole, without counting against its records.
 */
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { DecodeImageResult, ImagePolicy } from '../image/decode.ts';
import type { DecodeReply, DecodeTask, EncodeReply, EncodeSpec, EncodeTask, ImageTask } from './imageWorker.ts';

/** Config value: `auto` or a thread count (0 = decode and encode on the main thread). */
export type WorkersSetting = 'auto' | number;

/** `auto`: one thread per core but one (the main thread's) when there are at least 4 cores, else 0. */
export function resolveWorkers(setting: WorkersSetting, cores = availableParallelism()): number {
  if (setting === 'auto') return cores >= 4 ? cores - 1 : 0;
  return setting;
}

/** A record's result when its worker failed (not the record's own failure). */
export interface Crashed {
  ok: 'crashed';
  message: string;
}

/** A record whose decode or encode threw (the main thread would have caught the same). */
export interface Thrown {
  ok: 'thrown';
  message: string;
}

export type PoolDecodeResult = DecodeImageResult | Thrown | Crashed;
export type PoolEncodeResult = { ok: true; bytes: Buffer } | Thrown | Crashed;

export interface EncodeJob extends EncodeSpec {
  pixels: Float32Array;
}

export interface ImagePoolOptions {
  /** Worker threads (>= 1). */
  threads: number;
  /** Most records in one task (default 256). */
  maxRecordsPerTask?: number;
  /** Fewest records worth a task of their own when a batch is cut (default 8). */
  minRecordsPerTask?: number;
  /** Time limit of a task of `records` records (default 30 s + 2 s per record; 0: the task is aborted before it runs). */
  taskTimeoutMs?: (records: number, kind: 'decode' | 'encode') => number;
  /** Told about crashes and pool recreation. */
  onEvent?: (e: { event: 'crash' | 'recreate' | 'error'; message: string; generation: number }) => void;
}

/** The worker's file: imageWorker beside this module, with this module's extension (.ts under tsx, .js compiled, .mjs bundled). */
export function workerFile(): string {
  const here = fileURLToPath(import.meta.url);
  return fileURLToPath(new URL(`./imageWorker${extname(here)}`, import.meta.url));
}

/**
 * Node options for the workers: inherited (undefined), except when the worker is a .ts file and
 * the process registered tsx through its API (bin/vqguard.mjs), not its options: then tsx's
 * loader alone (explicit options may not name per-process ones such as --max-old-space-size).
 */
function workerExecArgv(file: string): string[] | undefined {
  if (!file.endsWith('.ts') || process.execArgv.some((a) => a.includes('tsx'))) return undefined;
  return ['--import', import.meta.resolve('tsx')];
}

/**
 * A call on a closed pool (or one closed while it ran) throws this rather than failing its
 * records: processChunk then fails as a whole, and the runner leaves the batch uncommitted
 * (redelivered) instead of dead-lettering records that were never at fault.
 */
export class ImagePoolClosedError extends Error {
  constructor() {
    super('the image pool is closed');
    this.name = 'ImagePoolClosedError';
  }
}

type Attempt<T> = { reply: T } | { crashed: string; innocent: boolean };

export class ImagePool {
  readonly threads: number;
  /** Tasks answered by a worker. */
  tasksDone = 0;
  /** Tasks that failed (crash, exit, time limit). */
  crashes = 0;
  /** Times the pool was recreated. */
  recreated = 0;
  private pool: Piscina;
  private generation = 0;
  private closed = false;
  private readonly file = workerFile();
  private readonly maxPer: number;
  private readonly minPer: number;
  private readonly timeout: (records: number, kind: 'decode' | 'encode') => number;

  constructor(private readonly o: ImagePoolOptions) {
    if (!Number.isInteger(o.threads) || o.threads < 1) throw new Error(`ImagePool: threads must be a positive integer, got ${o.threads}`);
    this.threads = o.threads;
    this.maxPer = o.maxRecordsPerTask ?? 256;
    this.minPer = o.minRecordsPerTask ?? 8;
    this.timeout = o.taskTimeoutMs ?? ((n) => 30_000 + 2_000 * n);
    this.pool = this.make();
  }

  private make(): Piscina {
    const gen = this.generation;
    const p = new Piscina({
      filename: this.file,
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: 0,
      atomics: 'async',
      execArgv: workerExecArgv(this.file),
    });
    // A worker that fails with no task on it: piscina emits 'error' (unhandled, it would end the
    // process) and replaces the worker itself. Not recreated here: a worker set-up that cannot
    // start would loop; tasks that fail recreate the pool (attempt), and start-up runs check().
    p.on('error', (e: unknown) => {
      this.o.onEvent?.({ event: 'error', message: String((e as Error)?.message ?? e), generation: gen });
    });
    return p;
  }

  private recreate(): void {
    const old = this.pool;
    this.generation++;
    this.recreated++;
    this.pool = this.make();
    this.o.onEvent?.({ event: 'recreate', message: `image pool recreated (generation ${this.generation})`, generation: this.generation });
    old.destroy().catch(() => {});
  }

  /** The pool's current worker threads (for diagnostics and the crash tests). */
  workerThreads(): Worker[] {
    return [...this.pool.threads];
  }

  /** Runs a trivial task on every thread: throws when the workers cannot start (e.g. the worker file is missing). */
  async check(): Promise<void> {
    await Promise.all(Array.from({ length: this.threads }, () => this.pool.run({ kind: 'ping' } satisfies ImageTask, { signal: AbortSignal.timeout(60_000) })));
  }

  private async attempt<T>(build: () => { task: DecodeTask | EncodeTask; transfer: ArrayBuffer[] }, records: number): Promise<Attempt<T>> {
    if (this.closed) throw new ImagePoolClosedError();
    const gen = this.generation;
    const { task, transfer } = build();
    try {
      const ms = this.timeout(records, task.kind);
      const signal = ms > 0 ? AbortSignal.timeout(ms) : AbortSignal.abort(new Error('the time limit is 0 ms'));
      const reply = (await this.pool.run(task, { transferList: transfer, signal })) as T;
      this.tasksDone++;
      return { reply };
    } catch (e) {
      // Closed meanwhile (the guard stopping): not the records' fault; the caller's batch fails as a whole.
      if (this.closed) throw new ImagePoolClosedError();
      const message = String((e as Error)?.message ?? e);
      const innocent = gen !== this.generation;
      if (!innocent) {
        this.crashes++;
        this.o.onEvent?.({ event: 'crash', message, generation: gen });
        if (!this.closed) this.recreate();
      }
      return { crashed: message, innocent };
    }
  }

  /** Runs one slice; on a worker failure retries it whole (if the failure was another slice's) or record by record. */
  private async slice<I, R, T>(items: I[], build: (items: I[]) => { task: DecodeTask | EncodeTask; transfer: ArrayBuffer[] }, unpack: (reply: T, items: I[]) => R[], crashed: (message: string) => R): Promise<R[]> {
    let r = await this.attempt<T>(() => build(items), items.length);
    // Each innocent failure is another task's crash, and a record crashes at most twice (in its slice,
    // then alone) before it is given up: this ends; the bound is a second safety.
    for (let i = 0; i < 32 && 'crashed' in r && r.innocent; i++) r = await this.attempt<T>(() => build(items), items.length);
    if ('reply' in r) return unpack(r.reply, items);
    if (items.length === 1) return [crashed(r.crashed)];
    const singles = await Promise.all(items.map((one) => this.slice([one], build, unpack, crashed)));
    return singles.flat();
  }

  /** Contiguous slices: one per thread, at least minRecordsPerTask and at most maxRecordsPerTask records each. */
  private cut<I>(items: I[]): I[][] {
    const n = items.length;
    if (n === 0) return [];
    const parts = Math.max(Math.min(this.threads, Math.ceil(n / this.minPer)), Math.ceil(n / this.maxPer), 1);
    const per = Math.ceil(n / parts);
    const out: I[][] = [];
    for (let i = 0; i < n; i += per) out.push(items.slice(i, i + per));
    return out;
  }

  /** Decodes images under `policy`; results in the input's order. */
  async decode(images: Uint8Array[], policy: Partial<ImagePolicy>): Promise<PoolDecodeResult[]> {
    const build = (imgs: Uint8Array[]) => {
      const ends: number[] = [];
      let total = 0;
      for (const b of imgs) ends.push((total += b.length));
      const input = new Uint8Array(total);
      let o = 0;
      for (const b of imgs) {
        input.set(b, o);
        o += b.length;
      }
      const task: DecodeTask = { kind: 'decode', input: input.buffer, ends, policy };
      return { task, transfer: [input.buffer] };
    };
    const unpack = (reply: DecodeReply): PoolDecodeResult[] => {
      const all = new Float32Array(reply.pixels);
      let o = 0;
      return reply.items.map((it) => {
        if (it.ok !== true) return it;
        const { length, ...rest } = it;
        const pixels = all.subarray(o, o + length);
        o += length;
        return { ...rest, pixels };
      });
    };
    const parts = await Promise.all(this.cut(images).map((s) => this.slice(s, build, unpack, (message): Crashed => ({ ok: 'crashed', message }))));
    return parts.flat();
  }

  /** Encodes images; results in the input's order. */
  async encode(jobs: EncodeJob[]): Promise<PoolEncodeResult[]> {
    const build = (js: EncodeJob[]) => {
      const pixels = new Float32Array(js.reduce((n, j) => n + j.pixels.length, 0));
      let o = 0;
      for (const j of js) {
        pixels.set(j.pixels, o);
        o += j.pixels.length;
      }
      const task: EncodeTask = { kind: 'encode', pixels: pixels.buffer, items: js.map(({ width, height, channels, format, pixels: px }) => ({ width, height, channels, format, length: px.length })) };
      return { task, transfer: [pixels.buffer] };
    };
    const unpack = (reply: EncodeReply): PoolEncodeResult[] => {
      let o = 0;
      return reply.items.map((it) => {
        if (it.ok !== true) return it;
        const bytes = Buffer.from(reply.bytes, o, it.length);
        o += it.length;
        return { ok: true, bytes };
      });
    };
    const parts = await Promise.all(this.cut(jobs).map((s) => this.slice(s, build, unpack, (message): Crashed => ({ ok: 'crashed', message }))));
    return parts.flat();
  }

  /** Ends the workers (tasks still running are failed). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.destroy();
  }
}
