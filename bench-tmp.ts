import { startLocalBroker } from './src/kafka/localBroker.ts';
import { execSync } from 'node:child_process';
const warm = process.env.WARM !== '0';
for (let i = 0; i < 3; i++) {
  let t = Date.now();
  const b = await startLocalBroker({ warmUp: warm });
  const start = Date.now() - t;
  const rss = execSync(`ps -o rss= -p ${b.pid}`).toString().trim();
  t = Date.now(); await b.restart(); const restart = Date.now() - t;
  const rss2 = execSync(`ps -o rss= -p ${b.pid}`).toString().trim();
  t = Date.now(); await b.stop(); const stop = Date.now() - t;
  console.log(JSON.stringify({ opts: process.env.VQGUARD_KAFKA_JAVA_OPTS ?? '', warm, start, rssMiB: Math.round(+rss/1024), restart, rss2MiB: Math.round(+rss2/1024), stop }));
}
