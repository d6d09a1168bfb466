// The chart's statefulset mode gives each pod VQGUARD_TRANSACTIONAL_ID=<prefix><pod name>. This
// checks, on a real broker, that the guard's transactions use exactly that id: the broker's
// transaction log (__transaction_state, keyed by transactional id) has it after the guard commits,
// and has no entry under the guard's fallback id (<groupId>-<hostname>-<pid>).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createTopics, getTestBroker, type TestBroker } from './helpers/broker.ts';
import { collect, guardTopics, LogSink, produce, rawConfig, REPO, samples, waitFor, within } from './helpers/guard.ts';
import { parseConfig } from '../src/config/schema.ts';
import { Guard, createLogger } from '../src/consumer/guard.ts';

let broker: TestBroker;
before(async () => {
  broker = await getTestBroker();
});
after(async () => {
  await broker?.stop();
});

test('transactions use VQGUARD_TRANSACTIONAL_ID (as the statefulset mode sets it)', { timeout: 240_000 }, async () => {
  const t = guardTopics('txid');
  await createTopics(broker.brokers, [t.input, t.output, t.deadLetter, t.alerts], 1);
  const recs = await samples(8, { seed: 41, idPrefix: 'txid' });
  await produce(broker.brokers, t.input, recs.map((r) => ({ key: r.id, value: r.value, partition: 0 })));

  const id = `${t.groupId}-guards-vq-vqguard-0`; // what the chart renders for pod vq-vqguard-0
  const prev = process.env.VQGUARD_TRANSACTIONAL_ID;
  process.env.VQGUARD_TRANSACTIONAL_ID = id;
  let answered = 0;
  let guard: Guard;
  try {
    guard = new Guard(parseConfig(rawConfig(t, { brokers: broker.brokers, transactions: true })), {
      baseDir: REPO,
      httpPort: 0,
      logger: createLogger(new LogSink()),
      events: { onChunk: (_t, _p, r) => void (answered += r.outputs.length + r.deadLetters.length) },
    });
  } finally {
    if (prev === undefined) delete process.env.VQGUARD_TRANSACTIONAL_ID;
    else process.env.VQGUARD_TRANSACTIONAL_ID = prev;
  }
  try {
    await within(guard.start(), 90_000, 'guard.start()');
    await waitFor(() => answered >= recs.length, 90_000, () => `all answered (${answered}/${recs.length})`);
  } finally {
    await within(guard.stop(), 30_000, 'guard.stop()');
  }

  // __transaction_state keys: int16 version, int16 length, the transactional id.
  const idOf = (key: string | null) => (key && key.length > 4 ? key.slice(4) : '');
  const log = await collect(broker.brokers, ['__transaction_state'], (got) => got.some((g) => idOf(g.key) === id), { timeoutMs: 30_000, readUncommitted: true });
  const ids = new Set(log.map((g) => idOf(g.key)));
  assert.ok(ids.has(id), `transaction log has ${id}`);
  assert.ok(![...ids].some((x) => x.startsWith(`${t.groupId}-`) && x !== id), 'no transaction under the fallback id');
});
