/**
 * A real Kafka broker for tests, one per test file:
 *
 *   let broker: TestBroker;
 *   before(async () => { broker = await getTestBroker(); });
 *   after(async () => { await broker.stop(); });
 *
 * Source, in order:
 *   1. KAFKA_BROKERS env (comma-separated) - an external broker; stop() is a no-op;
 *   2. testcontainers (apache/kafka image), when a Docker engine answers and the optional
 *      `testcontainers` package can be imported (it is not a dependency of this repo);
 *   3. the local JVM broker from tools/localBroker.ts (jars from Maven Central).
 * VQGUARD_TEST_BROKER=env|testcontainers|local forces one.
 *
 * Calls within one process share one broker (reference counted): the last stop() stops it.
 */
import net from 'node:net';
import { existsSync } from 'node:fs';
import { Kafka, logLevel } from 'kafkajs';
import { freePort, startLocalBroker, waitForKafka, type LocalBroker } from '../../tools/localBroker.ts';

export type TestBrokerKind = 'env' | 'testcontainers' | 'local';

export interface TestBroker {
  brokers: string[];
  kind: TestBrokerKind;
  /** The local broker (restart/kill for fault tests); only when kind === 'local'. */
  local?: LocalBroker;
  stop(): Promise<void>;
}

const KAFKA_IMAGE = process.env.VQGUARD_KAFKA_IMAGE ?? 'apache/kafka:4.1.2';

let shared: Promise<Omit<TestBroker, 'stop'> & { release(): Promise<void> }> | undefined;
let refs = 0;

export async function getTestBroker(): Promise<TestBroker> {
  refs++;
  shared ??= acquire();
  let b: Awaited<NonNullable<typeof shared>>;
  try {
    b = await shared;
  } catch (e) {
    refs--;
    shared = undefined;
    throw e;
  }
  let stopped = false;
  return {
    brokers: b.brokers,
    kind: b.kind,
    local: b.local,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (--refs > 0) return;
      shared = undefined;
      await b.release();
    },
  };
}

async function acquire() {
  const forced = process.env.VQGUARD_TEST_BROKER as TestBrokerKind | undefined;
  const env = process.env.KAFKA_BROKERS?.trim();
  if ((forced === undefined || forced === 'env') && env) {
    const brokers = env.split(',').map((s) => s.trim()).filter(Boolean);
    return { brokers, kind: 'env' as const, release: async () => undefined };
  }
  if (forced === 'env') throw new Error('VQGUARD_TEST_BROKER=env but KAFKA_BROKERS is not set');
  if (forced === 'testcontainers' || (forced === undefined && (await dockerAnswers()))) {
    const tc = await startTestcontainer(forced === 'testcontainers');
    if (tc) return tc;
  }
  const local = await startLocalBroker();
  return { brokers: local.brokers, kind: 'local' as const, local, release: () => local.stop() };
}

/** True when a Docker engine answers GET /_ping on its unix socket (DOCKER_HOST or the default). */
export async function dockerAnswers(timeoutMs = 1000): Promise<boolean> {
  const host = process.env.DOCKER_HOST;
  let target: net.NetConnectOpts;
  if (host?.startsWith('tcp://')) {
    const u = new URL(host.replace(/^tcp:/, 'http:'));
    target = { host: u.hostname, port: Number(u.port || 2375) };
  } else {
    const socketPath = host?.startsWith('unix://') ? host.slice('unix://'.length) : '/var/run/docker.sock';
    if (!existsSync(socketPath)) return false;
    target = { path: socketPath };
  }
  return new Promise((resolve) => {
    const sock = net.connect(target);
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n\r\n')) done(/^HTTP\/1\.[01] 200/.test(buf));
    });
    sock.once('end', () => done(/^HTTP\/1\.[01] 200/.test(buf)));
  });
}

interface TcModule {
  GenericContainer: new (image: string) => any; // eslint-disable-line @typescript-eslint/no-explicit-any
  Wait: { forLogMessage(msg: string | RegExp): unknown };
}

/** apache/kafka in KRaft mode with a fixed host port (advertised listeners must match it). */
async function startTestcontainer(required: boolean) {
  let tc: TcModule;
  try {
    const name = 'testcontainers'; // not a dependency: resolved only if someone installed it
    tc = (await import(name)) as TcModule;
  } catch (e) {
    if (required) throw new Error(`VQGUARD_TEST_BROKER=testcontainers but it cannot be imported: ${(e as Error).message}`);
    return undefined;
  }
  const port = await freePort();
  const container = await new tc.GenericContainer(KAFKA_IMAGE)
    .withExposedPorts({ container: port, host: port })
    .withEnvironment({
      KAFKA_NODE_ID: '1',
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_LISTENERS: `PLAINTEXT://0.0.0.0:${port},CONTROLLER://127.0.0.1:9093`,
      KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${port}`,
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
      KAFKA_INTER_BROKER_LISTENER_NAME: 'PLAINTEXT',
      KAFKA_CONTROLLER_QUORUM_VOTERS: '1@127.0.0.1:9093',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS: '1',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
      KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS: '1',
      KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR: '1',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
    })
    .withWaitStrategy(tc.Wait.forLogMessage(/Kafka Server started/))
    .withStartupTimeout(120_000)
    .start();
  const brokers = [`127.0.0.1:${port}`];
  await waitForKafka(brokers, 60_000);
  return {
    brokers,
    kind: 'testcontainers' as const,
    local: undefined,
    release: async () => {
      await container.stop();
    },
  };
}

/** A topic name no earlier run used: `${prefix}-<time>-<random>`. */
export function uniqueTopic(prefix = 'test'): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Creates the topics (replication 1) and waits until every partition has a leader. */
export async function createTopics(brokers: string[], topics: string[], partitions = 1): Promise<void> {
  const admin = new Kafka({ clientId: 'vqguard-test-admin', brokers, logLevel: logLevel.WARN }).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: topics.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
      waitForLeaders: true,
      timeout: 30_000,
    });
    // createTopics returns once leaders exist; also wait until metadata lists every partition.
    const deadline = Date.now() + 30_000;
    for (;;) {
      let ok = false;
      let last = '';
      try {
        const md = await admin.fetchTopicMetadata({ topics });
        ok = md.topics.every((t) => t.partitions.length === partitions && t.partitions.every((p) => p.leader >= 0));
      } catch (e) {
        // A new topic's metadata can lag createTopics on a loaded machine: the broker then answers
        // UNKNOWN_TOPIC_OR_PARTITION ("does not host this topic-partition"). Keep waiting until the deadline.
        if ((e as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw e;
        last = (e as Error).message;
      }
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`topics ${topics.join(',')} not ready after 30 s${last ? ` (${last})` : ''}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await admin.disconnect();
  }
}
