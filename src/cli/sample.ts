/** `vqguard produce-sample`: labelled test traffic, part of it attacked, into a topic. */
import type { Command } from 'commander';
import { datasetOption, modelsOption } from './options.ts';
import { Kafka, logLevel, CompressionTypes, Partitioners } from 'kafkajs';
import { loadDatasetAsync } from '../data/load.ts';
import { ModelRegistry, checkModelsFitDataset } from '../models/registry.ts';
import { buildSamples } from '../sample/produceSample.ts';
import type { AttackName } from '../attacks/attacks.ts';
import { requiredBrokers } from '../config/schema.ts';


export function registerSample(program: Command): void {
  program
    .command('produce-sample')
    .requiredOption('--topic <t>', 'topic')
    .option('--brokers <list>', 'Kafka brokers (default $KAFKA_BROKERS)')
    .option('--count <n>', 'records', '100')
    .option('--adversarial-ratio <x>', 'share of attacked records', '0.5')
    .option('--attack <name>', 'fgsm | pgd', 'fgsm')
    .option('--eps <x>', 'attack epsilon', '0.1')
    .option('--seed <n>', 'seed', '7')
    .addOption(datasetOption())
    .addOption(modelsOption())
    .action(async (o: Record<string, string>) => {
      const data = await loadDatasetAsync(o.dataset!);
      const reg = new ModelRegistry(o.models!);
      await reg.prepare();
      checkModelsFitDataset(reg, data);
      const attackModel = reg.attackModel();
      if (attackModel.kind === 'transfer') process.stderr.write(`produce-sample: ${attackModel.describe}\n`);
      const records = await buildSamples(data.test, attackModel.logits, {
        count: Number(o.count), adversarialRatio: Number(o.adversarialRatio), attack: o.attack as AttackName, eps: Number(o.eps), seed: Number(o.seed),
      });
      const kafka = new Kafka({ clientId: 'vqguard-produce-sample', brokers: requiredBrokers(o.brokers), logLevel: logLevel.WARN });
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
      await producer.connect();
      for (let i = 0; i < records.length; i += 500) {
        await producer.send({
          topic: o.topic!, acks: -1, compression: CompressionTypes.None,
          messages: records.slice(i, i + 500).map((r) => ({ key: r.id, value: r.value })),
        });
      }
      await producer.disconnect();
      const adv = records.filter((r) => r.adversarial).length;
      process.stdout.write(JSON.stringify({ topic: o.topic, produced: records.length, adversarial: adv, clean: records.length - adv }) + '\n');
      reg.dispose();
    });
}
