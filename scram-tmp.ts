import { Kafka, logLevel } from 'kafkajs';
import { startLocalBroker } from './src/kafka/localBroker.ts';
const t = Date.now();
const b = await startLocalBroker({ scram: { username: 'alice', password: 'alice-secret' } });
console.log('start', Date.now() - t, b.brokers, b.saslBrokers);
try {
  const k = new Kafka({ clientId: 's', brokers: b.saslBrokers, sasl: b.sasl, logLevel: logLevel.WARN });
  const a = k.admin(); await a.connect(); console.log(await a.describeCluster()); 
  await a.createTopics({ topics: [{ topic: 'sec', numPartitions: 1 }], waitForLeaders: true }); await a.disconnect();
  const p = k.producer(); await p.connect(); await p.send({ topic: 'sec', messages: [{ value: 'hi' }] }); await p.disconnect();
  const c = k.consumer({ groupId: 'g' }); await c.connect(); await c.subscribe({ topic: 'sec', fromBeginning: true });
  await new Promise<void>(r => c.run({ eachMessage: async ({ message }) => { console.log('got', message.value?.toString()); r(); } })); await c.disconnect();
  const bad = new Kafka({ clientId: 'x', brokers: b.saslBrokers, sasl: { mechanism: 'scram-sha-256', username: 'alice', password: 'wrong' }, logLevel: logLevel.NOTHING, retry: { retries: 0 } });
  const ba = bad.admin(); try { await ba.connect(); console.log('BAD: wrong password accepted'); } catch (e) { console.log('wrong password rejected:', (e as Error).name, (e as Error).message); }
  const nos = new Kafka({ clientId: 'y', brokers: b.saslBrokers, logLevel: logLevel.NOTHING, retry: { retries: 0 }, connectionTimeout: 2000, requestTimeout: 3000 });
  const na = nos.admin(); try { await na.connect(); await na.listTopics(); console.log('BAD: no-auth accepted'); } catch (e) { console.log('no-auth rejected:', (e as Error).name); }
  const r0 = Date.now(); await b.restart(); console.log('restart', Date.now() - r0);
  const a2 = new Kafka({ clientId: 's2', brokers: b.saslBrokers, sasl: b.sasl, logLevel: logLevel.WARN }).admin(); await a2.connect(); console.log('after restart topics', await a2.listTopics()); await a2.disconnect();
} finally { await b.stop(); }
