/**
 * A local Redis Cluster: N redis-server processes with cluster mode on, joined
 * by `redis-cli --cluster create` (masters only), ready once every node
 * reports cluster_state:ok.
 */
import { execFile } from 'node:child_process';
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServerHandle } from '../../src/ops/redis-server.js';
import { sleep } from './harness.js';

export async function startCluster(masters: number, args: readonly string[] = []): Promise<RedisServerHandle[]> {
  const nodes: RedisServerHandle[] = [];
  try {
    for (let i = 0; i < masters; i += 1) {
      nodes.push(await startRedisServer({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '3000', ...args] }));
    }
    await new Promise<void>((resolve, reject) => {
      execFile(
        'redis-cli',
        ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
        (error, _stdout, stderr) => (error ? reject(new Error(`redis-cli --cluster create failed: ${stderr || error.message}`)) : resolve()),
      );
    });
    const deadline = Date.now() + 30_000;
    for (const node of nodes) {
      const client = new Redis(node.port, '127.0.0.1', { lazyConnect: true });
      await client.connect();
      try {
        while (!/cluster_state:ok/.test(await client.cluster('INFO'))) {
          if (Date.now() > deadline) throw new Error(`cluster node ${node.port} not ok within 30 s`);
          await sleep(100);
        }
      } finally {
        client.disconnect();
      }
    }
    return nodes;
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw err;
  }
}
