/**
 * The metrics port in AWS: CloudWatch Embedded Metric Format lines on stdout, written with
 * Powertools for AWS Lambda Metrics under the namespace the dashboard and alarms read
 * (lib/ci-metrics.ts). Metrics are held until `flush()` at the end of the invocation, then
 * written as one EMF document per dimension set.
 *
 * Powertools adds a `service` dimension to everything by default; it is cleared, because
 * CloudWatch files a metric under its exact dimension set and lib/ queries `RunningNodes` with
 * none and `BuildsFinished` with `Result` only. A metric without dimensions is written with the
 * empty dimension set (`"Dimensions": [[]]`).
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { CountMetric, MetricDimensions, MetricName, MetricsPort, SecondsMetric } from '../control/ports';

export const METRICS_NAMESPACE = 'AkandaCi';

/** EMF allows 100 values of one metric per document. */
const MAX_VALUES_PER_DOCUMENT = 100;

interface PendingMetric {
  name: MetricName;
  unit: typeof MetricUnit.Count | typeof MetricUnit.Seconds;
  value: number;
  dimensions: Record<string, string>;
}

export interface EmfMetricsOptions {
  /** Told about a metric that could not be recorded or written; the caller goes on either way. */
  onError?: (message: string, error: unknown) => void;
}

export class EmfMetrics implements MetricsPort {
  private readonly metrics: Metrics;
  private pending: PendingMetric[] = [];

  constructor(private readonly options: EmfMetricsOptions = {}) {
    this.metrics = new Metrics({ namespace: METRICS_NAMESPACE });
    this.metrics.clearDefaultDimensions();
  }

  count<N extends CountMetric>(name: N, value: number, dimensions: MetricDimensions[N]): void {
    this.add(name, MetricUnit.Count, value, dimensions);
  }

  seconds<N extends SecondsMetric>(name: N, value: number, dimensions: MetricDimensions[N]): void {
    this.add(name, MetricUnit.Seconds, value, dimensions);
  }

  /** Writes what this invocation recorded. Never throws: a lost metric must not fail a handler. */
  flush(): void {
    const pending = this.pending;
    this.pending = [];
    const bySet = new Map<string, PendingMetric[]>();
    for (const metric of pending) {
      const key = JSON.stringify(Object.entries(metric.dimensions).sort(([a], [b]) => a.localeCompare(b)));
      bySet.set(key, [...(bySet.get(key) ?? []), metric]);
    }
    for (const group of bySet.values()) {
      for (let start = 0; start < group.length; start += MAX_VALUES_PER_DOCUMENT) {
        const chunk = group.slice(start, start + MAX_VALUES_PER_DOCUMENT);
        try {
          this.metrics.addDimensions(chunk[0]?.dimensions ?? {});
          for (const metric of chunk) this.metrics.addMetric(metric.name, metric.unit, metric.value);
          // Powertools already wrote the document itself if a metric reached 100 values.
          if (this.metrics.hasStoredMetrics()) this.metrics.publishStoredMetrics();
        } catch (error) {
          this.options.onError?.('metrics not written', error);
          this.metrics.clearMetrics();
          this.metrics.clearDimensions();
        }
      }
    }
  }

  private add(name: MetricName, unit: PendingMetric['unit'], value: number, dimensions: object): void {
    const values = Object.entries(dimensions);
    if (!Number.isFinite(value) || values.some(([, v]) => typeof v !== 'string' || v === '')) {
      this.options.onError?.(`metric ${name} not recorded`, new RangeError(`bad value ${value} or dimensions`));
      return;
    }
    this.pending.push({ name, unit, value, dimensions: Object.fromEntries(values) as Record<string, string> });
  }
}

/** `handler` that flushes `metrics` when it returns or throws (the end of every invocation). */
export function flushingMetrics<A extends unknown[], R>(
  metrics: Pick<EmfMetrics, 'flush'>,
  handler: (...args: A) => Promise<R>,
): (...args: A) => Promise<R> {
  return async (...args: A) => {
    try {
      return await handler(...args);
    } finally {
      metrics.flush();
    }
  };
}
