/**
 * A local single-node Apache Kafka (KRaft, combined broker+controller) for development, tests,
 * the demo and fault tests. The broker runs from the jars that `scripts/kafka.sh fetch` copies
 * from Maven Central into `.cache/kafka/libs` (see kafka/pom.xml); no tarball, no Docker.
 *
 *   const broker = await startLocalBroker();          // fresh temp dir, free ports
 *   new Kafka({ brokers: broker.brokers });
 *   await broker.restart();                          // same ports and dir, data kept
 *   await broker.kill();                             // SIGKILL (crash); restart() recovers
 *   await broker.stop();                             // clean SIGTERM shutdown
 *
 * Layout of a broker dir: server.properties, log4j2.properties, data/ (the KRaft log dir),
 * broker.log (WARN and above, plus the "Kafka Server started" line), stdout.log (JVM console),
 * kafka.pid, and owner.pid (the node process that owns a temp-dir broker).
 *
 * Run directly it is also the `start` backend of scripts/kafka.sh:
 *   node --import tsx tools/localBroker.ts start [--port N] [--dir D] [--scram user:pass]
 * which starts a detached broker, waits until it is ready and prints KAFKA_BROKERS=host:port.
 *
 * With `tls: true` the broker also gets an SSL listener (and SASL_SSL, with `scram`) whose
 * certificate is self-signed for 127.0.0.1/localhost, made with openssl at start-up
 * (<dir>/tls/ca.pem is the certificate clients trust).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners, type SASLOptions } from 'kafkajs';

/** The repository root: the nearest folder above this file holding kafka/pom.xml (works from tools/ and dist/tools/). */
export const REPO_ROOT = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));

function findRepoRoot(from: string): string {
  for (let d = from; ; d = path.dirname(d)) {
    if (existsSync(path.join(d, 'kafka', 'pom.xml'))) return d;
    if (path.dirname(d) === d) return path.resolve(from, '..');
  }
}
export const KAFKA_POM = path.join(REPO_ROOT, 'kafka', 'pom.xml');
export const KAFKA_CACHE = path.join(REPO_ROOT, '.cache', 'kafka');
export const KAFKA_LIBS = path.join(KAFKA_CACHE, 'libs');
export const KAFKA_STAMP = path.join(KAFKA_CACHE, 'libs.stamp');
const KAFKA_SCRIPT = path.join(REPO_ROOT, 'scripts', 'kafka.sh');
const TEMP_PREFIX = 'vqguard-kafka-';
const HOST = '127.0.0.1';

/** JVM flags sized for a 2-core CI machine. Extra flags: VQGUARD_KAFKA_JAVA_OPTS. */
export const DEFAULT_JVM_OPTS = [
  '-Xms64m', // -Xms256m measured ~50 MiB more RSS, no faster start
  '-Xmx512m',
  '-XX:+UseSerialGC',
  '-XX:TieredStopAtLevel=1',
  '-XX:+ExitOnOutOfMemoryError',
  '-Djava.awt.headless=true',
];

export interface ScramUser {
  username: string;
  password: string;
}

export interface LocalBrokerOptions {
  /** PLAINTEXT port; default: the port recorded in `dir` (if free), else a free one. */
  port?: number;
  /** Broker dir; default: a fresh temp dir that stop() deletes. */
  dir?: string;
  /** Adds a SASL_PLAINTEXT listener with SCRAM-SHA-256 and this user (created at format time). */
  scram?: ScramUser;
  /** Adds an SSL listener (and SASL_SSL with `scram`) with a self-signed certificate (needs openssl). */
  tls?: boolean;
  /** Readiness timeout in ms (default 60 000, env VQGUARD_KAFKA_START_TIMEOUT_MS). */
  startTimeoutMs?: number;
  /** Start the JVM detached from this process (CLI use); stop()/kill() still work by pid. */
  detached?: boolean;
  /**
   * After the metadata probe, also bring up the group and transaction coordinators (creates
   * __consumer_offsets and __transaction_state) so first use does not see "coordinator loading"
   * retries. Default true; costs about 1 s on a fresh broker.
   */
  warmUp?: boolean;
  /**
   * Broker settings that replace (or add to) the generated server.properties, e.g.
   * `{ 'auto.create.topics.enable': 'false' }` for a broker that creates no topic on first use.
   */
  serverProperties?: Record<string, string>;
}

export interface LocalBroker {
  /** PLAINTEXT bootstrap list, e.g. ['127.0.0.1:40123']. */
  readonly brokers: string[];
  /** SASL_PLAINTEXT (SCRAM-SHA-256) bootstrap list; empty unless `scram` was given. */
  readonly saslBrokers: string[];
  /** kafkajs `sasl` option for saslBrokers, or undefined. */
  readonly sasl: SASLOptions | undefined;
  /** SSL bootstrap list; empty unless `tls` was given. */
  readonly sslBrokers: string[];
  /** SASL_SSL (SCRAM-SHA-256 over TLS) bootstrap list; empty unless both `tls` and `scram` were given. */
  readonly saslSslBrokers: string[];
  /** PEM file of the broker's self-signed certificate (the CA for clients), with `tls`. */
  readonly caFile: string | undefined;
  readonly port: number;
  readonly dir: string;
  /** PID of the broker JVM (undefined while stopped). */
  readonly pid: number | undefined;
  /** Clean shutdown (SIGTERM, then SIGKILL after 30 s); deletes an auto-created temp dir. */
  stop(): Promise<void>;
  /** SIGKILL, no clean shutdown; the dir is kept so restart() can recover. */
  kill(): Promise<void>;
  /** stop (clean, if running) then start again on the same ports and dir; data is kept. */
  restart(): Promise<void>;
}

interface Ports {
  port: number;
  controllerPort: number;
  saslPort?: number;
  sslPort?: number;
  saslSslPort?: number;
}

// ---------------------------------------------------------------------------------------------
// jars

function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Ensures .cache/kafka/libs matches kafka/pom.xml, running `scripts/kafka.sh fetch` if not. */
export function ensureKafkaJars(): void {
  const want = sha256File(KAFKA_POM);
  const have = existsSync(KAFKA_STAMP) ? readFileSync(KAFKA_STAMP, 'utf8').trim() : '';
  if (have === want && existsSync(KAFKA_LIBS)) return;
  const r = spawnSync('bash', [KAFKA_SCRIPT, 'fetch'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    throw new Error(`scripts/kafka.sh fetch failed (exit ${r.status ?? r.signal}); is mvn installed?`);
  }
}

function javaBin(): string {
  const home = process.env.JAVA_HOME;
  return home && existsSync(path.join(home, 'bin', 'java')) ? path.join(home, 'bin', 'java') : 'java';
}

function classpath(): string {
  return path.join(KAFKA_LIBS, '*');
}

// ---------------------------------------------------------------------------------------------
// ports, pids

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, HOST, () => srv.close(() => resolve(true)));
  });
}

function tcpAccepts(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: HOST, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readPid(file: string): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** True when `pid` is a live Kafka JVM started on `dir`'s server.properties (guards pid reuse). */
function isBrokerProcess(pid: number, dir: string): boolean {
  if (!alive(pid)) return false;
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('kafka.Kafka') && cmd.includes(path.join(dir, 'server.properties'));
  } catch {
    return process.platform !== 'linux'; // no /proc: trust the pid file
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive(pid)) return true;
    await sleep(50);
  }
  return !alive(pid);
}

/** SIGTERM, wait up to `graceMs`, then SIGKILL. Resolves when the process is gone. */
async function terminate(pid: number, graceMs: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  if (await waitForExit(pid, graceMs)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitForExit(pid, 10_000);
}

// Attached brokers die with this process (exit, or SIGINT/SIGTERM/SIGHUP when nobody else handles it).
// Value: a temp dir to delete with it (undefined for a caller-given dir).
const attached = new Map<ChildProcess, string | undefined>();
let hooksInstalled = false;
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  const killAll = () => {
    for (const [c, tempDir] of attached) {
      try {
        c.kill('SIGKILL');
      } catch {
        /* already gone */
      }
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      killAll();
      process.removeListener(sig, onSignal);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/** Kills brokers in temp dirs whose owning node process died without stopping them. */
function reapOrphans(): void {
  const tmp = os.tmpdir();
  let entries: string[] = [];
  try {
    entries = readdirSync(tmp).filter((e) => e.startsWith(TEMP_PREFIX));
  } catch {
    return;
  }
  for (const e of entries) {
    const dir = path.join(tmp, e);
    const owner = readPid(path.join(dir, 'owner.pid'));
    if (owner === undefined || alive(owner)) continue;
    const pid = readPid(path.join(dir, 'kafka.pid'));
    if (pid !== undefined && isBrokerProcess(pid, dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// config

function readRecordedPorts(dir: string): Partial<Ports> {
  const file = path.join(dir, 'server.properties');
  if (!existsSync(file)) return {};
  const text = readFileSync(file, 'utf8');
  const m = /^listeners=(.*)$/m.exec(text);
  const out: Partial<Ports> = {};
  for (const l of (m?.[1] ?? '').split(',')) {
    const mm = /^(\w+):\/\/[^:]*:(\d+)$/.exec(l.trim());
    if (!mm) continue;
    const p = Number(mm[2]);
    if (mm[1] === 'PLAINTEXT') out.port = p;
    else if (mm[1] === 'CONTROLLER') out.controllerPort = p;
    else if (mm[1] === 'SASL_PLAINTEXT') out.saslPort = p;
    else if (mm[1] === 'SSL') out.sslPort = p;
    else if (mm[1] === 'SASL_SSL') out.saslSslPort = p;
  }
  return out;
}

async function choosePorts(dir: string, opts: LocalBrokerOptions): Promise<Ports> {
  const prev = readRecordedPorts(dir);
  const taken = new Set<number>();
  const pick = async (wanted: number | undefined): Promise<number> => {
    if (wanted && !taken.has(wanted) && (await portIsFree(wanted))) {
      taken.add(wanted);
      return wanted;
    }
    for (;;) {
      const p = await freePort();
      if (!taken.has(p)) {
        taken.add(p);
        return p;
      }
    }
  };
  let port: number;
  if (opts.port) {
    if (!(await portIsFree(opts.port))) throw new Error(`port ${opts.port} is already in use`);
    port = opts.port;
    taken.add(port);
  } else {
    port = await pick(prev.port);
  }
  const controllerPort = await pick(prev.controllerPort);
  const saslPort = opts.scram ? await pick(prev.saslPort) : undefined;
  const sslPort = opts.tls ? await pick(prev.sslPort) : undefined;
  const saslSslPort = opts.tls && opts.scram ? await pick(prev.saslSslPort) : undefined;
  return { port, controllerPort, saslPort, sslPort, saslSslPort };
}

function serverProperties(dir: string, p: Ports, scram: boolean, tls = false, overrides: Record<string, string> = {}): string {
  const listeners = [`PLAINTEXT://${HOST}:${p.port}`];
  const advertised = [`PLAINTEXT://${HOST}:${p.port}`];
  if (scram && p.saslPort) {
    listeners.push(`SASL_PLAINTEXT://${HOST}:${p.saslPort}`);
    advertised.push(`SASL_PLAINTEXT://${HOST}:${p.saslPort}`);
  }
  if (tls && p.sslPort) {
    listeners.push(`SSL://${HOST}:${p.sslPort}`);
    advertised.push(`SSL://${HOST}:${p.sslPort}`);
  }
  if (tls && scram && p.saslSslPort) {
    listeners.push(`SASL_SSL://${HOST}:${p.saslSslPort}`);
    advertised.push(`SASL_SSL://${HOST}:${p.saslSslPort}`);
  }
  listeners.push(`CONTROLLER://${HOST}:${p.controllerPort}`);
  const lines = [
    '# generated by tools/localBroker.ts; rewritten on every start',
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@${HOST}:${p.controllerPort}`,
    `listeners=${listeners.join(',')}`,
    `advertised.listeners=${advertised.join(',')}`,
    'controller.listener.names=CONTROLLER',
    'inter.broker.listener.name=PLAINTEXT',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT',
    `log.dirs=${path.join(dir, 'data')}`,
    'num.partitions=1',
    'default.replication.factor=1',
    'min.insync.replicas=1',
    'auto.create.topics.enable=true',
    // internal topics: one replica, few partitions (fast coordinator load on a small machine)
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'transaction.state.log.num.partitions=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    // After a SIGKILL the restarted broker cannot re-register until the old session expires
    // (default 9 s); a short session makes kill()+restart() recover in seconds.
    'broker.heartbeat.interval.ms=500',
    'broker.session.timeout.ms=3000',
    'num.network.threads=2',
    'num.io.threads=4',
    'num.recovery.threads.per.data.dir=1',
    'log.retention.hours=24',
    'log.segment.bytes=67108864',
  ];
  if (scram) {
    lines.push(
      'sasl.enabled.mechanisms=SCRAM-SHA-256',
      'listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-256',
      'listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
    );
  }
  if (tls) {
    // PEM key store: unencrypted PKCS#8 key + certificate in one file (Kafka >= 2.7).
    lines.push('ssl.keystore.type=PEM', `ssl.keystore.location=${path.join(dir, 'tls', 'broker.pem')}`, 'ssl.client.auth=none');
    if (scram) {
      lines.push(
        'listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-256',
        'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
      );
    }
  }
  const over = Object.entries(overrides);
  const kept = lines.filter((l) => !over.some(([k]) => l.startsWith(`${k}=`)));
  return [...kept, ...over.map(([k, v]) => `${k}=${v}`)].join('\n') + '\n';
}

function log4j2Properties(dir: string): string {
  return [
    '# WARN and above to broker.log; the startup line is kept for humans.',
    'status = warn',
    'shutdownHook = disable',
    'appender.file.type = File',
    'appender.file.name = FILE',
    `appender.file.fileName = ${path.join(dir, 'broker.log')}`,
    'appender.file.layout.type = PatternLayout',
    'appender.file.layout.pattern = [%d] %p %m (%c)%n',
    'rootLogger.level = WARN',
    'rootLogger.appenderRef.file.ref = FILE',
    'logger.started.name = kafka.server.KafkaRaftServer',
    'logger.started.level = INFO',
    '',
  ].join('\n');
}

const SCRAM_SAFE = /^[A-Za-z0-9._~@+-]+$/;

function formatStorage(dir: string, scram: ScramUser | undefined): void {
  if (existsSync(path.join(dir, 'data', 'meta.properties'))) return;
  // Kafka's cluster id: a base64url (no padding) 16-byte UUID; one starting with '-' would be
  // parsed as an option by the tool (Kafka's own Uuid.randomUuid() avoids those too).
  let clusterId: string;
  do clusterId = randomBytes(16).toString('base64url');
  while (clusterId.startsWith('-'));
  const args = ['-cp', classpath(), 'kafka.tools.StorageTool', 'format'];
  args.push('-t', clusterId, '-c', path.join(dir, 'server.properties'));
  if (scram) {
    if (!SCRAM_SAFE.test(scram.username) || !SCRAM_SAFE.test(scram.password)) {
      throw new Error('scram username/password: use only [A-Za-z0-9._~@+-]');
    }
    args.push('--add-scram', `SCRAM-SHA-256=[name=${scram.username},password=${scram.password}]`);
  }
  const r = spawnSync(javaBin(), ['-Xmx256m', '-XX:TieredStopAtLevel=1', ...args], {
    encoding: 'utf8',
    env: { ...process.env, KAFKA_LOG4J_OPTS: '' },
  });
  if (r.status !== 0) {
    throw new Error(`kafka StorageTool format failed (exit ${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  }
}

/** A self-signed certificate for 127.0.0.1 / localhost in <dir>/tls (kept across restarts). */
function ensureTlsFiles(dir: string): void {
  const tlsDir = path.join(dir, 'tls');
  if (existsSync(path.join(tlsDir, 'broker.pem'))) return;
  mkdirSync(tlsDir, { recursive: true });
  const key = path.join(tlsDir, 'key.pem');
  const cert = path.join(tlsDir, 'ca.pem');
  const r = spawnSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '7', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl could not make a self-signed certificate (exit ${r.status ?? r.signal}): ${r.error?.message ?? r.stderr}`);
  writeFileSync(path.join(tlsDir, 'broker.pem'), readFileSync(key, 'utf8') + readFileSync(cert, 'utf8'));
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(none)';
  }
}

function logTails(dir: string): string {
  return (
    `--- ${path.join(dir, 'broker.log')} (tail) ---\n${tail(path.join(dir, 'broker.log'), 40)}\n` +
    `--- ${path.join(dir, 'stdout.log')} (tail) ---\n${tail(path.join(dir, 'stdout.log'), 20)}`
  );
}

// ---------------------------------------------------------------------------------------------
// readiness

/** Waits until `port` accepts TCP and a kafkajs admin metadata request (describeCluster) works. */
export async function waitForKafka(
  brokers: string[],
  timeoutMs: number,
  isDead: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const [host, portStr] = (brokers[0] ?? '').split(':');
  const port = Number(portStr);
  let lastErr = 'port not open';
  while (Date.now() < deadline) {
    const dead = isDead();
    if (dead) throw new Error(dead);
    if (host === HOST || host === 'localhost' ? await tcpAccepts(port) : true) {
      const admin = new Kafka({
        clientId: 'vqguard-local-broker-probe',
        brokers,
        logLevel: logLevel.NOTHING,
        connectionTimeout: 2000,
        requestTimeout: 5000,
        retry: { retries: 0 },
      }).admin();
      try {
        await admin.connect();
        const c = await admin.describeCluster();
        if (c.brokers.length > 0 && c.controller !== null && c.controller >= 0) return;
        lastErr = 'no controller yet';
      } catch (e) {
        lastErr = (e as Error).message;
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    }
    await sleep(200);
  }
  throw new Error(`Kafka at ${brokers.join(',')} not ready after ${timeoutMs} ms (last error: ${lastErr})`);
}

/**
 * Loads the group coordinator (describeGroups -> FindCoordinator) and the transaction coordinator
 * and producer-id manager (a transactional producer's InitProducerId, then an empty abort).
 */
export async function warmUpCoordinators(brokers: string[]): Promise<void> {
  const kafka = new Kafka({
    clientId: 'vqguard-local-broker-warmup',
    brokers,
    logLevel: logLevel.NOTHING,
    retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 1000 },
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.describeGroups(['__vqguard-warmup']);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    transactionalId: '__vqguard-warmup',
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  try {
    const tx = await producer.transaction();
    await tx.abort();
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// the broker

class LocalBrokerImpl implements LocalBroker {
  private child: ChildProcess | undefined;
  private exitInfo: string | undefined;
  private _pid: number | undefined;
  private stopped = false;

  constructor(
    readonly dir: string,
    private readonly ports: Ports,
    private readonly opts: LocalBrokerOptions,
    private readonly ownsDir: boolean,
  ) {}

  get port(): number {
    return this.ports.port;
  }
  get brokers(): string[] {
    return [`${HOST}:${this.ports.port}`];
  }
  get saslBrokers(): string[] {
    return this.ports.saslPort ? [`${HOST}:${this.ports.saslPort}`] : [];
  }
  get sslBrokers(): string[] {
    return this.ports.sslPort ? [`${HOST}:${this.ports.sslPort}`] : [];
  }
  get saslSslBrokers(): string[] {
    return this.ports.saslSslPort ? [`${HOST}:${this.ports.saslSslPort}`] : [];
  }
  get caFile(): string | undefined {
    return this.opts.tls ? path.join(this.dir, 'tls', 'ca.pem') : undefined;
  }
  get sasl(): SASLOptions | undefined {
    const s = this.opts.scram;
    return s ? { mechanism: 'scram-sha-256', username: s.username, password: s.password } : undefined;
  }
  get pid(): number | undefined {
    return this._pid;
  }
  private get pidFile(): string {
    return path.join(this.dir, 'kafka.pid');
  }

  /** Writes config, formats if needed, spawns the JVM, waits for readiness. */
  async launch(): Promise<void> {
    const { dir, opts } = this;
    if (opts.tls) ensureTlsFiles(dir);
    writeFileSync(path.join(dir, 'server.properties'), serverProperties(dir, this.ports, !!opts.scram, !!opts.tls, opts.serverProperties));
    writeFileSync(path.join(dir, 'log4j2.properties'), log4j2Properties(dir));
    formatStorage(dir, opts.scram);

    const extra = (process.env.VQGUARD_KAFKA_JAVA_OPTS ?? '').split(/\s+/).filter(Boolean);
    const args = [
      ...DEFAULT_JVM_OPTS,
      ...extra,
      `-Dlog4j2.configurationFile=${path.join(dir, 'log4j2.properties')}`,
      '-cp',
      classpath(),
      'kafka.Kafka',
      path.join(dir, 'server.properties'),
    ];
    const out = openSync(path.join(dir, 'stdout.log'), 'a');
    let child: ChildProcess;
    try {
      child = spawn(javaBin(), args, {
        cwd: dir,
        stdio: ['ignore', out, out],
        detached: !!opts.detached,
        env: { ...process.env, KAFKA_HEAP_OPTS: '', KAFKA_OPTS: '' },
      });
    } finally {
      closeSync(out);
    }
    this.exitInfo = undefined;
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    child.once('exit', (code, sig) => {
      this.exitInfo = `Kafka broker exited during startup (code ${code}, signal ${sig})`;
      attached.delete(child);
      if (this.child === child) this._pid = undefined;
    });
    spawnError.then((e) => (this.exitInfo = `cannot run java: ${e.message}`));
    this.child = child;
    this._pid = child.pid;
    if (child.pid) writeFileSync(this.pidFile, `${child.pid}\n`);
    if (opts.detached) child.unref();
    else {
      installExitHooks();
      attached.set(child, this.ownsDir ? dir : undefined);
    }

    const timeout =
      opts.startTimeoutMs ?? (Number(process.env.VQGUARD_KAFKA_START_TIMEOUT_MS) || 60_000);
    try {
      const t0 = Date.now();
      await waitForKafka(this.brokers, timeout, () => this.exitInfo);
      if (opts.warmUp !== false) {
        const left = Math.max(5000, timeout - (Date.now() - t0));
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          warmUpCoordinators(this.brokers),
          new Promise<never>((_, rej) => {
            timer = setTimeout(() => rej(new Error(`coordinator warm-up not done after ${left} ms`)), left);
          }),
        ]).finally(() => clearTimeout(timer));
      }
    } catch (e) {
      if (this._pid) await terminate(this._pid, 5000);
      throw new Error(`${(e as Error).message}\n${logTails(dir)}`);
    }
    if (opts.detached) child.removeAllListeners('exit');
  }

  private async shutdown(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    const pid = this._pid ?? readPid(this.pidFile);
    if (pid !== undefined && isBrokerProcess(pid, this.dir)) {
      if (signal === 'SIGKILL') {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
        await waitForExit(pid, 10_000);
      } else {
        await terminate(pid, 30_000);
      }
    }
    if (this.child) attached.delete(this.child);
    this.child = undefined;
    this._pid = undefined;
    rmSync(this.pidFile, { force: true });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.shutdown('SIGTERM');
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
  }

  async kill(): Promise<void> {
    await this.shutdown('SIGKILL');
  }

  async restart(): Promise<void> {
    if (this.stopped) throw new Error('restart() after stop(): start a new broker instead');
    await this.shutdown('SIGTERM');
    // The ports are ours; wait briefly in case the kernel has not released them yet.
    for (let i = 0; i < 50 && !(await portIsFree(this.ports.port)); i++) await sleep(100);
    await this.launch();
  }
}

/** Starts a local single-node KRaft broker and resolves once it answers metadata requests. */
export async function startLocalBroker(opts: LocalBrokerOptions = {}): Promise<LocalBroker> {
  ensureKafkaJars();
  let dir: string;
  let ownsDir = false;
  if (opts.dir) {
    dir = path.resolve(opts.dir);
    mkdirSync(dir, { recursive: true });
    const old = readPid(path.join(dir, 'kafka.pid'));
    if (old !== undefined && isBrokerProcess(old, dir)) {
      throw new Error(`a Kafka broker is already running in ${dir} (pid ${old}); stop it first`);
    }
  } else {
    reapOrphans();
    dir = mkdtempSync(path.join(os.tmpdir(), TEMP_PREFIX));
    ownsDir = true;
    writeFileSync(path.join(dir, 'owner.pid'), `${process.pid}\n`);
  }
  const ports = await choosePorts(dir, opts);
  const broker = new LocalBrokerImpl(dir, ports, opts, ownsDir);
  try {
    await broker.launch();
  } catch (e) {
    if (ownsDir) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return broker;
}

// ---------------------------------------------------------------------------------------------
// CLI (backend of `scripts/kafka.sh start`)

async function cli(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd !== 'start') {
    console.error('usage: localBroker.ts start [--port N] [--dir D] [--scram user:password]');
    return 2;
  }
  const opts: LocalBrokerOptions = { detached: true, dir: path.join(REPO_ROOT, '.kafka') };
  let values: { port?: string; dir?: string; scram?: string };
  try {
    ({ values } = parseArgs({ args: rest, options: { port: { type: 'string' }, dir: { type: 'string' }, scram: { type: 'string' } }, strict: true }));
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  if (values.port !== undefined) {
    opts.port = Number(values.port);
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
      console.error(`--port: expected a port number, got "${values.port}"`);
      return 2;
    }
  }
  if (values.dir !== undefined) opts.dir = values.dir;
  if (values.scram !== undefined) {
    const at = values.scram.indexOf(':');
    if (at < 1) {
      console.error('--scram: expected user:password');
      return 2;
    }
    opts.scram = { username: values.scram.slice(0, at), password: values.scram.slice(at + 1) };
  }
  if (!opts.port && process.env.KAFKA_PORT) opts.port = Number(process.env.KAFKA_PORT);
  const dir = path.resolve(opts.dir!);
  const running = readPid(path.join(dir, 'kafka.pid'));
  if (running !== undefined && isBrokerProcess(running, dir)) {
    const recorded = readRecordedPorts(dir);
    if (opts.port && opts.port !== recorded.port) {
      console.error(`a broker is already running in ${dir} on port ${recorded.port}; stop it first`);
      return 1;
    }
    console.error(`kafka: already running in ${dir} (pid ${running})`);
    console.log(`KAFKA_BROKERS=${HOST}:${recorded.port}`);
    if (recorded.saslPort) console.log(`KAFKA_SASL_BROKERS=${HOST}:${recorded.saslPort}`);
    return 0;
  }
  const t0 = Date.now();
  const b = await startLocalBroker(opts);
  console.error(`kafka: ready in ${Date.now() - t0} ms (pid ${b.pid}, dir ${b.dir})`);
  console.log(`KAFKA_BROKERS=${b.brokers.join(',')}`);
  if (b.saslBrokers.length) console.log(`KAFKA_SASL_BROKERS=${b.saslBrokers.join(',')}`);
  return 0;
}

if (process.argv[1] && /localBroker\.[cm]?[jt]s$/.test(process.argv[1]) && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  cli(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error((e as Error).message);
      process.exit(1);
    },
  );
}
