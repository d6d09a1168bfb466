/**
 * A real Schema Registry for tests (never a mock), one per test file, like the broker helper:
 *
 *   let registry: TestRegistry;
 *   before(async () => { registry = await getTestRegistry(); });
 *   after(async () => { await registry.stop(); });
 *
 * Source: SCHEMA_REGISTRY_URL (an external Confluent-API registry; stop() is a no-op), else the
 * local Apicurio Registry (in-memory storage) built from Maven Central by scripts/registry.sh
 * (registry/app/pom.xml; built on first use, a few minutes cold) and started here on a free port.
 * `url` is the Confluent-compatible base (…/apis/ccompat/v7). Calls within one process share one
 * registry (reference counted): the last stop() stops it. freeze()/thaw() (SIGSTOP/SIGCONT) make
 * the local registry unresponsive and back, keeping its schemas (an outage without data loss).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../tools/localBroker.ts';

const REPO = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
export const REGISTRY_JAR = join(REPO, '.cache/registry/build/local-schema-registry-0-runner.jar');
/** In-memory H2 with a 30 s lock timeout (H2's 1 s default fails concurrent first registrations on a loaded machine). */
const H2_URL = 'jdbc:h2:mem:registry_db;LOCK_TIMEOUT=30000';

export interface TestRegistry {
  url: string;
  kind: 'env' | 'local';
  /** Local only: SIGSTOP / SIGCONT the registry process. */
  freeze(): void;
  thaw(): void;
  stop(): Promise<void>;
}

interface Shared {
  url: string;
  kind: 'env' | 'local';
  child?: ChildProcess;
  release(): Promise<void>;
}

let shared: Promise<Shared> | undefined;
let refs = 0;

export async function getTestRegistry(): Promise<TestRegistry> {
  refs++;
  shared ??= acquire();
  let s: Shared;
  try {
    s = await shared;
  } catch (e) {
    refs--;
    shared = undefined;
    throw e;
  }
  let stopped = false;
  const signal = (sig: NodeJS.Signals) => {
    if (!s.child?.pid) throw new Error('freeze/thaw need the local registry (SCHEMA_REGISTRY_URL is set)');
    process.kill(s.child.pid, sig);
  };
  return {
    url: s.url,
    kind: s.kind,
    freeze: () => signal('SIGSTOP'),
    thaw: () => signal('SIGCONT'),
    async stop() {
      if (stopped) return;
      stopped = true;
      if (--refs > 0) return;
      shared = undefined;
      await s.release();
    },
  };
}

async function acquire(): Promise<Shared> {
  const env = process.env.SCHEMA_REGISTRY_URL?.trim();
  if (env) return { url: env.replace(/\/+$/, ''), kind: 'env', release: async () => undefined };
  // Build once (idempotent; scripts/registry.sh holds a lock against parallel builds).
  execFileSync('bash', [join(REPO, 'scripts/registry.sh'), 'build'], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 15 * 60_000 });
  if (!existsSync(REGISTRY_JAR)) throw new Error(`no registry build at ${REGISTRY_JAR}`);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'vqguard-registry-'));
  const logFile = join(dir, 'registry.log');
  const out = openSync(logFile, 'a');
  const child = spawn(
    'java',
    ['-Xms64m', '-Xmx384m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-XX:+ExitOnOutOfMemoryError', '-Dquarkus.http.host=127.0.0.1', '-jar', REGISTRY_JAR],
    { env: { ...process.env, HTTP_PORT: String(port), REGISTRY_DATASOURCE_URL: H2_URL }, stdio: ['ignore', out, out] },
  );
  const kill = () => {
    try {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  };
  process.once('exit', kill);
  const url = `http://127.0.0.1:${port}/apis/ccompat/v7`;
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the registry exited while starting (code ${child.exitCode}):\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
    try {
      const r = await fetch(`${url}/subjects`, { signal: AbortSignal.timeout(2000) });
      if (r.ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      kill();
      throw new Error(`no answer from ${url}/subjects after 180 s (log ${logFile})`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  return {
    url,
    kind: 'local',
    child,
    async release() {
      process.removeListener('exit', kill);
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGCONT');
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** POST a schema under a subject (the producer's side of the registry); returns its id. */
export async function registerSchema(url: string, subject: string, schema: object | string): Promise<number> {
  const r = await fetch(`${url}/subjects/${encodeURIComponent(subject)}/versions`, {
    method: 'POST',
    headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ schema: typeof schema === 'string' ? schema : JSON.stringify(schema) }),
  });
  const body = (await r.json()) as { id?: number; message?: string };
  if (!r.ok || typeof body.id !== 'number') throw new Error(`register ${subject}: HTTP ${r.status} ${body.message ?? ''}`);
  return body.id;
}

/** GET /schemas/ids/{id}: the schema text (what a Confluent deserializer fetches). */
export async function schemaText(url: string, id: number): Promise<string> {
  const r = await fetch(`${url}/schemas/ids/${id}`);
  const body = (await r.json()) as { schema?: string; message?: string };
  if (!r.ok || typeof body.schema !== 'string') throw new Error(`schema ${id}: HTTP ${r.status} ${body.message ?? ''}`);
  return body.schema;
}
