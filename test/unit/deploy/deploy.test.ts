/**
 * The deployment files as an operator runs them: the Kubernetes manifests and
 * the compose file parse and hold the rules that keep shutdown and readiness
 * honest, and every metric the Grafana dashboard queries exists on /metrics.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { Metrics } from '../../../src/ops/metrics.js';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const read = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

interface K8sObject {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: Record<string, any>;
}

const manifests = parseAllDocuments(read('deploy/kubernetes/event-lens.yaml')).map((d) => d.toJS() as K8sObject);
const byKind = (kind: string) => manifests.filter((m) => m.kind === kind);
const configMap = manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === 'event-lens')?.data ?? {};

describe('Kubernetes manifests', () => {
  it('give the worker a termination grace above SHUTDOWN_TIMEOUT_MS', () => {
    const worker = byKind('Deployment').find((d) => d.metadata.name === 'event-lens-worker');
    const grace = Number(worker?.spec?.template.spec.terminationGracePeriodSeconds);
    expect(grace * 1000).toBeGreaterThan(Number(configMap.SHUTDOWN_TIMEOUT_MS) + 5_000);
  });

  it('probe /readyz and /healthz on the port each container serves them on', () => {
    for (const d of byKind('Deployment')) {
      const [c] = d.spec?.template.spec.containers as { args: string[]; ports: { name: string; containerPort: number }[]; readinessProbe: any; livenessProbe: any }[];
      expect(c?.readinessProbe.httpGet.path).toBe('/readyz');
      expect(c?.livenessProbe.httpGet.path).toBe('/healthz');
      const port = c?.ports.find((p) => p.name === c.readinessProbe.httpGet.port);
      const expected = c?.args[0] === 'serve' ? Number(c.args[c.args.indexOf('--port') + 1]) : Number(configMap.METRICS_PORT);
      expect(port?.containerPort).toBe(expected);
    }
  });

  it('run migrations as a Job and take all config from the ConfigMap and Secret', () => {
    const [job] = byKind('Job');
    expect(job?.spec?.template.spec.containers[0].args).toEqual(['migrate']);
    const names = new Set(manifests.map((m) => `${m.kind}/${m.metadata.name}`));
    for (const w of [...byKind('Deployment'), ...byKind('Job')]) {
      for (const c of w.spec?.template.spec.containers ?? []) {
        for (const from of c.envFrom as { configMapRef?: { name: string }; secretRef?: { name: string } }[]) {
          const ref = from.configMapRef ? `ConfigMap/${from.configMapRef.name}` : `Secret/${from.secretRef?.name}`;
          expect(names.has(ref), `${w.metadata.name} refers to ${ref}`).toBe(true);
        }
      }
      expect(w.spec?.template.spec.securityContext.runAsNonRoot).toBe(true);
    }
  });
});

describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml')) as { services: Record<string, any> };

  it('restarts workers and the API, pins ClickHouse, and publishes what a host-side user reaches', () => {
    for (const name of ['worker', 'api']) expect(compose.services[name].restart).toBe('unless-stopped');
    expect(compose.services.clickhouse.image).toMatch(/^clickhouse\/clickhouse-server:\d+\.\d+/);
    for (const name of ['clickhouse', 'worker', 'api', 'prometheus', 'grafana']) expect(compose.services[name].ports?.length, name).toBeGreaterThan(0);
  });

  it('has Prometheus scrape every worker and API replica and Grafana load the dashboard', () => {
    const prometheus = parse(read('deploy/prometheus/prometheus.yml')) as { scrape_configs: { dns_sd_configs: { names: string[]; port: number }[] }[] };
    const targets = prometheus.scrape_configs.flatMap((s) => s.dns_sd_configs.map((d) => `${d.names.join()}:${d.port}`));
    expect(targets).toEqual(['worker:9464', 'api:3000']);
    expect(compose.services.worker.environment.METRICS_PORT).toBe('9464');
    expect(compose.services.api.command).toEqual(['serve', '--port', '3000']);
    expect(compose.services.grafana.volumes).toContain('./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro');
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');

  it('builds dist/ in one stage and runs it as a non-root user without dev dependencies', () => {
    expect(dockerfile.match(/^FROM /gm)?.length).toBe(2);
    expect(dockerfile).toMatch(/--omit=dev/);
    expect(dockerfile).toMatch(/COPY --from=build \/src\/dist \.\/dist/);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/chown node:node \/data/);
    expect(dockerfile).toMatch(/\/readyz/);
  });
});

describe('Grafana dashboard', () => {
  it('queries only metrics that exist on /metrics', async () => {
    const dashboard = JSON.parse(read('deploy/grafana/dashboards/event-lens.json')) as { panels: { targets: { expr: string }[] }[] };
    const queried = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/event_lens_[a-z_]+/g) ?? [])));
    const exposed = await new Metrics().registry.metrics();
    const families = new Set([...exposed.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) =>
      type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name as string],
    ));
    expect(queried.size).toBeGreaterThan(10);
    expect([...queried].filter((m) => !families.has(m))).toEqual([]);
  });
});
