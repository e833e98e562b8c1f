import { Option, type Command } from 'commander';
import { loadConfig, redactUrl } from '../config.js';
import { loadProjects } from '../intake/projects.js';
import { startIntake } from '../intake/service.js';
import { createLogger } from '../ops/log.js';
import { int } from './flags.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description("the ingestion API: OpenPanel's SDK protocol (POST /track) and batches (POST /v1/events) into the queue (stop with SIGTERM)")
    .option('--port <n>', 'port to listen on (PORT, default 3000); /metrics, /healthz and /readyz are served on it too', int(0, 65_535))
    .option('--host <address>', 'address to listen on', '0.0.0.0')
    .addOption(new Option('--bench-routes', 'add POST /bench/noop, the ceiling `bench http` measures against').hideHelp())
    .action(async (opts: { port?: number; host: string; benchRoutes?: boolean }) => {
      const base = loadConfig(process.env);
      const config = opts.port === undefined ? base : { ...base, port: opts.port };
      const projects = loadProjects(config.projectsFile);
      const log = createLogger(config.logLevel).child({ component: 'serve' });
      const service = await startIntake(config, projects, log, { host: opts.host, benchRoutes: opts.benchRoutes ?? false });
      log.info({ url: service.url, projects: projects.size, redis: redactUrl(config.redisUrl), trustProxy: config.trustProxy, geoip: Boolean(config.geoipDb) }, 'serving');

      await new Promise<void>((resolve) => {
        let signals = 0;
        const onSignal = (signal: NodeJS.Signals): void => {
          signals += 1;
          if (signals > 1) process.exit(1); // a second signal: exit now
          log.info({ signal }, 'stopping: no new connections, finishing requests, sending coalesced events');
          // bounded: a dead Redis cannot hold the exit beyond the enqueue timeout and a margin
          const deadline = setTimeout(() => {
            log.error('stop took too long; exiting with events possibly unsent (their requests were not answered 2xx)');
            process.exit(1);
          }, config.enqueueTimeoutMs + 5_000);
          deadline.unref();
          service.stop().then(resolve, (err: Error) => {
            log.error({ err }, 'stop failed');
            process.exit(1);
          });
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
      log.info('stopped');
      // every connection and client is closed; exit now rather than wait for library timers to lapse
      process.exit(0);
    });
}
