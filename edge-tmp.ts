import { createRequire } from "node:module"; const require = createRequire(import.meta.url);
import { startLocalBroker } from './src/kafka/localBroker.ts';
import { Kafka, logLevel } from 'kafkajs';
const mode = process.argv[2];
if (mode === 'kill') {
  const b = await startLocalBroker();
  const k = new Kafka({ clientId: 'e', brokers: b.brokers, logLevel: logLevel.NOTHING });
  const p = k.producer(); await p.connect(); await p.send({ topic: 'crash', acks: -1, messages: [{ value: 'a' }, { value: 'b' }] }); await p.disconnect();
  const pid = b.pid; await b.kill(); console.log('killed', pid, 'pid now', b.pid);
  const t = Date.now(); await b.restart(); console.log("recovered in", Date.now() - t, "pid", b.pid, new Date(t).toISOString()); console.log(require("node:fs").readFileSync(b.dir + "/broker.log", "utf8"));
  const a = k.admin(); await a.connect(); console.log(await a.fetchTopicOffsets('crash')); await a.disconnect();
  await b.stop();
} else if (mode === 'bad') {
  process.env.VQGUARD_KAFKA_JAVA_OPTS = '-XX:+NoSuchFlag';
  try { await startLocalBroker(); } catch (e) { console.log('ERROR MESSAGE:\n' + (e as Error).message); }
} else if (mode === 'orphan') {
  const b = await startLocalBroker({ warmUp: false });
  console.log('ORPHAN', b.pid, b.dir);
  setInterval(() => {}, 1000);
} else if (mode === 'reap') {
  const b = await startLocalBroker({ warmUp: false }); console.log('new', b.pid); await b.stop();
}
