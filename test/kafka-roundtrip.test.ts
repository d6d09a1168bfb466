// Round trip through a real Kafka broker (test/helpers/broker.ts): every message exactly once and
// in order per partition; and a local broker's restart() keeps the data.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Kafka, logLevel, Partitioners, type Consumer, type KafkaMessage } from 'kafkajs';
import { createTopics, getTestBroker, uniqueTopic, type TestBroker } from './helpers/broker.ts';

const N = 1000;
const PARTITIONS = 3;

interface Got {
  partition: number;
  offset: bigint;
  key: string;
  value: string;
}

function client(brokers: string[]): Kafka {
  return new Kafka({ clientId: 'roundtrip-test', brokers, logLevel: logLevel.WARN });
}

async function produce(kafka: Kafka, topic: string, n: number, batch = 100): Promise<void> {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true });
  await producer.connect();
  try {
    for (let i = 0; i < n; i += batch) {
      const messages = [];
      for (let j = i; j < Math.min(n, i + batch); j++) messages.push({ key: `k-${j}`, value: `v-${j}` });
      await producer.send({ topic, messages, acks: -1 });
    }
  } finally {
    await producer.disconnect();
  }
}

/** Consumes from the beginning until `n` messages arrived, then lingers `lingerMs` to catch duplicates. */
async function consume(kafka: Kafka, topic: string, n: number, timeoutMs = 60_000, lingerMs = 1000): Promise<Got[]> {
  const consumer: Consumer = kafka.consumer({ groupId: uniqueTopic('roundtrip-group'), maxWaitTimeInMs: 200 });
  const got: Got[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    let reached!: () => void;
    const all = new Promise<void>((r) => (reached = r));
    await consumer.run({
      eachMessage: async ({ partition, message }: { partition: number; message: KafkaMessage }) => {
        got.push({
          partition,
          offset: BigInt(message.offset),
          key: message.key?.toString() ?? '',
          value: message.value?.toString() ?? '',
        });
        if (got.length >= n) reached();
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`only ${got.length}/${n} messages after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([all, timeout]);
    } finally {
      clearTimeout(timer);
    }
    await new Promise((r) => setTimeout(r, lingerMs));
  } finally {
    await consumer.disconnect();
  }
  return got;
}

function assertExactlyOnceInOrder(got: Got[], n: number): void {
  assert.equal(got.length, n, `received ${got.length} messages, expected ${n}`);
  const seen = new Set<string>();
  const lastIndex = new Map<number, number>();
  const lastOffset = new Map<number, bigint>();
  for (const m of got) {
    const i = Number(m.key.slice(2));
    assert.ok(m.key.startsWith('k-') && Number.isInteger(i) && i >= 0 && i < n, `unexpected key ${m.key}`);
    assert.equal(m.value, `v-${i}`, `value for ${m.key}`);
    assert.ok(!seen.has(m.key), `duplicate ${m.key}`);
    seen.add(m.key);
    // Sent sequentially, so within a partition the produce order is the index order.
    assert.ok(i > (lastIndex.get(m.partition) ?? -1), `out of order in partition ${m.partition}: ${m.key}`);
    assert.ok(m.offset > (lastOffset.get(m.partition) ?? -1n), `offset went backwards in partition ${m.partition}`);
    lastIndex.set(m.partition, i);
    lastOffset.set(m.partition, m.offset);
  }
  assert.equal(seen.size, n);
}

describe('kafka round trip (real broker)', { timeout: 180_000 }, () => {
  let broker: TestBroker;

  before(async () => {
    broker = await getTestBroker();
  });
  after(async () => {
    await broker?.stop();
  });

  test(`${N} messages arrive exactly once, in order per partition`, { timeout: 60_000 }, async () => {
    const topic = uniqueTopic('roundtrip');
    await createTopics(broker.brokers, [topic], PARTITIONS);
    const kafka = client(broker.brokers);
    await produce(kafka, topic, N);

    const admin = kafka.admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets(topic);
    await admin.disconnect();
    const total = offsets.reduce((s, p) => s + Number(p.high) - Number(p.low), 0);
    assert.equal(total, N, 'high watermarks add up to the number sent');
    assert.ok(offsets.filter((p) => Number(p.high) > 0).length > 1, 'keys spread over partitions');

    const got = await consume(kafka, topic, N);
    assertExactlyOnceInOrder(got, N);
  });

  test('restart() keeps the data', { timeout: 90_000 }, async (t) => {
    if (!broker.local) {
      t.skip(`broker kind ${broker.kind} cannot be restarted from the test`);
      return;
    }
    const topic = uniqueTopic('restart');
    await createTopics(broker.brokers, [topic], 2);
    await produce(client(broker.brokers), topic, 200, 50);

    const pidBefore = broker.local.pid;
    await broker.local.restart();
    assert.notEqual(broker.local.pid, pidBefore, 'a new JVM');
    assert.deepEqual(broker.local.brokers, broker.brokers, 'same address after restart');

    const got = await consume(client(broker.brokers), topic, 200);
    assertExactlyOnceInOrder(got, 200);
  });
});
