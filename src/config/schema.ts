/**
 * The guard configuration: zod schemas (strict: an unknown key is an error), defaults, cross-field
 * checks, and `parseConfig(raw)` which returns a fully defaulted GuardConfig or throws a
 * ConfigError listing every problem with its path, e.g.
 *   topics[0].pipeline: unknown pipeline stage "spilt2": expected full, split<k> (k = 1..99), bits<n> ...
 *   topics[1]: unknown key "ouput" (did you mean "output"?)
 *   kafka.brokers: required (a list of host:port, or set KAFKA_BROKERS)
 * Paths (models, calibration, TLS files) are kept as written; resolve them against a base folder.
 */
import { z } from 'zod';
import { parsePipeline } from '../purify/stages/index.ts';
import { DEFAULT_IMAGE_POLICY, IMAGE_FORMATS, type ImageFormat } from '../image/policy.ts';

// ---------------------------------------------------------------------------------------------
// Output types: derived from the schemas below (z.infer), adjusted only where parseConfig
// resolves a default from elsewhere (brokers from KAFKA_BROKERS, a topic's models and alerts
// from the global ones, `pipeline` normalised to the list `pipelines`).

export const SCORE_NAMES = ['labelFlip', 'l1', 'js', 'recon', 'reconWorstTile', 'combined'] as const;
export type ScoreName = (typeof SCORE_NAMES)[number];

export type SslConfig = z.infer<typeof sslSchema>;
/** Inline password: allowed, but passwordFile or passwordEnv is recommended. */
export type SaslConfig = z.infer<typeof saslSchema>;
export type SaslMechanism = SaslConfig['mechanism'];
export type KafkaConfig = Omit<z.infer<typeof kafkaSchema>, 'brokers'> & { brokers: string[] };
export type WebhookConfig = z.infer<typeof webhookSchema>;
/** outputFormat png: always PNG; input: the input's format (PNG for SVG input). */
export type ImageConfig = z.infer<typeof imageSchema>;
export type TopicAction = z.infer<typeof topicSchema>['action'];
export type TopicConfig = Omit<z.infer<typeof topicSchema>, 'pipeline' | 'models' | 'alerts' | 'deadLetter'> & {
  /** Dead-letter topic name. */
  deadLetter: string;
  /** avro: the DeadLetter envelope (schemas/DeadLetter.avsc); connect: Kafka Connect's DLQ convention. */
  deadLetterFormat: DeadLetterFormat;
  /** One or more pipeline specs (`split2>full`, `adv:full`); several are combined by detection. */
  pipelines: string[];
  /** Model set folder (default: the global `models`). */
  models: string;
  /** Alert topic (default: alerts.topic). */
  alerts: string;
};
export type GuardConfig = Omit<z.infer<typeof configSchema>, 'kafka' | 'topics'> & { kafka: KafkaConfig; topics: TopicConfig[] };

/** A comma-separated broker list (--brokers, KAFKA_BROKERS): trimmed, empty entries dropped. */
export function parseBrokerList(s: string | undefined): string[] {
  return (s ?? '').split(',').map((b) => b.trim()).filter(Boolean);
}

/** Brokers from an option (--brokers) when given, else from KAFKA_BROKERS (may be empty). */
export function brokersFromEnv(opt?: string, env: NodeJS.ProcessEnv = process.env): string[] {
  return parseBrokerList(opt ?? env.KAFKA_BROKERS);
}

/** As brokersFromEnv, but none is an error. */
export function requiredBrokers(opt?: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const list = brokersFromEnv(opt, env);
  if (!list.length) throw new Error('no Kafka brokers: pass --brokers or set KAFKA_BROKERS');
  return list;
}

// --- consumer: timeouts, crash recovery, poison records, size limits (issue 13) -----------------
/** Group and transaction timeouts, crash recovery and poison-record handling of the runner. */
export interface ConsumerConfig {
  /** Group session timeout: a member silent this long loses its partitions. */
  sessionTimeoutMs: number;
  /** Time the group waits for members to rejoin during a rebalance. */
  rebalanceTimeoutMs: number;
  /** Heartbeat interval (at most a third of the session timeout). */
  heartbeatIntervalMs: number;
  /** Transaction timeout (exactly-once mode); below the session timeout so a frozen member's open transaction is aborted before its partitions move. */
  transactionTimeoutMs: number;
  /** Failed attempts of the same record before it is dead-lettered as `poison`. */
  poisonAttempts: number;
  /** Backoff between attempts to recreate a crashed consumer: first and largest wait. */
  restartBackoffMs: number;
  restartBackoffMaxMs: number;
  /** Give up recreating a crashed consumer after this long and exit non-zero (exit code 3). */
  restartGiveUpMs: number;
  /** The producer's own limit on one message (and one batch per topic): min'd with each topic's max.message.bytes. */
  producerMaxMessageBytes: number;
  /** Fetch sizes (Kafka's max.partition.fetch.bytes, fetch.max.bytes, fetch.min.bytes). */
  maxBytesPerPartition: number;
  maxBytes: number;
  minBytes: number;
  /** Longest a fetch waits for minBytes (fetch.max.wait.ms); default: the smallest topic maxBatchWaitMs, at most 500. */
  maxWaitTimeMs?: number;
}

export const CONSUMER_DEFAULTS: ConsumerConfig = {
  sessionTimeoutMs: 10_000,
  rebalanceTimeoutMs: 30_000,
  heartbeatIntervalMs: 1_000,
  transactionTimeoutMs: 6_000,
  poisonAttempts: 3,
  restartBackoffMs: 500,
  restartBackoffMaxMs: 10_000,
  restartGiveUpMs: 120_000,
  producerMaxMessageBytes: 1_048_576,
  maxBytesPerPartition: 1_048_576,
  maxBytes: 10_485_760,
  minBytes: 1,
};

/** Compression of what the guard produces (outputs, alerts, dead letters): gzip built in, the others through their kafkajs codecs (src/kafka/codecs.ts). */
export const COMPRESSIONS = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const;
export type Compression = (typeof COMPRESSIONS)[number];
// --- end consumer --------------------------------------------------------------------------------

/** An invalid configuration (file, model bundles, topics): the CLI exits 78 (EX_CONFIG). */
export class ConfigError extends Error {
  readonly exitCode = 78;
  constructor(
    readonly problems: string[],
    source?: string,
  ) {
    super(`invalid configuration${source ? ` in ${source}` : ''}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

// ---------------------------------------------------------------------------------------------
// Schemas

const TOPIC_RE = /^[A-Za-z0-9._-]{1,249}$/;
const BROKER_RE = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

const topicName = z.string().regex(TOPIC_RE, 'not a valid Kafka topic name (letters, digits, ".", "_", "-"; 1 to 249 characters)');
const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const path = z.string().min(1);
export const brokerAddress = z.string().regex(BROKER_RE, 'expected host:port');

/** A pipeline spec: optional variant prefix (adv: / clean:), then stages joined by '>' (src/purify/stages/). */
export const pipelineSpec = z.string().superRefine((s, ctx) => {
  try {
    parsePipeline(s);
  } catch (e) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: (e as Error).message });
  }
});

const sslSchema = z
  .object({
    enabled: z.boolean().default(true),
    caFile: path.optional(),
    certFile: path.optional(),
    keyFile: path.optional(),
    rejectUnauthorized: z.boolean().default(true),
  })
  .strict()
  .superRefine((s, ctx) => {
    if ((s.certFile === undefined) !== (s.keyFile === undefined)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'certFile and keyFile go together (client certificate authentication needs both)' });
    }
  });

const saslSchema = z
  .object({
    mechanism: z.enum(['scram-sha-256', 'scram-sha-512', 'plain']),
    username: z.string().min(1),
    password: z.string().min(1).optional(),
    passwordFile: path.optional(),
    passwordEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name').optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const given = (['password', 'passwordFile', 'passwordEnv'] as const).filter((k) => s[k] !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        message: `give exactly one of password, passwordFile, passwordEnv (${given.length ? `got ${given.join(' and ')}` : 'got none'}); passwordFile or passwordEnv is recommended`,
      });
    }
  });

const kafkaSchema = z
  .object({
    brokers: z.array(brokerAddress).min(1, 'at least one broker').optional(),
    clientId: z.string().min(1).default('vqguard'),
    groupId: z.string().min(1).default('vqguard'),
    ssl: sslSchema.optional(),
    sasl: saslSchema.optional(),
    // Where a group with no committed offset starts: earliest (every retained record, the default:
    // nothing slips through unguarded) or latest (only records produced from now on).
    autoOffsetReset: z.enum(['earliest', 'latest']).default('earliest'),
    // At start-up, check that every input, output, alert and dead-letter topic exists (exit 78 naming
    // the missing ones) instead of relying on auto-creation.
    checkTopics: z.boolean().default(true),
  })
  .strict();

const producerSchema = z
  .object({
    compression: z.enum(COMPRESSIONS).default('none'),
  })
  .strict()
  .default({});

const webhookSchema = z
  .object({
    url: z
      .string()
      .url()
      .refine((u) => /^https?:\/\//i.test(u), 'expected an http(s) URL'),
    timeoutMs: posInt.default(2000),
    retries: nonNegInt.default(3),
    backoffMs: nonNegInt.default(200),
    ratePerSec: z.number().positive().default(10),
  })
  .strict();

const imageSchema = z
  .object({
    maxBytes: posInt.default(DEFAULT_IMAGE_POLICY.maxBytes),
    maxPixels: posInt.default(DEFAULT_IMAGE_POLICY.maxPixels),
    formats: z
      .array(z.enum(IMAGE_FORMATS as [ImageFormat, ...ImageFormat[]]))
      .min(1)
      .default([...DEFAULT_IMAGE_POLICY.formats]),
    colour: z.enum(['grey', 'rgb']).default('grey'),
    width: posInt.max(16384).default(28),
    height: posInt.max(16384).default(28),
    resize: z.enum(['reject', 'fill', 'contain', 'cover']).default(DEFAULT_IMAGE_POLICY.resize),
    colourMismatch: z.enum(['convert', 'reject']).default(DEFAULT_IMAGE_POLICY.colourMismatch),
    alpha: z.enum(['flatten', 'reject']).default('flatten'),
    animated: z.enum(['first-frame', 'reject']).default('first-frame'),
    highBitDepth: z.enum(['convert', 'reject']).default('convert'),
    cmyk: z.enum(['convert', 'reject']).default('convert'),
    outputFormat: z.enum(['png', 'input']).default('png'),
  })
  .strict()
  .superRefine((im, ctx) => {
    if (im.width * im.height > im.maxPixels) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['maxPixels'], message: `must be at least width x height (${im.width * im.height})` });
    }
  })
  .default({});

// --- consumer (issue 13) -------------------------------------------------------------------------
/** Broker bounds: group.min/max.session.timeout.ms (6 s / 30 min) and transaction.max.timeout.ms (15 min) defaults. */
const consumerSchema = z
  .object({
    sessionTimeoutMs: z.number().int().min(6_000).max(1_800_000).default(CONSUMER_DEFAULTS.sessionTimeoutMs),
    rebalanceTimeoutMs: posInt.default(CONSUMER_DEFAULTS.rebalanceTimeoutMs),
    heartbeatIntervalMs: z.number().int().min(100).default(CONSUMER_DEFAULTS.heartbeatIntervalMs),
    transactionTimeoutMs: z.number().int().min(1_000).max(900_000).default(CONSUMER_DEFAULTS.transactionTimeoutMs),
    poisonAttempts: posInt.max(100).default(CONSUMER_DEFAULTS.poisonAttempts),
    restartBackoffMs: posInt.default(CONSUMER_DEFAULTS.restartBackoffMs),
    restartBackoffMaxMs: posInt.default(CONSUMER_DEFAULTS.restartBackoffMaxMs),
    restartGiveUpMs: posInt.default(CONSUMER_DEFAULTS.restartGiveUpMs),
    producerMaxMessageBytes: z.number().int().min(1024).default(CONSUMER_DEFAULTS.producerMaxMessageBytes),
    maxBytesPerPartition: z.number().int().min(1024).max(2_147_483_647).default(CONSUMER_DEFAULTS.maxBytesPerPartition),
    maxBytes: z.number().int().min(1024).max(2_147_483_647).default(CONSUMER_DEFAULTS.maxBytes),
    minBytes: z.number().int().min(1).max(2_147_483_647).default(CONSUMER_DEFAULTS.minBytes),
    maxWaitTimeMs: z.number().int().min(0).max(30_000).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    const issue = (path: string, message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, path: [path], message });
    if (c.heartbeatIntervalMs * 3 > c.sessionTimeoutMs) issue('heartbeatIntervalMs', `must be at most a third of sessionTimeoutMs (${c.sessionTimeoutMs})`);
    if (c.rebalanceTimeoutMs < c.sessionTimeoutMs) issue('rebalanceTimeoutMs', `must be at least sessionTimeoutMs (${c.sessionTimeoutMs})`);
    if (c.transactionTimeoutMs >= c.sessionTimeoutMs) {
      issue('transactionTimeoutMs', `must be below sessionTimeoutMs (${c.sessionTimeoutMs}): a frozen member's open transaction holds back read_committed readers until the broker aborts it`);
    }
    if (c.restartBackoffMaxMs < c.restartBackoffMs) issue('restartBackoffMaxMs', `must be at least restartBackoffMs (${c.restartBackoffMs})`);
    if (c.restartGiveUpMs < c.sessionTimeoutMs) issue('restartGiveUpMs', `must be at least sessionTimeoutMs (${c.sessionTimeoutMs})`);
    if (c.maxBytesPerPartition > c.maxBytes) issue('maxBytesPerPartition', `must be at most maxBytes (${c.maxBytes})`);
    if (c.minBytes > c.maxBytes) issue('minBytes', `must be at most maxBytes (${c.maxBytes})`);
    if (c.maxWaitTimeMs !== undefined && c.maxWaitTimeMs * 3 > c.sessionTimeoutMs) issue('maxWaitTimeMs', `must be at most a third of sessionTimeoutMs (${c.sessionTimeoutMs}): a fetch waiting longer delays heartbeats`);
  })
  .default({});
// --- end consumer --------------------------------------------------------------------------------

// --- Confluent Schema Registry (issue 18; client: src/records/registry.ts) ----------------------
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name');
/** Basic (username + password) or bearer-token authentication; secrets only from a file or the environment. */
const registryAuthSchema = z
  .object({
    username: z.string().min(1).optional(),
    passwordFile: path.optional(),
    passwordEnv: envName.optional(),
    tokenFile: path.optional(),
    tokenEnv: envName.optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    const issue = (message: string) => ctx.addIssue({ code: z.ZodIssueCode.custom, message });
    const password = [a.passwordFile, a.passwordEnv].filter((x) => x !== undefined).length;
    const token = [a.tokenFile, a.tokenEnv].filter((x) => x !== undefined).length;
    if (a.username !== undefined && token) issue('give either username with passwordFile or passwordEnv (basic), or tokenFile or tokenEnv (bearer), not both');
    else if (a.username !== undefined && password !== 1) issue('basic authentication: give username and exactly one of passwordFile, passwordEnv');
    else if (a.username === undefined && password) issue('passwordFile and passwordEnv need username');
    else if (a.username === undefined && token !== 1) issue('give username with passwordFile or passwordEnv (basic), or exactly one of tokenFile, tokenEnv (bearer)');
  });

export const SUBJECT_STRATEGIES = ['TopicNameStrategy', 'RecordNameStrategy', 'TopicRecordNameStrategy'] as const;
export type SchemaRegistryConfig = z.infer<typeof schemaRegistrySchema>;
const schemaRegistrySchema = z
  .object({
    url: z
      .string()
      .url()
      .refine((u) => /^https?:\/\//i.test(u), 'expected an http(s) URL')
      .refine((u) => !/^https?:\/\/[^/]*@/i.test(u), 'no credentials in the URL: use auth (passwordEnv, tokenEnv, ...)'),
    auth: registryAuthSchema.optional(),
    subjectStrategy: z.enum(SUBJECT_STRATEGIES).default('TopicNameStrategy'),
    timeoutMs: posInt.max(120_000).default(5000),
  })
  .strict();
// --- end Schema Registry -------------------------------------------------------------------------
export const DEAD_LETTER_FORMATS = ['avro', 'connect'] as const;
export type DeadLetterFormat = (typeof DEAD_LETTER_FORMATS)[number];
const deadLetterSchema = z.object({ topic: topicName, format: z.enum(DEAD_LETTER_FORMATS).default('avro') }).strict();

const thresholdsSchema = z
  .record(z.number().finite())
  .refine((t) => Object.keys(t).length > 0, `give at least one threshold (${SCORE_NAMES.join(', ')})`);

const pipelineField = z.union([pipelineSpec, z.array(pipelineSpec).min(1, 'at least one pipeline')], {
  errorMap: () => ({ message: 'expected a pipeline such as "split2>full", or a list of them' }),
});

const topicSchema = z
  .object({
    input: topicName.optional(),
    inputPattern: z.string().min(1).optional(),
    format: z.enum(['avro', 'raw', 'auto']).default('auto'),
    pipeline: pipelineField,
    models: path.optional(),
    calibration: path.optional(),
    thresholds: thresholdsSchema.optional(),
    action: z.enum(['forward-cleaned', 'forward-original', 'quarantine']).default('forward-cleaned'),
    output: topicName,
    // A topic name (the Avro DeadLetter envelope), or { topic, format: avro | connect } (connect: the
    // original key, value, headers and timestamp verbatim, the context in __connect.errors.* headers).
    deadLetter: z.union([topicName, deadLetterSchema], { errorMap: () => ({ message: 'expected a topic name, or { topic, format: avro | connect }' }) }),
    alerts: topicName.optional(),
    maxBatchSize: posInt.default(64),
    maxBatchWaitMs: nonNegInt.default(20),
    image: imageSchema,
    // Confluent Schema Registry: framed Avro in (writer schema by id), framed Avro out.
    schemaRegistry: schemaRegistrySchema.optional(),
  })
  .strict()
  .superRefine((t, ctx) => {
    if ((t.input === undefined) === (t.inputPattern === undefined)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'give exactly one of input and inputPattern' });
    }
    if (t.inputPattern !== undefined) {
      try {
        new RegExp(t.inputPattern);
      } catch (e) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['inputPattern'], message: `not a valid regular expression: ${(e as Error).message}` });
      }
    }
    if (t.thresholds !== undefined) {
      const pipelines = (Array.isArray(t.pipeline) ? t.pipeline : [t.pipeline]).map((p) => p.trim());
      const allowed = new Set<string>([...SCORE_NAMES, ...pipelines.flatMap((p) => SCORE_NAMES.map((n) => `${p}:${n}`))]);
      for (const k of Object.keys(t.thresholds)) {
        if (!allowed.has(k)) {
          ctx.addIssue({
            code: z.ZodIssueCode.custom,
            path: ['thresholds', k],
            message: `unknown score "${k}": expected ${SCORE_NAMES.join(', ')}${pipelines.length > 1 ? ', or <pipeline>:<score>' : ''}`,
          });
        }
      }
    }
  });

export const configSchema = z
  .object({
    consumer: consumerSchema,
    producer: producerSchema,
    kafka: kafkaSchema.default({}),
    transactions: z.boolean().default(false),
    http: z
      .object({ port: z.number().int().min(0).max(65535).default(9464), host: z.string().min(1).default('0.0.0.0') })
      .strict()
      .default({}),
    models: path.default('models/mnist'),
    maxInFlight: posInt.default(2048),
    shutdownTimeoutMs: posInt.default(15000),
    alerts: z.object({ topic: topicName.default('vqguard.alerts'), webhook: webhookSchema.optional() }).strict().default({}),
    topics: z.array(topicSchema).min(1, 'at least one topic is required'),
    backend: z.enum(['auto', 'cpu', 'cuda', 'webgpu']).default('auto'),
    /**
     * Worker threads for image decode and encode (src/consumer/imagePool.ts): 0 = on the main
     * thread; auto = one per core but one when there are at least 4 cores, else 0.
     */
    workers: z.union([z.literal('auto'), z.number().int().min(0).max(256)]).default('auto'),
  })
  .strict();

/**
 * Checks across topics, run on the raw document (so they are reported together with field
 * errors), reading only values of the right type and applying the defaults.
 */
function crossChecks(raw: unknown): string[] {
  const out: string[] = [];
  const root = isObj(raw) ? raw : {};
  const topics = Array.isArray(root.topics) ? root.topics : [];
  const alertsDefault = str(isObj(root.alerts) ? root.alerts.topic : undefined) ?? 'vqguard.alerts';
  const maxInFlight = typeof root.maxInFlight === 'number' ? root.maxInFlight : 2048;
  const seen = new Map<string, number>();
  topics.forEach((t: unknown, i: number) => {
    if (!isObj(t)) return;
    const input = str(t.input);
    const pattern = str(t.inputPattern);
    const where = (f: string) => `topics[${i}].${f}`;
    const key = input !== undefined ? `input "${input}"` : pattern !== undefined ? `inputPattern "${pattern}"` : undefined;
    if (key) {
      const prev = seen.get(key);
      if (prev !== undefined) out.push(`${where(input !== undefined ? 'input' : 'inputPattern')}: same ${key} as topics[${prev}]`);
      else seen.set(key, i);
    }
    let re: RegExp | null = null;
    try {
      re = pattern !== undefined ? new RegExp(pattern) : null;
    } catch {
      re = null;
    }
    const dl = str(t.deadLetter) ?? (isObj(t.deadLetter) ? str(t.deadLetter.topic) : undefined);
    const outs: [string, string | undefined][] = [['output', str(t.output)], ['deadLetter', dl], ['alerts', str(t.alerts) ?? alertsDefault]];
    for (const [field, name] of outs) {
      if (name === undefined) continue;
      if (input !== undefined && name === input) out.push(`${where(field)}: ${field} topic "${name}" is the input topic (a loop)`);
      if (re && re.test(name)) out.push(`${where(field)}: ${field} topic "${name}" matches inputPattern (a loop)`);
    }
    if (dl !== undefined && dl === t.output) out.push(`${where('deadLetter')}: must differ from output`);
    if (typeof t.maxBatchSize === 'number' && t.maxBatchSize > maxInFlight) out.push(`${where('maxBatchSize')}: must not exceed maxInFlight (${maxInFlight})`);
  });
  return out;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

// ---------------------------------------------------------------------------------------------
// Parsing

export interface ParseOptions {
  /** Environment for KAFKA_BROKERS (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Name of the source (a file path) for the error message. */
  source?: string;
}

/** Validates a parsed YAML/JSON document and fills in every default. Throws ConfigError. */
export function parseConfig(raw: unknown, opts: ParseOptions = {}): GuardConfig {
  const env = opts.env ?? process.env;
  if (raw === null || raw === undefined) throw new ConfigError(['the configuration is empty'], opts.source);
  const r = configSchema.safeParse(raw);
  const problems = [...(r.success ? [] : formatIssues(r.error.issues, raw)), ...crossChecks(raw)];

  let brokers: string[] | undefined;
  const given = (raw as { kafka?: { brokers?: unknown } })?.kafka?.brokers;
  if (given === undefined) {
    const fromEnv = parseBrokerList(env.KAFKA_BROKERS);
    if (fromEnv.length === 0) problems.push('kafka.brokers: required (a list of host:port, or set KAFKA_BROKERS)');
    for (const b of fromEnv) if (!BROKER_RE.test(b)) problems.push(`KAFKA_BROKERS: "${b}" is not host:port`);
    brokers = fromEnv;
  }
  if (problems.length || !r.success) throw new ConfigError([...new Set(problems)], opts.source);

  const c = r.data;
  return {
    ...c,
    kafka: { ...c.kafka, brokers: c.kafka.brokers ?? brokers! },
    topics: c.topics.map(({ pipeline, deadLetter, ...t }) => ({
      ...t,
      deadLetter: typeof deadLetter === 'string' ? deadLetter : deadLetter.topic,
      deadLetterFormat: typeof deadLetter === 'string' ? 'avro' : deadLetter.format,
      pipelines: (Array.isArray(pipeline) ? pipeline : [pipeline]).map((p) => p.trim()),
      models: t.models ?? c.models,
      alerts: t.alerts ?? c.alerts.topic,
    })),
  };
}

/** `topics[0].image.width` */
export function formatPath(p: readonly (string | number)[]): string {
  let s = '';
  for (const seg of p) s += typeof seg === 'number' ? `[${seg}]` : s ? `.${seg}` : seg;
  return s || '(top level)';
}

function formatIssues(issues: z.ZodIssue[], raw: unknown): string[] {
  const out: string[] = [];
  for (const is of issues) {
    const where = formatPath(is.path);
    if (is.code === z.ZodIssueCode.unrecognized_keys) {
      const known = knownKeys(configSchema, is.path);
      for (const k of is.keys) {
        const near = suggest(k, known);
        out.push(`${where}: unknown key "${k}"${near ? ` (did you mean "${near}"?)` : ''}`);
      }
    } else if (is.code === z.ZodIssueCode.invalid_type && is.received === 'undefined') {
      out.push(`${where}: required${where === 'topics' ? ' (a list of at least one topic)' : ''}`);
    } else if (is.code === z.ZodIssueCode.invalid_type) {
      out.push(`${where}: expected ${is.expected}, got ${is.received}`);
    } else if (is.code === z.ZodIssueCode.invalid_enum_value) {
      out.push(`${where}: "${String(valueAt(raw, is.path))}" is not one of ${is.options.map((o) => `"${String(o)}"`).join(', ')}`);
    } else {
      out.push(`${where}: ${is.message}`);
    }
  }
  return [...new Set(out)];
}

function valueAt(raw: unknown, p: readonly (string | number)[]): unknown {
  let v = raw;
  for (const seg of p) v = v !== null && typeof v === 'object' ? (v as Record<string | number, unknown>)[seg] : undefined;
  return v;
}

/** Keys of the object schema at a path (for "did you mean"). */
function knownKeys(schema: z.ZodTypeAny, p: readonly (string | number)[]): string[] {
  let s: z.ZodTypeAny | undefined = schema;
  const unwrap = (x: z.ZodTypeAny): z.ZodTypeAny => {
    for (;;) {
      if (x instanceof z.ZodDefault) x = x._def.innerType;
      else if (x instanceof z.ZodOptional) x = x.unwrap();
      else if (x instanceof z.ZodEffects) x = x.innerType();
      else return x;
    }
  };
  for (const seg of p) {
    s = unwrap(s);
    if (typeof seg === 'number' && s instanceof z.ZodArray) s = s.element;
    else if (typeof seg === 'string' && s instanceof z.ZodObject) s = (s.shape as Record<string, z.ZodTypeAny>)[seg];
    else return [];
    if (!s) return [];
  }
  s = unwrap(s);
  return s instanceof z.ZodObject ? Object.keys(s.shape as object) : [];
}

function suggest(k: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of known) {
    const d = c.toLowerCase() === k.toLowerCase() ? 0 : editDistance(k.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(1, Math.min(2, Math.floor(k.length / 3))) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  // optimal string alignment: insertions, deletions, substitutions, adjacent transpositions
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
