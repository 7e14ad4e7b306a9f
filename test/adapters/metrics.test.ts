/**
 * The AWS metrics port: what Powertools writes to stdout is the EMF CloudWatch extracts, so the
 * tests read those lines back and check namespace, dimension sets, names, units and values
 * against what lib/ci-metrics.ts queries.
 */
import { EmfMetrics, flushingMetrics } from '../../lambda/adapters/metrics';
import { METRICS_NAMESPACE } from '../../lib/ci-metrics';

interface EmfDocument {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[];
  };
  [key: string]: unknown;
}

let written: string[];
let write: jest.SpyInstance;

beforeEach(() => {
  written = [];
  write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
});

afterEach(() => write.mockRestore());

function documents(): EmfDocument[] {
  return written
    .join('')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as EmfDocument);
}

it('writes nothing until flushed, then one EMF document per dimension set in the AkandaCi namespace', () => {
  const metrics = new EmfMetrics();
  metrics.count('BuildsFinished', 1, { Result: 'SUCCESS' });
  metrics.count('BuildsFinished', 1, { Result: 'FAILURE' });
  metrics.count('BuildsFinished', 1, { Result: 'SUCCESS' });
  metrics.seconds('NodeSeconds', 412.5, { Label: 'nested-virt' });
  metrics.count('RunningNodes', 3, {});
  metrics.count('QueuedBuilds', 0, {});
  metrics.count('LaunchFailures', 1, {});
  metrics.seconds('TimeToVoteSeconds', 1830, {});
  expect(written).toEqual([]);

  metrics.flush();
  const docs = documents();
  expect(docs).toHaveLength(4);
  for (const doc of docs) {
    expect(doc._aws.CloudWatchMetrics).toHaveLength(1);
    expect(doc._aws.CloudWatchMetrics[0]!.Namespace).toBe(METRICS_NAMESPACE);
    expect(doc._aws.CloudWatchMetrics[0]!.Namespace).toBe('AkandaCi');
    // Powertools' default `service` dimension would file every metric where lib/ never looks.
    expect(doc).not.toHaveProperty('service');
    expect(typeof doc._aws.Timestamp).toBe('number');
  }
  const [success, failure, nodes, plain] = docs;
  expect(success!._aws.CloudWatchMetrics[0]).toEqual({
    Namespace: 'AkandaCi',
    Dimensions: [['Result']],
    Metrics: [{ Name: 'BuildsFinished', Unit: 'Count' }],
  });
  expect(success).toMatchObject({ Result: 'SUCCESS', BuildsFinished: [1, 1] });
  expect(failure).toMatchObject({ Result: 'FAILURE', BuildsFinished: 1 });
  expect(nodes!._aws.CloudWatchMetrics[0]).toEqual({
    Namespace: 'AkandaCi',
    Dimensions: [['Label']],
    Metrics: [{ Name: 'NodeSeconds', Unit: 'Seconds' }],
  });
  expect(nodes).toMatchObject({ Label: 'nested-virt', NodeSeconds: 412.5 });
  // No dimensions at all: the empty dimension set, which CloudWatch files without dimensions.
  expect(plain!._aws.CloudWatchMetrics[0]).toEqual({
    Namespace: 'AkandaCi',
    Dimensions: [[]],
    Metrics: [
      { Name: 'RunningNodes', Unit: 'Count' },
      { Name: 'QueuedBuilds', Unit: 'Count' },
      { Name: 'LaunchFailures', Unit: 'Count' },
      { Name: 'TimeToVoteSeconds', Unit: 'Seconds' },
    ],
  });
  expect(plain).toMatchObject({ RunningNodes: 3, QueuedBuilds: 0, LaunchFailures: 1, TimeToVoteSeconds: 1830 });

  // Flushed means gone: the next invocation starts empty and an empty flush writes nothing.
  written = [];
  metrics.flush();
  expect(written).toEqual([]);
  metrics.count('RunningNodes', 1, {});
  metrics.flush();
  expect(documents().map((d) => d.RunningNodes)).toEqual([1]);
});

it('splits more than 100 values of one metric over documents that all keep their dimension', () => {
  const metrics = new EmfMetrics();
  for (let i = 0; i < 150; i++) metrics.count('BuildsFinished', 1, { Result: 'ABORTED' });
  metrics.flush();
  const docs = documents();
  expect(docs.map((d) => (d.BuildsFinished as number[]).length)).toEqual([100, 50]);
  for (const doc of docs) {
    expect(doc._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['Result']]);
    expect(doc.Result).toBe('ABORTED');
  }
});

it('drops a bad value or dimension with a warning, keeps the rest, and never throws', () => {
  const errors: string[] = [];
  const metrics = new EmfMetrics({ onError: (message) => errors.push(message) });
  metrics.seconds('NodeSeconds', Number.NaN, { Label: 'small' });
  metrics.count('BuildsFinished', 1, { Result: '' });
  metrics.count('QueuedBuilds', 2, {});
  expect(() => metrics.flush()).not.toThrow();
  expect(errors).toEqual(['metric NodeSeconds not recorded', 'metric BuildsFinished not recorded']);
  expect(documents()).toMatchObject([{ QueuedBuilds: 2 }]);
  expect(documents()[0]).not.toHaveProperty('NodeSeconds');
});

it('a stdout that fails does not fail the flush', () => {
  write.mockImplementation(() => {
    throw new Error('EPIPE');
  });
  const metrics = new EmfMetrics();
  metrics.count('LaunchFailures', 1, {});
  expect(() => metrics.flush()).not.toThrow();
});

it('flushes at the end of every invocation, whether the handler returns or throws', async () => {
  const metrics = new EmfMetrics();
  const handler = flushingMetrics(metrics, async (fail: boolean) => {
    metrics.count('LaunchFailures', 1, {});
    if (fail) throw new Error('handler failed');
    return 'ok';
  });
  await expect(handler(false)).resolves.toBe('ok');
  expect(documents()).toHaveLength(1);
  await expect(handler(true)).rejects.toThrow('handler failed');
  expect(documents()).toHaveLength(2);
  expect(documents().map((d) => d.LaunchFailures)).toEqual([1, 1]);
});
