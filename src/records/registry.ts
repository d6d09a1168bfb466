/**
 * Confluent Schema Registry, in and out (a topic's `schemaRegistry` setting).
 *
 * Wire format (Confluent): magic byte 0, the schema id as 4 bytes big-endian, then the Avro
 * binary body. In: a value that starts with byte 0 (and has at least 5 bytes) is framed; its
 * writer schema is fetched by id (GET /schemas/ids/{id}, cached for good: an id never changes its
 * schema) and the body is read with it, resolved against our reader schema (avsc createResolver,
 * through src/records/avro.ts, after the same bounded walk of the bytes), so a producer that adds
 * an optional field, or lacks a field the reader has with a default, is read. Any other value is
 * read as before (plain Avro, or a raw image). Out: the output, alert and dead-letter schemas are
 * registered (POST /subjects/{subject}/versions; the subject from the subject name strategy) and
 * every value sent to those topics is framed with its id, so KafkaAvroDeserializer, Connect's
 * AvroConverter, ksqlDB and confluent-kafka's AvroDeserializer read them.
 *
 * Failures: an id the registry does not know (HTTP 404) is the record's fault: `unknown_schema`
 * (dead-lettered). A registry that cannot be reached, times out (`timeoutMs`), answers 5xx, or
 * refuses to register a schema is not: SchemaRegistryUnavailable is thrown, the runner retries the
 * micro-batch with backoff without counting it against the records (nothing is dead-lettered,
 * nothing committed), and the guard is not ready (/readyz) until a request succeeds again.
 *
 * Works with any server speaking the Confluent API (Confluent, Apicurio's /apis/ccompat/v7,
 * Karapace, Redpanda). Secrets come from a file or the environment, never from the config file.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import avro from 'avsc';
import type { Type as AvroType } from 'avsc';
import { SCHEMA_DIR, type SchemaName } from './avro.ts';
import { cleanDetail, type Failure } from './reasons.ts';

/** Magic byte + 4-byte schema id. */
export const FRAME_BYTES = 5;
export const MAGIC_BYTE = 0;

export type SubjectStrategy = 'TopicNameStrategy' | 'RecordNameStrategy' | 'TopicRecordNameStrategy';

/** A topic's `schemaRegistry` setting (src/config/schema.ts validates it). */
export interface SchemaRegistrySettings {
  url: string;
  auth?: { username?: string; passwordFile?: string; passwordEnv?: string; tokenFile?: string; tokenEnv?: string };
  subjectStrategy: SubjectStrategy;
  timeoutMs: number;
}

/** The registry could not be reached or refused a request: retry later; not the record's fault. */
export class SchemaRegistryUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchemaRegistryUnavailable';
  }
}

/** `value` framed: magic byte 0, `id` big-endian, the Avro body. */
export function frameValue(id: number, body: Buffer): Buffer {
  const head = Buffer.alloc(FRAME_BYTES);
  head[0] = MAGIC_BYTE;
  head.writeUInt32BE(id, 1);
  return Buffer.concat([head, body]);
}

/** The schema id and body of a framed value; null when the value is not framed. */
export function parseFrame(value: Buffer): { id: number; body: Buffer } | null {
  if (value.length < FRAME_BYTES || value[0] !== MAGIC_BYTE) return null;
  return { id: value.readUInt32BE(1), body: value.subarray(FRAME_BYTES) };
}

/** The subject a topic's schema is registered under (Confluent's three strategies, value side). */
export function subjectName(strategy: SubjectStrategy, topic: string, recordFullName: string): string {
  switch (strategy) {
    case 'TopicNameStrategy':
      return `${topic}-value`;
    case 'RecordNameStrategy':
      return recordFullName;
    case 'TopicRecordNameStrategy':
      return `${topic}-${recordFullName}`;
  }
}

/** The Authorization header for the settings' auth (secrets read from file or environment now). */
export function registryAuthorization(s: SchemaRegistrySettings, opts: { env?: NodeJS.ProcessEnv; baseDir?: string } = {}): string | undefined {
  const a = s.auth;
  if (!a) return undefined;
  const env = opts.env ?? process.env;
  const secret = (file: string | undefined, envName: string | undefined, what: string): string => {
    if (file !== undefined) {
      const p = isAbsolute(file) ? file : resolve(opts.baseDir ?? process.cwd(), file);
      let text: string;
      try {
        text = readFileSync(p, 'utf8').replace(/\r?\n$/, '');
      } catch (e) {
        throw new Error(`schemaRegistry.auth.${what}File: cannot read ${p} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      if (!text) throw new Error(`schemaRegistry.auth.${what}File: ${p} is empty`);
      return text;
    }
    const v = envName === undefined ? undefined : env[envName];
    if (!v) throw new Error(`schemaRegistry.auth.${what}Env: environment variable ${envName} is not set`);
    return v;
  };
  if (a.username !== undefined) return `Basic ${Buffer.from(`${a.username}:${secret(a.passwordFile, a.passwordEnv, 'password')}`).toString('base64')}`;
  return `Bearer ${secret(a.tokenFile, a.tokenEnv, 'token')}`;
}

/** How a writer schema lookup ended for one framed value. */
export type WriterResult = { ok: true; id: number; writer: AvroType; body: Buffer } | Failure<'unknown_schema' | 'schema_mismatch'>;

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';
/** How long an id the registry did not know is remembered (a flood of them is not a flood of requests). */
const UNKNOWN_TTL_MS = 30_000;

/**
 * A client for one registry (URL + credentials): schemas by id (cached), registrations (cached
 * per subject and schema). Shared by every topic that names the same registry.
 */
export class SchemaRegistryClient {
  private readonly byId = new Map<number, Promise<AvroType | Failure<'unknown_schema' | 'schema_mismatch'>>>();
  private readonly unknownAt = new Map<number, number>();
  private readonly registered = new Map<string, Promise<number>>();
  private readonly base: string;
  /** False after a request failed for lack of the registry; true again after one succeeds. */
  available = true;
  /** The last failure (for logs and /readyz). */
  lastError: string | null = null;

  constructor(
    readonly settings: SchemaRegistrySettings,
    private readonly authorization?: string,
    private readonly fetchFn: typeof fetch = fetch,
  ) {
    this.base = settings.url.replace(/\/+$/, '');
  }

  private async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
    const headers: Record<string, string> = { accept: `${CONTENT_TYPE}, application/json` };
    if (body !== undefined) headers['content-type'] = CONTENT_TYPE;
    if (this.authorization) headers.authorization = this.authorization;
    let res: Response;
    let text: string;
    try {
      res = await this.fetchFn(`${this.base}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.settings.timeoutMs),
      });
      text = await res.text();
    } catch (e) {
      const err = e as Error & { cause?: { code?: string } };
      const why = err.name === 'TimeoutError' ? `no answer within ${this.settings.timeoutMs} ms` : cleanDetail(`${err.message}${err.cause?.code ? ` (${err.cause.code})` : ''}`, 200);
      throw this.down(`schema registry ${this.base}: ${method} ${path}: ${why}`);
    }
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (res.status >= 500 || res.status === 401 || res.status === 403 || res.status === 429) {
      throw this.down(`schema registry ${this.base}: ${method} ${path}: HTTP ${res.status} ${cleanDetail(errorMessage(json) ?? text, 200)}`);
    }
    return { status: res.status, json };
  }

  private down(message: string): SchemaRegistryUnavailable {
    this.available = false;
    this.lastError = message;
    return new SchemaRegistryUnavailable(message);
  }

  private up(): void {
    this.available = true;
    this.lastError = null;
  }

  /**
   * The writer schema of a schema id. Throws SchemaRegistryUnavailable when the registry cannot
   * answer; an unknown id or a schema that is not Avro is a Failure (the record's fault).
   */
  async schemaById(id: number): Promise<AvroType | Failure<'unknown_schema' | 'schema_mismatch'>> {
    const seen = this.unknownAt.get(id);
    if (seen !== undefined && Date.now() - seen < UNKNOWN_TTL_MS) return unknown(id, this.base);
    let p = this.byId.get(id);
    if (!p) {
      p = this.fetchSchema(id);
      this.byId.set(id, p);
      // Only answers are kept: an outage or an unknown id is asked again (later).
      p.then(
        (r) => {
          if (!(r instanceof avro.Type)) this.byId.delete(id);
          if (!(r instanceof avro.Type) && r.reason === 'unknown_schema') {
            if (this.unknownAt.size >= 10_000) this.unknownAt.clear(); // hostile input: random ids stay bounded
            this.unknownAt.set(id, Date.now());
          }
        },
        () => this.byId.delete(id),
      );
    }
    return p;
  }

  private async fetchSchema(id: number): Promise<AvroType | Failure<'unknown_schema' | 'schema_mismatch'>> {
    const { status, json } = await this.request('GET', `/schemas/ids/${id}`);
    if (status === 404) {
      this.up();
      return unknown(id, this.base);
    }
    if (status !== 200 || !isObj(json) || typeof json.schema !== 'string') {
      throw this.down(`schema registry ${this.base}: GET /schemas/ids/${id}: unexpected answer HTTP ${status} ${cleanDetail(errorMessage(json) ?? '', 120)}`);
    }
    this.up();
    const type = typeof json.schemaType === 'string' ? json.schemaType.toUpperCase() : 'AVRO';
    if (type !== 'AVRO') return { ok: false, reason: 'schema_mismatch', detail: `schema id ${id} is a ${type} schema; this topic reads Avro` };
    try {
      return avro.Type.forSchema(JSON.parse(json.schema) as avro.Schema);
    } catch (e) {
      return { ok: false, reason: 'schema_mismatch', detail: `schema id ${id} is not a usable Avro schema: ${cleanDetail((e as Error).message, 160)}` };
    }
  }

  /** Registers `schemaText` under `subject` (idempotent: the registry answers the existing id). */
  register(subject: string, schemaText: string): Promise<number> {
    const key = `${subject}\n${schemaText}`;
    let p = this.registered.get(key);
    if (!p) {
      p = this.postSchema(subject, schemaText);
      this.registered.set(key, p);
      p.catch(() => this.registered.delete(key));
    }
    return p;
  }

  private async postSchema(subject: string, schemaText: string): Promise<number> {
    const path = `/subjects/${encodeURIComponent(subject)}/versions`;
    const { status, json } = await this.request('POST', path, { schema: schemaText });
    if (status !== 200 || !isObj(json) || typeof json.id !== 'number') {
      // 409 (incompatible with the subject's compatibility rule), 422 (invalid): an operator must act; the records wait.
      throw this.down(`schema registry ${this.base}: cannot register subject "${subject}": HTTP ${status} ${cleanDetail(errorMessage(json) ?? '', 200)}`);
    }
    this.up();
    return json.id;
  }
}

function unknown(id: number, base: string): Failure<'unknown_schema'> {
  return { ok: false, reason: 'unknown_schema', detail: `schema id ${id} is not known to the schema registry ${base}` };
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function errorMessage(json: unknown): string | undefined {
  if (!isObj(json)) return undefined;
  const m = json.message ?? json.error_code;
  return m === undefined ? undefined : String(m);
}

const clients = new Map<string, SchemaRegistryClient>();

/** One client per registry URL and credentials (so topics share its caches). */
export function schemaRegistryClient(s: SchemaRegistrySettings, opts: { env?: NodeJS.ProcessEnv; baseDir?: string } = {}): SchemaRegistryClient {
  const authorization = registryAuthorization(s, opts);
  const key = JSON.stringify([s.url.replace(/\/+$/, ''), authorization ?? '', s.timeoutMs]);
  let c = clients.get(key);
  if (!c) clients.set(key, (c = new SchemaRegistryClient(s, authorization)));
  return c;
}

/** The schema ids a topic's outputs are framed with. */
export interface OutputSchemaIds {
  output: number;
  alerts: number;
  /** Absent when the dead letters are Connect-format (the original bytes, never framed). */
  deadLetter?: number;
}

const schemaTexts = new Map<SchemaName, { text: string; fullName: string }>();
/** A record schema as registered: schemas/<name>.avsc, compact JSON (its docs and defaults kept). */
export function registeredSchema(name: SchemaName): { text: string; fullName: string } {
  let s = schemaTexts.get(name);
  if (!s) {
    const json = JSON.parse(readFileSync(new URL(`${name}.avsc`, SCHEMA_DIR), 'utf8')) as { name: string; namespace?: string };
    const fullName = json.name.includes('.') || !json.namespace ? json.name : `${json.namespace}.${json.name}`;
    schemaTexts.set(name, (s = { text: JSON.stringify(json), fullName }));
  }
  return s;
}

/** One input topic's use of a registry: reading framed input, registering and framing its outputs. */
export class TopicSchemaRegistry {
  constructor(
    readonly client: SchemaRegistryClient,
    /** deadLetter undefined: Connect-format dead letters (not registered, not framed). */
    readonly topics: { output: string; alerts: string; deadLetter: string | undefined },
  ) {}

  /** The output schema ids once registered (for refitting a micro-batch). */
  ids: OutputSchemaIds | undefined;

  get available(): boolean {
    return this.client.available;
  }

  /** Registers the three output schemas (cached after the first success). Throws SchemaRegistryUnavailable. */
  async outputIds(): Promise<OutputSchemaIds> {
    const strategy = this.client.settings.subjectStrategy;
    const reg = (topic: string, name: SchemaName) => {
      const s = registeredSchema(name);
      return this.client.register(subjectName(strategy, topic, s.fullName), s.text);
    };
    // One after the other: three requests, once per topic; no need to load the registry with concurrent writes.
    const output = await reg(this.topics.output, 'GuardedImage');
    const alerts = await reg(this.topics.alerts, 'Alert');
    const deadLetter = this.topics.deadLetter === undefined ? undefined : await reg(this.topics.deadLetter, 'DeadLetter');
    this.ids = { output, alerts, ...(deadLetter === undefined ? {} : { deadLetter }) };
    return this.ids;
  }

  /**
   * For each value: undefined when it is not framed (read as before), else its writer schema and
   * body, or the failure (unknown id, not Avro). Throws SchemaRegistryUnavailable.
   */
  async writers(values: (Buffer | null)[]): Promise<(WriterResult | undefined)[]> {
    const frames = values.map((v) => (v ? parseFrame(v) : null));
    const ids = [...new Set(frames.flatMap((f) => (f ? [f.id] : [])))];
    const found = new Map(await Promise.all(ids.map(async (id) => [id, await this.client.schemaById(id)] as const)));
    return frames.map((f) => {
      if (!f) return undefined;
      const w = found.get(f.id)!;
      return w instanceof avro.Type ? { ok: true as const, id: f.id, writer: w, body: f.body } : w;
    });
  }
}
