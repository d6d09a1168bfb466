/**
 * Generates the Helm chart's values.schema.json (deploy/helm/vqguard/values.schema.json).
 *
 *   node --import tsx scripts/chart-schema.ts           # rewrite the committed file
 *   node --import tsx scripts/chart-schema.ts --check   # exit 1 when it is stale (test/helm.test.ts does the same)
 *
 * `config` (rendered as-is into guard.yaml) comes from the zod schema the guard validates with
 * (configSchema in src/config/schema.ts), through zod-to-json-schema: strict objects become
 * `additionalProperties: false`, so a typo such as `pipline` or `ouput` fails `helm install`, and
 * every documented key (inputPattern, autoOffsetReset, ...) is accepted. Checks that zod runs in code
 * (refinements such as "exactly one of input and inputPattern") stay with the guard, which the
 * chart's template tests run on every rendered guard.yaml. After adding a config key, rerun this.
 *
 * The chart's own keys are described below, also with `additionalProperties: false` on every
 * object the chart defines; Kubernetes objects passed through verbatim (resources, affinity,
 * securityContext, tolerations, extra volumes, ...) are left open and checked on the rendered
 * manifests instead (scripts/kubecheck.sh).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zodToJsonSchema } from 'zod-to-json-schema';
import { configSchema } from '../src/config/schema.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SCHEMA_PATH = join(ROOT, 'deploy/helm/vqguard/values.schema.json');

type J = Record<string, unknown>;

/** An object with exactly these properties (no others). */
const obj = (properties: Record<string, J>, extra: J = {}): J => ({ type: 'object', additionalProperties: false, properties, ...extra });
const str: J = { type: 'string' };
const nonEmpty: J = { type: 'string', minLength: 1 };
const bool: J = { type: 'boolean' };
const int = (minimum?: number): J => (minimum === undefined ? { type: 'integer' } : { type: 'integer', minimum });
/** A Kubernetes object or list passed through verbatim (checked on the rendered manifests). */
const k8sObject = (description: string): J => ({ type: 'object', description });
const k8sList = (description: string): J => ({ type: 'array', items: { type: 'object' }, description });
const stringMap: J = { type: 'object', additionalProperties: { type: 'string' } };
const intOrString: J = { type: ['integer', 'string'] };
const probe = (withEnabled: boolean): J =>
  obj({
    ...(withEnabled ? { enabled: bool } : {}),
    periodSeconds: int(1),
    timeoutSeconds: int(1),
    failureThreshold: int(1),
    initialDelaySeconds: int(0),
  });

/** A whole-value `${VAR}` / `${VAR:default}` reference, which the guard expands at start-up. */
export const ENV_REFERENCE: J = { type: 'string', pattern: '^\\$\\{[A-Za-z_][A-Za-z0-9_]*(:[^}]*)?\\}$' };

/**
 * The guard expands `${VAR}` references before validating, so a typed or constrained leaf (a
 * number, a boolean, an enum, a pattern such as a topic name) may also be one whole reference.
 * Keys are never expanded: objects stay closed.
 */
function allowReferences(node: J): J {
  if (Array.isArray(node.anyOf)) return { ...node, anyOf: (node.anyOf as J[]).map(allowReferences) };
  if (node.type === 'object') {
    const out: J = { ...node };
    if (node.properties) out.properties = Object.fromEntries(Object.entries(node.properties as Record<string, J>).map(([k, v]) => [k, allowReferences(v)]));
    if (node.additionalProperties && typeof node.additionalProperties === 'object') out.additionalProperties = allowReferences(node.additionalProperties as J);
    return out;
  }
  if (node.type === 'array') return { ...node, items: node.items ? allowReferences(node.items as J) : node.items };
  const constrained = node.type === 'number' || node.type === 'integer' || node.type === 'boolean' || node.enum !== undefined || node.pattern !== undefined || node.format !== undefined;
  if (!constrained) return node;
  const { description, default: dflt, ...rest } = node;
  return { ...(description !== undefined ? { description } : {}), ...(dflt !== undefined ? { default: dflt } : {}), anyOf: [rest, ENV_REFERENCE] };
}

/** The guard configuration's JSON schema, from the zod schema. */
export function guardConfigSchema(): J {
  const s = allowReferences(zodToJsonSchema(configSchema, { target: 'jsonSchema7', $refStrategy: 'none', effectStrategy: 'input', pipeStrategy: 'input' }) as J);
  delete s.$schema;
  // The chart fills kafka.sasl.mechanism/username/passwordFile from kafka.sasl.* when
  // kafka.sasl.existingSecret is set, so none of them is required in the values.
  const sasl = ((s.properties as J).kafka as J & { properties: J }).properties.sasl as J;
  delete sasl.required;
  return {
    ...s,
    description: 'guard.yaml, rendered as-is (generated from the guard\'s own configuration schema by scripts/chart-schema.ts)',
  };
}

export function chartSchema(): J {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'vqguard chart values (generated by scripts/chart-schema.ts; do not edit)',
    type: 'object',
    additionalProperties: false,
    required: ['mode', 'image', 'gpu', 'config', 'kafka', 'models'],
    properties: {
      // Helm passes `global` to every chart, also to this one as a dependency.
      global: { type: 'object' },
      mode: { type: 'string', enum: ['standalone', 'statefulset', 'sidecar'] },
      nameOverride: str,
      fullnameOverride: str,
      replicaCount: int(0),
      image: obj({ repository: nonEmpty, tag: { type: ['string', 'number'] }, pullPolicy: { type: 'string', enum: ['Always', 'IfNotPresent', 'Never'] } }, { required: ['repository'] }),
      imagePullSecrets: k8sList('LocalObjectReference list'),
      gpu: obj({
        enabled: bool,
        count: int(1),
        resourceName: nonEmpty,
        imageTagSuffix: str,
        nodeSelector: stringMap,
        tolerations: k8sList('Toleration list'),
        runtimeClassName: str,
        backend: { type: 'string', enum: ['auto', 'cuda', 'webgpu', 'cpu'] },
      }),
      config: guardConfigSchema(),
      kafka: obj({
        sasl: obj({ existingSecret: str, passwordKey: nonEmpty, mechanism: { type: 'string', enum: ['scram-sha-256', 'scram-sha-512', 'plain'] }, username: str }),
        tls: obj({ enabled: bool, existingSecret: str, caKey: str, certKey: str, keyKey: str }),
        secretFileMode: intOrString,
      }),
      models: obj({
        persistentVolumeClaim: obj({ claimName: str, subPath: str }),
        mountPath: { type: 'string', pattern: '^/' },
      }),
      tmp: obj({ medium: { type: 'string', enum: ['', 'Memory'] }, sizeLimit: intOrString }),
      resources: k8sObject('ResourceRequirements'),
      podSecurityContext: k8sObject('PodSecurityContext'),
      securityContext: k8sObject('SecurityContext'),
      probes: obj({ startup: probe(true), liveness: probe(false), readiness: probe(false) }),
      terminationGracePeriodSeconds: intOrString,
      extraEnv: k8sList('EnvVar list'),
      extraVolumeMounts: k8sList('VolumeMount list'),
      extraVolumes: k8sList('Volume list'),
      podAnnotations: stringMap,
      podLabels: stringMap,
      nodeSelector: stringMap,
      tolerations: k8sList('Toleration list'),
      affinity: k8sObject('Affinity'),
      topologySpreadConstraints: k8sList('TopologySpreadConstraint list'),
      priorityClassName: str,
      serviceAccountName: str,
      service: obj({ type: { type: 'string', enum: ['ClusterIP', 'NodePort', 'LoadBalancer'] }, port: int(1), annotations: stringMap }),
      podDisruptionBudget: obj({ enabled: bool, minAvailable: intOrString, maxUnavailable: intOrString }),
      statefulset: obj({ transactionalIdPrefix: str, podManagementPolicy: { type: 'string', enum: ['Parallel', 'OrderedReady'] } }),
      keda: obj({
        enabled: bool,
        lagThreshold: intOrString,
        activationLagThreshold: intOrString,
        minReplicaCount: int(0),
        maxReplicaCount: int(1),
        bootstrapServers: str,
        consumerGroup: str,
        topic: str,
        offsetResetPolicy: { type: 'string', enum: ['', 'earliest', 'latest'] },
        pollingInterval: int(1),
        cooldownPeriod: int(0),
        authenticationRef: str,
      }),
      serviceMonitor: obj({ enabled: bool, interval: str, scrapeTimeout: str, labels: stringMap }),
      prometheusRule: obj({
        enabled: bool,
        labels: stringMap,
        lagThreshold: { type: 'number', minimum: 0 },
        lagGrowingFor: str,
        flagRateJumpFactor: { type: 'number', exclusiveMinimum: 1 },
        flagRateMinRatio: { type: 'number', minimum: 0, maximum: 1 },
        deadLetterRatio: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
        notReadyFor: str,
      }),
      grafanaDashboard: obj({ enabled: bool, labels: stringMap, annotations: stringMap }),
      sidecar: obj({
        containerName: nonEmpty,
        nativeSidecar: bool,
        readinessProbe: obj({ enabled: bool }),
        podSelector: stringMap,
      }),
    },
  };
}

export function renderSchema(): string {
  return `${JSON.stringify(chartSchema(), null, 2)}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = renderSchema();
  if (process.argv.includes('--check')) {
    const committed = readFileSync(SCHEMA_PATH, 'utf8');
    if (committed !== text) {
      console.error(`${SCHEMA_PATH} is stale: run node --import tsx scripts/chart-schema.ts`);
      process.exit(1);
    }
    console.log('values.schema.json is up to date');
  } else {
    writeFileSync(SCHEMA_PATH, text);
    console.log(`wrote ${SCHEMA_PATH}`);
  }
}
