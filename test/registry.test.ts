// Confluent Schema Registry in and out (issue 18.1), against a REAL registry (Apicurio Registry
// built from Maven Central, test/helpers/registry.ts; or SCHEMA_REGISTRY_URL) and a real broker:
// framed input is decoded with the writer schema fetched by id and resolved against the reader
// schema (evolution both ways), an unknown id is dead-lettered as unknown_schema, outputs, alerts
// and dead letters are framed and readable by fetching their schema from the registry (as a
// Confluent deserializer does), and a registry outage holds records back (not dead-lettered,
// /readyz false) until it answers again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import avro from 'avsc';
import { createTopics, getTestBroker, type TestBroker } from './helpers/broker.ts';
import { collect, guardTopics, LogSink, produce, rawConfig, REPO, samples, sleep, waitFor, within, type Collected, type GuardTopics } from './helpers/guard.ts';
import { getTestRegistry, registerSchema, schemaText, type TestRegistry } from './helpers/registry.ts';
import { ConfigError, parseConfig } from '../src/config/schema.ts';
import { Guard, createLogger } from '../src/consumer/guard.ts';
import { imageRecordType } from '../src/records/avro.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { frameValue, parseFrame, registryAuthorization, SchemaRegistryClient, SchemaRegistryUnavailable, subjectName, TopicSchemaRegistry, registeredSchema } from '../src/records/registry.ts';
import { freePort } from '../tools/localBroker.ts';
import type { SampleRecord } from '../src/sample/produceSample.ts';

const imageRecordSchema = JSON.parse(JSON.stringify(imageRecordType.schema({ exportAttrs: true }))) as { fields: Record<string, unknown>[] } & Record<string, unknown>;
/** A newer producer: one more optional field (schemas/README.md rule 1). */
const writerAddsField = { ...imageRecordSchema, fields: [...imageRecordSchema.fields, { name: 'camera', type: ['null', 'string'], default: null }] };
/** An older producer: no `attributes` (the reader's default {} applies) and no `label` (default null). */
const writerLacksFields = { ...imageRecordSchema, fields: imageRecordSchema.fields.filter((f) => f.name !== 'attributes' && f.name !== 'label') };

function reencode(r: SampleRecord, schema: object, extra: Record<string, unknown> = {}): Buffer {
  const rec = imageRecordType.fromBuffer(r.value) as Record<string, unknown>;
  return avro.Type.forSchema(schema as avro.Schema).toBuffer({ ...rec, ...extra });
}

/** Decodes a framed value as a Confluent deserializer would: the schema fetched by the frame's id. */
async function confluentDecode(url: string, value: Buffer, cache = new Map<number, avro.Type>()): Promise<{ id: number; record: Record<string, unknown>; name: string }> {
  const f = parseFrame(value);
  assert.ok(f, `framed (magic byte 0): first byte ${value[0]}`);
  let t = cache.get(f.id);
  if (!t) cache.set(f.id, (t = avro.Type.forSchema(JSON.parse(await schemaText(url, f.id)) as avro.Schema)));
  return { id: f.id, record: t.fromBuffer(f.body) as Record<string, unknown>, name: (t as unknown as { name: string }).name };
}

function registryConfig(t: GuardTopics, brokers: string[], schemaRegistry: Record<string, unknown>, deadLetterFormat?: 'avro' | 'connect') {
  const raw = rawConfig(t, { brokers }) as { topics: Record<string, unknown>[] };
  raw.topics[0]!.schemaRegistry = schemaRegistry;
  if (deadLetterFormat) raw.topics[0]!.deadLetter = { topic: t.deadLetter, format: deadLetterFormat };
  raw.topics[0]!.format = 'avro';
  return parseConfig(raw);
}

describe('schemaRegistry config', () => {
  const base = () => rawConfig(guardTopics('cfg'), { brokers: ['127.0.0.1:9092'] }) as { topics: Record<string, unknown>[] };
  const problems = (sr: unknown): string[] => {
    const raw = base();
    raw.topics[0]!.schemaRegistry = sr;
    try {
      parseConfig(raw);
      return [];
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      return e.problems;
    }
  };

  test('defaults: TopicNameStrategy, 5 s timeout; basic and bearer auth accepted', () => {
    const raw = base();
    raw.topics[0]!.schemaRegistry = { url: 'http://registry:8081' };
    assert.deepEqual(parseConfig(raw).topics[0]!.schemaRegistry, { url: 'http://registry:8081', subjectStrategy: 'TopicNameStrategy', timeoutMs: 5000 });
    assert.deepEqual(problems({ url: 'https://r', auth: { username: 'u', passwordEnv: 'SR_PASSWORD' }, subjectStrategy: 'RecordNameStrategy' }), []);
    assert.deepEqual(problems({ url: 'https://r', auth: { tokenFile: '/var/run/secrets/sr-token' }, subjectStrategy: 'TopicRecordNameStrategy' }), []);
  });

  test('typos, bad values and credentials in the URL are reported, every one at once', () => {
    const p = problems({ url: 'http://u:secret@registry:8081', subjectStrategy: 'TopicName', timeoutMs: 0, auth: { username: 'u', tokenEnv: 'T' }, timeoutMS: 5 });
    const text = p.join('\n');
    assert.match(text, /schemaRegistry\.url: no credentials in the URL/);
    assert.match(text, /schemaRegistry\.subjectStrategy: "TopicName" is not one of "TopicNameStrategy"/);
    assert.match(text, /schemaRegistry\.timeoutMs/);
    assert.match(text, /schemaRegistry\.auth: give either username/);
    assert.match(text, /schemaRegistry: unknown key "timeoutMS" \(did you mean "timeoutMs"\?\)/);
    assert.match(problems({ url: 'http://r', auth: { username: 'u' } }).join('\n'), /basic authentication: give username and exactly one of passwordFile, passwordEnv/);
    assert.match(problems({ url: 'http://r', auth: { password: 'inline' } }).join('\n'), /unknown key "password"/, 'no inline secrets');
  });
});

describe('schemaRegistry.auth secrets', () => {
  const s = (auth: Record<string, string>) => ({ url: 'http://r', subjectStrategy: 'TopicNameStrategy' as const, timeoutMs: 1000, auth });
  test('basic from the environment, bearer from a file (one trailing newline trimmed); a missing secret is named, never shown', () => {
    assert.equal(registryAuthorization(s({ username: 'guard', passwordEnv: 'SR_PW' }), { env: { SR_PW: 'p:w' } }), `Basic ${Buffer.from('guard:p:w').toString('base64')}`);
    const dir = mkdtempSync(join(tmpdir(), 'vqguard-sr-'));
    writeFileSync(join(dir, 'token'), 'tok-123\n');
    assert.equal(registryAuthorization(s({ tokenFile: 'token' }), { baseDir: dir }), 'Bearer tok-123');
    assert.throws(() => registryAuthorization(s({ tokenEnv: 'SR_TOKEN' }), { env: {} }), /schemaRegistry\.auth\.tokenEnv: environment variable SR_TOKEN is not set/);
    assert.throws(() => registryAuthorization(s({ username: 'u', passwordFile: 'nope' }), { baseDir: dir }), /schemaRegistry\.auth\.passwordFile: cannot read .*nope \(ENOENT\)/);
    assert.equal(registryAuthorization({ url: 'http://r', subjectStrategy: 'TopicNameStrategy', timeoutMs: 1000 }), undefined);
  });
});

describe('Schema Registry client (real registry)', { timeout: 600_000 }, () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await getTestRegistry();
  });
  after(async () => {
    await registry?.stop();
  });

  test('the three subject strategies register the output schemas under the Confluent subject names', async () => {
    const topics = { output: 'sr-strat.out', alerts: 'sr-strat.alerts', deadLetter: 'sr-strat.dlq' };
    for (const strategy of ['TopicNameStrategy', 'RecordNameStrategy', 'TopicRecordNameStrategy'] as const) {
      const client = new SchemaRegistryClient({ url: registry.url, subjectStrategy: strategy, timeoutMs: 5000 });
      const ids = await new TopicSchemaRegistry(client, topics).outputIds();
      const subjects = (await (await fetch(`${registry.url}/subjects`)).json()) as string[];
      for (const [role, name] of [['output', 'GuardedImage'], ['alerts', 'Alert'], ['deadLetter', 'DeadLetter']] as const) {
        const subject = subjectName(strategy, topics[role], `io.vqguard.${name}`);
        assert.ok(subjects.includes(subject), `${strategy}: subject ${subject} in ${subjects.join(', ')}`);
        const latest = (await (await fetch(`${registry.url}/subjects/${encodeURIComponent(subject)}/versions/latest`)).json()) as { id: number };
        const id = ids[role];
        assert.ok(id !== undefined, `${strategy}: an id for ${role}`);
        assert.equal(latest.id, id, `${strategy}: ${subject} has the id the client frames with`);
        assert.deepEqual(JSON.parse(await schemaText(registry.url, id)), JSON.parse(registeredSchema(name).text));
      }
    }
    assert.equal(subjectName('TopicNameStrategy', 'a.out', 'io.vqguard.GuardedImage'), 'a.out-value');
    assert.equal(subjectName('RecordNameStrategy', 'a.out', 'io.vqguard.GuardedImage'), 'io.vqguard.GuardedImage');
    assert.equal(subjectName('TopicRecordNameStrategy', 'a.out', 'io.vqguard.GuardedImage'), 'a.out-io.vqguard.GuardedImage');
  });

  test('writer schemas by id: known, unknown (unknown_schema), and a registry that does not answer (SchemaRegistryUnavailable)', async () => {
    const id = await registerSchema(registry.url, 'sr-client.in-value', writerAddsField);
    const client = new SchemaRegistryClient({ url: registry.url, subjectStrategy: 'TopicNameStrategy', timeoutMs: 5000 });
    const topic = new TopicSchemaRegistry(client, { output: 'o', alerts: 'a', deadLetter: 'd' });
    const [framed, unknown, plain] = await topic.writers([frameValue(id, Buffer.from([2, 0x41])), frameValue(987_654, Buffer.alloc(3)), Buffer.from([2, 0x41])]);
    assert.ok(framed?.ok && framed.id === id && (framed.writer as unknown as { fields: { name: string }[] }).fields.some((f) => f.name === 'camera'));
    assert.ok(unknown && !unknown.ok && unknown.reason === 'unknown_schema', JSON.stringify(unknown));
    assert.equal(plain, undefined, 'not framed: read as before');
    assert.equal(client.available, true);

    // A port nobody listens on: refused at once; the client says it is down (readiness reads this).
    const down = new SchemaRegistryClient({ url: `http://127.0.0.1:${await freePort()}/apis/ccompat/v7`, subjectStrategy: 'TopicNameStrategy', timeoutMs: 1000 });
    await assert.rejects(new TopicSchemaRegistry(down, { output: 'o', alerts: 'a', deadLetter: 'd' }).writers([frameValue(id, Buffer.alloc(2))]), SchemaRegistryUnavailable);
    assert.equal(down.available, false);
    assert.match(down.lastError ?? '', /ECONNREFUSED|fetch failed/);
  });
});

describe('Schema Registry through the guard (real registry, real broker)', { timeout: 900_000 }, () => {
  let broker: TestBroker;
  let registry: TestRegistry;
  let recs: SampleRecord[];

  before(async () => {
    [broker, registry] = await Promise.all([getTestBroker(), getTestRegistry()]);
    recs = await samples(12, { seed: 41, idPrefix: 'sr' });
  });
  after(async () => {
    await Promise.all([broker?.stop(), registry?.stop()]);
  });

  async function startGuard(t: GuardTopics, schemaRegistry: Record<string, unknown>, deadLetterFormat?: 'avro' | 'connect'): Promise<Guard> {
    await createTopics(broker.brokers, [t.input, t.output, t.deadLetter, t.alerts], 1);
    const guard = new Guard(registryConfig(t, broker.brokers, schemaRegistry, deadLetterFormat), { baseDir: REPO, httpPort: 0, logger: createLogger(new LogSink()) });
    await within(guard.start(), 120_000, 'guard.start()');
    await waitFor(() => guard.readiness().ready, 60_000, () => `ready: ${JSON.stringify(guard.readiness().checks)}`);
    return guard;
  }

  test('framed input (same schema, a newer and an older writer), an unknown id; framed outputs, alerts and dead letters', async () => {
    const t = guardTopics('sr-io');
    const subject = `${t.input}-value`;
    const same = await registerSchema(registry.url, subject, imageRecordSchema);
    const newer = await registerSchema(registry.url, subject, writerAddsField);
    const older = await registerSchema(registry.url, `${t.input}-older-value`, writerLacksFields);
    assert.equal(new Set([same, newer, older]).size, 3, 'three schema ids');

    const groups = { same: recs.slice(0, 4), newer: recs.slice(4, 8), older: recs.slice(8, 11) };
    const messages = [
      ...groups.same.map((r) => ({ key: r.id, value: frameValue(same, r.value), partition: 0 })),
      ...groups.newer.map((r) => ({ key: r.id, value: frameValue(newer, reencode(r, writerAddsField, { camera: 'cam-7' })), partition: 0 })),
      ...groups.older.map((r) => ({ key: r.id, value: frameValue(older, reencode(r, writerLacksFields)), partition: 0 })),
      { key: 'sr-unknown', value: frameValue(1_999_999, recs[11]!.value), partition: 0 },
    ];
    const guard = await startGuard(t, { url: registry.url });
    let got: Collected[];
    try {
      await produce(broker.brokers, t.input, messages);
      got = await collect(broker.brokers, [t.output, t.deadLetter, t.alerts], (g) => g.filter((m) => m.topic !== t.alerts).length >= messages.length, { timeoutMs: 120_000, lingerMs: 500 });
    } finally {
      await within(guard.stop(), 30_000, 'guard.stop()');
    }

    // Every value on every output topic is framed and decodes with the schema the registry serves for its id.
    const cache = new Map<number, avro.Type>();
    const decoded = await Promise.all(got.map(async (m) => ({ m, ...(await confluentDecode(registry.url, m.value, cache)) })));
    const outputs = decoded.filter((d) => d.m.topic === t.output);
    const dead = decoded.filter((d) => d.m.topic === t.deadLetter);
    const alerts = decoded.filter((d) => d.m.topic === t.alerts);
    assert.deepEqual(outputs.map((d) => d.record.id).sort(), [...groups.same, ...groups.newer, ...groups.older].map((r) => r.id).sort(), 'every known-schema record guarded, in both directions of evolution');
    assert.ok(outputs.every((d) => d.name === 'io.vqguard.GuardedImage'));
    const byId = new Map(outputs.map((d) => [d.record.id as string, d.record]));
    for (const r of groups.older) {
      const o = byId.get(r.id)!;
      assert.deepEqual(o.attributes, {}, 'older writer: attributes take the reader default');
      assert.equal(o.label, null, 'older writer: label takes the reader default');
    }
    for (const r of groups.same) assert.equal(byId.get(r.id)!.label, r.label, 'same schema: the label as sent');
    for (const r of groups.newer) assert.equal(byId.get(r.id)!.label, r.label, 'newer writer: known fields read, the extra one skipped');

    assert.equal(dead.length, 1, `one dead letter: ${dead.map((d) => `${d.record.reason}: ${d.record.detail}`).join('; ')}`);
    assert.equal(dead[0]!.name, 'io.vqguard.DeadLetter');
    assert.equal(dead[0]!.record.reason, 'unknown_schema');
    assert.match(String(dead[0]!.record.detail), /schema id 1999999 is not known/);
    assert.ok((dead[0]!.record.original as Buffer).equals(messages.at(-1)!.value), 'the dead letter keeps the framed original');
    assert.equal(dead[0]!.m.headers['vqguard-reason'], 'unknown_schema');
    assert.ok(alerts.every((d) => d.name === 'io.vqguard.Alert'), 'alerts framed with the Alert schema');
    assert.ok(alerts.length >= 1, `the adversarial records raise alerts (${alerts.length})`);

    // The subjects the guard registered (TopicNameStrategy).
    const subjects = (await (await fetch(`${registry.url}/subjects`)).json()) as string[];
    for (const s of [t.output, t.alerts, t.deadLetter]) assert.ok(subjects.includes(`${s}-value`), `subject ${s}-value`);
  });

  test('deadLetter format connect with a registry: the dead letter is the original bytes, neither framed nor registered; outputs stay framed', async () => {
    const t = guardTopics('sr-connect');
    const id = await registerSchema(registry.url, `${t.input}-value`, imageRecordSchema);
    const messages = [
      { key: recs[0]!.id, value: frameValue(id, recs[0]!.value), partition: 0 },
      { key: 'sr-unknown-c', value: frameValue(1_999_998, recs[1]!.value), partition: 0 },
    ];
    const guard = await startGuard(t, { url: registry.url }, 'connect');
    let got: Collected[];
    try {
      await produce(broker.brokers, t.input, messages);
      got = await collect(broker.brokers, [t.output, t.deadLetter], (g) => g.length >= 2, { timeoutMs: 120_000, lingerMs: 500 });
    } finally {
      await within(guard.stop(), 30_000, 'guard.stop()');
    }
    const dead = got.filter((m) => m.topic === t.deadLetter);
    const outs = got.filter((m) => m.topic === t.output);
    assert.equal(dead.length, 1);
    assert.ok(dead[0]!.value.equals(messages[1]!.value), 'the Connect dead letter is the original value, byte for byte (not re-framed)');
    assert.equal(dead[0]!.headers['vqguard-reason'], 'unknown_schema');
    assert.equal(outs.length, 1);
    const out = await confluentDecode(registry.url, outs[0]!.value, new Map());
    assert.equal(out.name, 'io.vqguard.GuardedImage', 'outputs still framed');
    const subjects = (await (await fetch(`${registry.url}/subjects`)).json()) as string[];
    assert.ok(subjects.includes(`${t.output}-value`));
    assert.ok(!subjects.includes(`${t.deadLetter}-value`), 'no DeadLetter subject for a Connect-format dead-letter topic');
  });

  test('registry outage: records wait (no dead letters, /readyz false), then flow when it answers again', async () => {
    if (registry.kind !== 'local') return assert.fail('the outage test needs the local registry (unset SCHEMA_REGISTRY_URL)');
    const t = guardTopics('sr-outage');
    const id = await registerSchema(registry.url, `${t.input}-value`, writerAddsField);
    const guard = await startGuard(t, { url: registry.url, timeoutMs: 1000 });
    const batch = recs.slice(0, 3).map((r) => ({ key: r.id, value: frameValue(id, reencode(r, writerAddsField, { camera: 'c' })), partition: 0 }));
    let frozen = false;
    try {
      // The guard has not fetched this id yet (and the output schemas are registered on the first record).
      registry.freeze();
      frozen = true;
      await produce(broker.brokers, t.input, batch);
      await waitFor(() => guard.readiness().checks.schemaRegistry === false, 30_000, () => `not ready while the registry is down: ${JSON.stringify(guard.readiness())}`);
      assert.equal(guard.readiness().ready, false);
      await sleep(4000);
      const during = await collect(broker.brokers, [t.output, t.deadLetter], () => false, { timeoutMs: 2000 });
      assert.equal(during.length, 0, `nothing produced while the registry is down: ${during.map((m) => m.topic).join(', ')}`);
      registry.thaw();
      frozen = false;
      const got = await collect(broker.brokers, [t.output, t.deadLetter], (g) => g.length >= batch.length, { timeoutMs: 60_000, lingerMs: 300 });
      assert.deepEqual(got.filter((m) => m.topic === t.deadLetter).length, 0, 'no record dead-lettered for the outage');
      const decoded = await Promise.all(got.map((m) => confluentDecode(registry.url, m.value)));
      assert.deepEqual(decoded.map((d) => d.record.id).sort(), batch.map((m) => m.key).sort());
      await waitFor(() => guard.readiness().ready, 30_000, () => `ready again: ${JSON.stringify(guard.readiness())}`);
    } finally {
      if (frozen) registry.thaw();
      await within(guard.stop(), 30_000, 'guard.stop()');
    }
  });
});
