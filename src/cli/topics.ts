/**
 * `vqguard topics create --config <file>`: creates the topics a guard configuration reads and
 * writes (inputs, outputs, dead-letter and alert topics) that do not exist yet, so a broker with
 * `auto.create.topics.enable=false` (and the guard's own `kafka.checkTopics`) is ready for
 * `vqguard run`. Existing topics are left as they are; `inputPattern` topics cannot be named and
 * are skipped. Connection settings (brokers, SASL, TLS) come from the configuration.
 */
import type { Command } from 'commander';
import { Kafka, logLevel, type KafkaConfig } from 'kafkajs';
import { loadConfig, resolveSecrets } from '../config/load.ts';

export interface TopicsPlan {
  /** Topic -> the roles it has in the configuration. */
  roles: Map<string, string[]>;
  /** inputPattern topics (not created). */
  patterns: string[];
}

export function topicsOfConfig(c: ReturnType<typeof loadConfig>): TopicsPlan {
  const roles = new Map<string, string[]>();
  const add = (t: string, role: string) => roles.set(t, [...new Set([...(roles.get(t) ?? []), role])]);
  const patterns: string[] = [];
  for (const t of c.topics) {
    if (t.input) add(t.input, 'input');
    else if (t.inputPattern) patterns.push(String(t.inputPattern));
    add(t.output, 'output');
    add(t.deadLetter, 'dead letters');
    add(t.alerts, 'alerts');
  }
  return { roles, patterns };
}

export function registerTopics(program: Command): void {
  const topics = program.command('topics');
  topics
    .command('create')
    .description('create the input, output, dead-letter and alert topics of a configuration that do not exist yet')
    .requiredOption('--config <file>', 'guard configuration (YAML or JSON)')
    .option('--partitions <n>', 'partitions of each new topic (outputs keep the input key: give them as many as the input)', '1')
    .option('--replication-factor <n>', 'replication factor of each new topic (default: the broker default)')
    .action(async (o: { config: string; partitions: string; replicationFactor?: string }) => {
      const c = loadConfig(o.config);
      const secrets = resolveSecrets(c);
      const kcfg: KafkaConfig = { clientId: `${c.kafka.clientId}-topics`, brokers: c.kafka.brokers, logLevel: logLevel.WARN, connectionTimeout: 5000, retry: { retries: 3 } };
      if (secrets.ssl) kcfg.ssl = secrets.ssl;
      if (secrets.sasl) kcfg.sasl = secrets.sasl as KafkaConfig['sasl'];
      const admin = new Kafka(kcfg).admin();
      await admin.connect();
      try {
        const plan = topicsOfConfig(c);
        const existing = new Set(await admin.listTopics());
        const missing = [...plan.roles.keys()].filter((t) => !existing.has(t));
        if (missing.length) {
          await admin.createTopics({
            topics: missing.map((topic) => ({
              topic,
              numPartitions: Number(o.partitions),
              ...(o.replicationFactor ? { replicationFactor: Number(o.replicationFactor) } : {}),
            })),
            waitForLeaders: true,
          });
        }
        for (const [t, r] of plan.roles) process.stdout.write(`${missing.includes(t) ? 'created' : 'exists '}  ${t}  (${r.join(', ')})\n`);
        for (const p of plan.patterns) process.stdout.write(`skipped  inputPattern ${p}  (create the topics it should match yourself)\n`);
      } finally {
        await admin.disconnect();
      }
    });
}
