import net from 'node:net';
import { startLocalBroker } from './src/kafka/localBroker.ts';
const t = Date.now();
const p = startLocalBroker({ warmUp: true });
// watch the port by polling /proc for listening sockets is hard; just log elapsed
const iv = setInterval(() => {}, 1000);
const b = await p; clearInterval(iv);
console.log('start', Date.now() - t);
const log = (await import('node:fs')).readFileSync(b.dir + '/broker.log', 'utf8'); console.log(log);
await b.stop();
