/**
 * Reading the guard configuration (YAML or JSON), checking the model bundles it needs, reading
 * its secrets, and a redacted copy for logging.
 */
import { existsSync, readFileSync } from 'node:fs';
import { extname, isAbsolute, join, resolve } from 'node:path';
import YAML, { isMap, isScalar, isSeq, type Node as YamlNode } from 'yaml';
import { readManifest, readModelSetFile } from '../models/manifest.ts';
import { readDeclarationFile } from '../models/formats/declaration.ts';
import { pipelineBundles } from '../purify/stages/index.ts';
import { ConfigError, parseConfig, type GuardConfig, type SaslMechanism } from './schema.ts';

export { ConfigError } from './schema.ts';
export type { GuardConfig, TopicConfig, ImageConfig, KafkaConfig } from './schema.ts';

export interface LoadOptions {
  /** Environment for KAFKA_BROKERS and ${VAR} references (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/**
 * Reads and validates a configuration file (.yaml / .yml / .json; anything else is read as YAML).
 * String values may reference the environment: `${VAR}`, or `${VAR:default}` (the default is used
 * when VAR is unset or empty); `$${` writes a literal `${`. In YAML, an unquoted value that is one
 * whole reference takes the type of what it expands to (`port: ${PORT:9464}` is a number,
 * `enabled: ${TLS:false}` a boolean); quoted, and in JSON, it stays a string. Keys and comments
 * are never expanded. Every unset variable without a default is reported at once, by path.
 */
export function loadConfig(path: string, opts: LoadOptions = {}): GuardConfig {
  const env = opts.env ?? process.env;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError([`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`]);
  }
  let raw: unknown;
  const problems: string[] = [];
  if (extname(path).toLowerCase() === '.json') {
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new ConfigError([`not valid JSON: ${(e as Error).message}`], path);
    }
    raw = interpolateJson(raw, env, [], problems);
  } else {
    const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: true });
    if (doc.errors.length) throw new ConfigError(doc.errors.map((e) => `YAML: ${e.message.split('\n')[0]}`), path);
    interpolateYaml(doc.contents, env, [], problems);
    raw = doc.toJS();
  }
  if (problems.length) throw new ConfigError(problems, path);
  return parseConfig(raw, { env, source: path });
}

// ---------------------------------------------------------------------------------------------
// ${VAR} / ${VAR:default} interpolation

const REF_RE = /\$\$\{|\$\{([^}]*)\}/g;
const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

function pathText(p: readonly (string | number)[]): string {
  return p.reduce<string>((acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg), '') || '(top level)';
}

/** Expands the references in one string; problems name the path. */
export function interpolateString(s: string, env: NodeJS.ProcessEnv, where: string, problems: string[]): string {
  if (!s.includes('${')) return s;
  return s.replace(REF_RE, (whole: string, body: string | undefined) => {
    if (body === undefined) return '${'; // $${ escape
    const colon = body.indexOf(':');
    const name = colon < 0 ? body : body.slice(0, colon);
    const fallback = colon < 0 ? undefined : body.slice(colon + 1);
    if (!NAME_RE.test(name)) {
      problems.push(`${where}: "${whole}" is not a valid reference (expected \${NAME} or \${NAME:default}; write $\${ for a literal \${)`);
      return whole;
    }
    const v = env[name];
    if (v !== undefined && v !== '') return v;
    if (fallback !== undefined) return fallback;
    problems.push(`${where}: environment variable ${name} is not set (or write \${${name}:default})`);
    return whole;
  });
}

function interpolateYaml(node: YamlNode | null, env: NodeJS.ProcessEnv, p: (string | number)[], problems: string[]): void {
  if (!node) return;
  if (isMap(node)) {
    for (const pair of node.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      interpolateYaml(pair.value as YamlNode | null, env, [...p, k], problems);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => interpolateYaml(item as YamlNode | null, env, [...p, i], problems));
  } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('${')) {
    const before = node.value;
    const after = interpolateString(before, env, pathText(p), problems);
    node.value = after;
    // An unquoted value that is exactly one reference takes the type of its expansion.
    if (node.type === 'PLAIN' && /^\$\{[^}]*\}$/.test(before)) {
      let typed: unknown;
      try {
        typed = YAML.parse(after === '' ? '""' : after);
      } catch {
        typed = after; // not a YAML scalar: stays the string
      }
      if (typeof typed === 'number' || typeof typed === 'boolean') node.value = typed;
    }
  }
}

function interpolateJson(v: unknown, env: NodeJS.ProcessEnv, p: (string | number)[], problems: string[]): unknown {
  if (typeof v === 'string') return interpolateString(v, env, pathText(p), problems);
  if (Array.isArray(v)) return v.map((x, i) => interpolateJson(x, env, [...p, i], problems));
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, interpolateJson(x, env, [...p, k], problems)]));
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Model bundles

export interface BundleCheck {
  ok: boolean;
  /** One line per missing or invalid bundle / calibration file. */
  problems: string[];
  /** Bundle folders that were found and read. */
  bundles: string[];
}

/**
 * Checks that every bundle the topics' pipelines need exists and has a valid manifest:
 * <models>/classifier and the bundles each stage kind declares (purifier-split<k>[-adv] for
 * split<k>/full, generator for defensegan; see src/purify/stages/),
 * plus an explicit calibration file. A model set written by `vqguard fit` whose modelset.json
 * names an external classifier needs that declaration file and the model it points to instead of
 * <models>/classifier. Relative paths are resolved against baseDir.
 * Reads only model.json (readManifest), modelset.json and the declaration, not the weights.
 */
export function checkModelBundles(config: GuardConfig, baseDir: string): BundleCheck {
  const problems: string[] = [];
  const bundles: string[] = [];
  const checked = new Map<string, string | null>(); // bundle dir -> problem or null
  const at = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));

  const need = (dir: string, why: string) => {
    if (!checked.has(dir)) {
      try {
        readManifest(dir);
        checked.set(dir, null);
        bundles.push(dir);
      } catch (e) {
        checked.set(dir, (e as Error).message);
      }
    }
    const problem = checked.get(dir);
    if (problem) problems.push(`${why}: ${problem}`);
  };

  config.topics.forEach((t, i) => {
    const models = at(t.models);
    const name = `topics[${i}]`;
    if (!existsSync(models)) {
      problems.push(`${name}.models: model directory ${models} does not exist`);
      return;
    }
    let external = false;
    try {
      const set = readModelSetFile(models);
      if (set?.classifier) {
        external = true;
        const decl = resolve(models, set.classifier);
        if (!existsSync(decl)) problems.push(`${name}: classifier declaration ${decl} (named in ${join(models, 'modelset.json')}) does not exist`);
        else {
          const d = readDeclarationFile(decl);
          if (!existsSync(d.path)) problems.push(`${name}: classifier ${d.format} model ${d.path} (declared in ${decl}) does not exist`);
        }
      }
    } catch (e) {
      problems.push(`${name}: ${(e as Error).message}`);
      external = true;
    }
    if (!external) need(join(models, 'classifier'), `${name}: classifier bundle`);
    t.pipelines.forEach((spec, j) => {
      const where = t.pipelines.length > 1 ? `${name}.pipeline[${j}]` : `${name}.pipeline`;
      for (const dir of pipelineBundles(spec)) need(join(models, dir), `${where} "${spec}" needs ${dir}`);
    });
    if (t.calibration !== undefined && !existsSync(at(t.calibration))) {
      problems.push(`${name}.calibration: ${at(t.calibration)} does not exist`);
    }
  });
  return { ok: problems.length === 0, problems: [...new Set(problems)], bundles };
}

// ---------------------------------------------------------------------------------------------
// Secrets

export interface KafkaSecrets {
  /** Ready for kafkajs `sasl`. */
  sasl?: { mechanism: SaslMechanism; username: string; password: string };
  /** Ready for kafkajs `ssl` (tls.ConnectionOptions), or undefined when TLS is off. */
  ssl?: { rejectUnauthorized: boolean; ca?: string[]; cert?: string; key?: string };
}

/**
 * Reads the SASL password (inline, passwordFile with one trailing newline trimmed, or
 * passwordEnv) and the TLS files. Relative files are resolved against baseDir (default cwd).
 * Throws ConfigError naming the setting (never the secret) when one cannot be read.
 */
export function resolveSecrets(config: GuardConfig, opts: { env?: NodeJS.ProcessEnv; baseDir?: string } = {}): KafkaSecrets {
  const env = opts.env ?? process.env;
  const base = opts.baseDir ?? process.cwd();
  const problems: string[] = [];
  const read = (file: string, what: string): string | undefined => {
    const p = isAbsolute(file) ? file : resolve(base, file);
    try {
      return readFileSync(p, 'utf8');
    } catch (e) {
      problems.push(`${what}: cannot read ${p} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      return undefined;
    }
  };

  const out: KafkaSecrets = {};
  const { sasl, ssl } = config.kafka;
  if (sasl) {
    let password: string | undefined;
    if (sasl.password !== undefined) password = sasl.password;
    else if (sasl.passwordFile !== undefined) password = read(sasl.passwordFile, 'kafka.sasl.passwordFile')?.replace(/\r?\n$/, '');
    else if (sasl.passwordEnv !== undefined) {
      password = env[sasl.passwordEnv];
      if (password === undefined || password === '') problems.push(`kafka.sasl.passwordEnv: environment variable ${sasl.passwordEnv} is not set`);
    }
    if (password === '') problems.push('kafka.sasl: the password is empty');
    if (password) out.sasl = { mechanism: sasl.mechanism, username: sasl.username, password };
  }
  if (ssl?.enabled) {
    const tls: NonNullable<KafkaSecrets['ssl']> = { rejectUnauthorized: ssl.rejectUnauthorized };
    if (ssl.caFile) {
      const ca = read(ssl.caFile, 'kafka.ssl.caFile');
      if (ca !== undefined) tls.ca = [ca];
    }
    if (ssl.certFile) tls.cert = read(ssl.certFile, 'kafka.ssl.certFile');
    if (ssl.keyFile) tls.key = read(ssl.keyFile, 'kafka.ssl.keyFile');
    out.ssl = tls;
  }
  if (problems.length) throw new ConfigError(problems);
  return out;
}

export const REDACTED = '[redacted]';

/**
 * A deep copy safe to log: the inline SASL password is replaced with "[redacted]", and the
 * webhook URL keeps only its scheme and host (paths and queries of webhooks often carry tokens).
 */
export function redactConfig(config: GuardConfig): GuardConfig {
  const c = structuredClone(config);
  if (c.kafka.sasl?.password !== undefined) c.kafka.sasl.password = REDACTED;
  if (c.alerts.webhook) c.alerts.webhook.url = redactUrl(c.alerts.webhook.url);
  return c;
}

function redactUrl(u: string): string {
  try {
    const url = new URL(u);
    const hasMore = (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.username !== '' || url.password !== '';
    return `${url.protocol}//${url.host}${hasMore ? `/${REDACTED}` : '/'}`;
  } catch {
    return REDACTED;
  }
}
