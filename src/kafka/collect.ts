/** Reads a topic from the beginning until `count` records arrived (or a timeout), read_committed. */
import { Kafka, logLevel } from 'kafkajs';
import { headersAsStrings } from '../records/input.ts';

export interface Collected {
  key: string | null;
  value: Buffer;
  headers: Record<string, string>;
  partition: number;
  offset: string;
}

export async function collectTopic(brokers: string[], topic: string, count: number, timeoutMs: number, opts: { sasl?: unknown } = {}): Promise<Collected[]> {
  const kafka = new Kafka({ clientId: 'vqguard-collect', brokers, logLevel: logLevel.NOTHING, ...(opts.sasl ? { sasl: opts.sasl as never } : {}) });
  const consumer = kafka.consumer({ groupId: `collect-${topic}-${process.pid}-${Date.now()}`, readUncommitted: false });
  const out: Collected[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      void consumer.run({
        eachMessage: async ({ message, partition }) => {
          const headers = headersAsStrings(message.headers);
          out.push({ key: message.key?.toString() ?? null, value: message.value ?? Buffer.alloc(0), headers, partition, offset: message.offset });
          if (out.length >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return out;
}
