import { runtimeConfig } from '../../lambda/adapters/runtime-config';

const saved = process.env.AKANDA_CI_CONFIG_JSON;
afterEach(() => {
  if (saved === undefined) delete process.env.AKANDA_CI_CONFIG_JSON;
  else process.env.AKANDA_CI_CONFIG_JSON = saved;
});

const minimal = {
  gerrit: { url: 'https://review.example.org', username: 'ci' },
  nodes: { small: { instanceTypes: ['c8i.large'] } },
  jobs: [{ name: 'pep8', node: 'small', run: 'tox -e pep8' }],
  projects: [{ name: 'stackforge/akanda-rug', check: ['pep8'] }],
};

it('reads the inlined config, validated, with defaults filled in, and re-reads when it changes', () => {
  process.env.AKANDA_CI_CONFIG_JSON = JSON.stringify(minimal);
  const config = runtimeConfig();
  expect(config.limits.maxConcurrentNodes).toBe(10);
  expect(config.jobs[0]?.timeout).toBe('60m');
  expect(runtimeConfig()).toBe(config);
  process.env.AKANDA_CI_CONFIG_JSON = JSON.stringify({ ...minimal, limits: { maxConcurrentNodes: 3 } });
  expect(runtimeConfig().limits.maxConcurrentNodes).toBe(3);
});

it('fails loudly on a missing, unparsable or invalid config', () => {
  delete process.env.AKANDA_CI_CONFIG_JSON;
  expect(() => runtimeConfig()).toThrow('AKANDA_CI_CONFIG_JSON is not set');
  process.env.AKANDA_CI_CONFIG_JSON = '{';
  expect(() => runtimeConfig()).toThrow('AKANDA_CI_CONFIG_JSON is not valid JSON');
  process.env.AKANDA_CI_CONFIG_JSON = JSON.stringify({ ...minimal, jobs: [{ ...minimal.jobs[0], timeout: 'soon' }] });
  expect(() => runtimeConfig()).toThrow('AKANDA_CI_CONFIG_JSON: jobs[0].timeout: expected a duration like 90m');
});
