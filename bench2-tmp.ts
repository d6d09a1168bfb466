import { startLocalBroker } from './src/kafka/localBroker.ts';
const t = Date.now();
const b = await startLocalBroker({ warmUp: process.env.WARM !== '0' });
console.log('start', Date.now() - t);
const t2 = Date.now(); await b.stop(); console.log('stop', Date.now() - t2);
