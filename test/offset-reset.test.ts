// kafka.autoOffsetReset against a real broker (test/helpers/broker.ts): a new consumer group starts
// at the end of the input under `latest` (records produced before it joined are never guarded) and
// at the beginning under `earliest` (the default), whatever was produced before it started.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createTopics, getTestBroker, type TestBroker } from './helpers/broker.ts';
import { guardTopics, LogSink, produce, rawConfig, REPO, samples, sleep, waitFor, within } from './helpers/guard.ts';
import { parseConfig } from '../src/config/schema.ts';
import { Guard, createLogger } from '../src/consumer/guard.ts';
import type { SampleRecord } from '../src/sample/produceSample.ts';

describe('kafka.autoOffsetReset (real broker)', { timeout: 300_000 }, () => {
  let broker: TestBroker;
  let early: SampleRecord[];
  let late: SampleRecord[];

  before(async () => {
    broker = await getTestBroker();
    early = await samples(12, { seed: 31, idPrefix: 'early' });
    late = await samples(12, { seed: 32, idPrefix: 'late' });
  });
  after(async () => {
    await broker?.stop();
  });

  async function run(reset: 'earliest' | 'latest' | undefined, prefix: string): Promise<string[]> {
    const t = guardTopics(prefix);
    await createTopics(broker.brokers, [t.input, t.output, t.deadLetter, t.alerts], 1);
    await produce(broker.brokers, t.input, early.map((r) => ({ key: r.id, value: r.value, partition: 0 })));
    const raw = rawConfig(t, { brokers: broker.brokers }) as { kafka: Record<string, unknown> };
    if (reset) raw.kafka.autoOffsetReset = reset;
    const ids: string[] = [];
    const guard = new Guard(parseConfig(raw), {
      baseDir: REPO,
      httpPort: 0,
      logger: createLogger(new LogSink()),
      events: { onChunk: (_t, _p, r) => ids.push(...r.outputs.map((o) => o.id), ...r.deadLetters.map((d) => d.id ?? '?')) },
    });
    try {
      await within(guard.start(), 90_000, 'guard.start()');
      await waitFor(() => guard.readiness().ready, 60_000, 'ready (partition assigned)');
      // With `latest` the consumer takes the end offset when it first fetches, which may be just
      // after the assignment: produce the late records one at a time until the first is answered,
      // then the rest. On one partition the guard answers in offset order, so every early record
      // comes before any late one if it is consumed at all.
      let sent = 0;
      await waitFor(async () => {
        if (ids.some((id) => id.startsWith('late')) || sent >= late.length) return true;
        await produce(broker.brokers, t.input, [{ key: late[sent]!.id, value: late[sent]!.value, partition: 0 }]);
        sent++;
        await sleep(300);
        return ids.some((id) => id.startsWith('late'));
      }, 60_000, 'a late record answered');
      await produce(broker.brokers, t.input, late.slice(sent).map((r) => ({ key: r.id, value: r.value, partition: 0 })));
      await waitFor(() => ids.includes(late.at(-1)!.id), 60_000, () => `last late record answered (${ids.length} answered)`);
      return ids;
    } finally {
      await within(guard.stop(), 30_000, 'guard.stop()');
    }
  }

  test('latest: only records produced after the group joined', async () => {
    const ids = await run('latest', 'reset-latest');
    assert.ok(!ids.some((id) => id.startsWith('early')), `no early record guarded: ${ids.join(', ')}`);
    const lateIds = ids.filter((id) => id.startsWith('late'));
    assert.ok(lateIds.length >= 1 && lateIds.at(-1) === late.at(-1)!.id);
  });

  test('earliest (the default): every retained record, the early ones first', async () => {
    const ids = await run(undefined, 'reset-earliest');
    assert.deepEqual(ids.slice(0, early.length), early.map((r) => r.id), 'the early records, in order, before any late one');
    assert.deepEqual(ids.slice(early.length), late.map((r) => r.id));
  });
});
