/**
 * Property-based tests: no generated input (random JSON, mutated real fixtures, hostile strings)
 * makes the parser or planner fail with anything but a one-line EventError, and whatever they do
 * accept only carries names that passed names.ts.
 */
import fc from 'fast-check';
import { ConfigError, validateConfig } from '../../lambda/core/config';
import { findDependencyCycle, parseDependsOn } from '../../lambda/core/depends-on';
import { EventError, parseGerritEvent } from '../../lambda/core/events';
import { isGerritNumber, isValidName, nameProblem, validateChangeRef } from '../../lambda/core/names';
import { Plan, planEvent } from '../../lambda/core/planner';
import { fixture, fixtureNames, shippedConfig, smallConfig } from './support';

const configs = [shippedConfig(), smallConfig()];

/** Strings meant to hurt: shell, options, paths, control characters, unicode look-alikes, huge. */
const hostileString = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '-',
    '--upload-pack=touch /tmp/pwned',
    '$(id)',
    '`id`',
    'a;b',
    'a&&b',
    'a|b',
    '../../etc/passwd',
    'refs/heads/../x',
    'a\nb',
    'a\u0000b',
    '\u202emaster',
    'ma\u0455ter',
    'master.lock',
    'a@{1}',
    '@',
    '.hidden',
    'x'.repeat(10000),
    '__proto__',
    'constructor',
    'toString',
    'NaN',
    '1e309',
    '-0',
    '0x10',
    ' 42 ',
  ),
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.stringMatching(/^[a-z/._-]{0,30}$/),
);

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.jsonValue({ maxDepth: 2 }),
);

function assertGoodPlan(plan: Plan): void {
  expect(Array.isArray(plan.triggered)).toBe(true);
  expect(plan.ignored === undefined).toBe(plan.triggered.length > 0);
  for (const buildset of plan.triggered) {
    expect(nameProblem('project', buildset.project)).toBeUndefined();
    expect(nameProblem('branch', buildset.branch)).toBeUndefined();
    expect(nameProblem('ref', buildset.ref)).toBeUndefined();
    expect(nameProblem('revision', buildset.revision)).toBeUndefined();
    if (buildset.pipeline === 'post') {
      expect(buildset.ref).toBe(`refs/heads/${buildset.branch}`);
      expect(buildset.change).toBeUndefined();
    } else {
      expect(validateChangeRef(buildset.ref, buildset.change!, buildset.patchset!)).toBe(buildset.ref);
      if (buildset.changeId !== undefined) expect(nameProblem('changeId', buildset.changeId)).toBeUndefined();
    }
    expect(buildset.jobs.length).toBeGreaterThan(0);
    for (const job of buildset.jobs) {
      expect(['build', 'prebuilt', 'none']).toContain(job.imageMode);
      if (job.imageMode !== 'prebuilt') expect(job.imageUrl).toBeUndefined();
    }
  }
  for (const supersede of plan.supersedes) {
    expect(isGerritNumber(supersede.change)).toBe(true);
    expect(isGerritNumber(supersede.belowPatchset)).toBe(true);
  }
}

/** Plans, and allows exactly two outcomes: a well-formed plan, or a one-line EventError. */
function planOrEventError(raw: unknown): void {
  for (const config of configs) {
    let plan: Plan;
    try {
      plan = planEvent(config, raw, { imageBaseUrl: 'https://images.example.org' });
    } catch (error) {
      if (!(error instanceof EventError)) throw error;
      expect(error.message).not.toMatch(/[\n\r]/);
      expect(error.message.length).toBeLessThan(400);
      continue;
    }
    assertGoodPlan(plan);
  }
}

type Path = (string | number)[];

function allPaths(value: unknown, prefix: Path = []): Path[] {
  if (typeof value !== 'object' || value === null) return [prefix];
  const entries: [string | number, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : Object.entries(value as Record<string, unknown>);
  return [prefix, ...entries.flatMap(([key, child]) => allPaths(child, [...prefix, key]))];
}

function setAtPath(root: unknown, path: Path, value: unknown, remove: boolean): unknown {
  if (path.length === 0) return value;
  let node = root as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null) return root;
    node = next as Record<string | number, unknown>;
  }
  const last = path[path.length - 1]!;
  if (remove) delete node[last];
  else node[last] = value;
  return root;
}

const FIXTURES = fixtureNames();

describe('no generated input crashes the parser or the planner', () => {
  it('random JSON values', () => {
    fc.assert(fc.property(fc.jsonValue(), planOrEventError), { numRuns: 500 });
  });

  it('random JavaScript values (not only JSON)', () => {
    fc.assert(fc.property(fc.anything(), planOrEventError), { numRuns: 300 });
  });

  it('random text as the JSON body', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), planOrEventError), { numRuns: 300 });
  });

  it('objects with a real event type and random fields', () => {
    const types = fc.constantFrom(
      'patchset-created',
      'comment-added',
      'change-merged',
      'change-abandoned',
      'change-restored',
      'ref-updated',
      'wip-state-changed',
      'private-state-changed',
    );
    const event = fc.record({
      type: types,
      change: fc.option(
        fc.dictionary(fc.constantFrom('project', 'branch', 'number', 'id', 'status', 'open'), hostileValue),
      ),
      patchSet: fc.option(fc.dictionary(fc.constantFrom('number', 'revision', 'ref', 'isDraft'), hostileValue)),
      refUpdate: fc.option(fc.dictionary(fc.constantFrom('project', 'refName', 'oldRev', 'newRev'), hostileValue)),
      approvals: fc.option(fc.array(fc.dictionary(fc.constantFrom('type', 'value', 'oldValue'), hostileValue))),
      comment: hostileValue,
    });
    fc.assert(fc.property(event, planOrEventError), { numRuns: 500 });
  });

  it('real fixtures with random fields replaced or deleted', () => {
    const mutation = fc.record({ at: fc.nat(), value: hostileValue, remove: fc.boolean() });
    const arbitrary = fc.record({
      name: fc.constantFrom(...FIXTURES),
      mutations: fc.array(mutation, { minLength: 1, maxLength: 4 }),
    });
    fc.assert(
      fc.property(arbitrary, ({ name, mutations }) => {
        let event: unknown = fixture(name);
        for (const { at, value, remove } of mutations) {
          const paths = allPaths(event);
          event = setAtPath(event, paths[at % paths.length]!, value, remove);
        }
        planOrEventError(event);
      }),
      { numRuns: 1500 },
    );
  });

  it('hostile project, branch, ref and revision values in real fixtures never reach a plan', () => {
    const targets: Path[] = [
      ['change', 'project'],
      ['change', 'branch'],
      ['patchSet', 'ref'],
      ['patchSet', 'revision'],
      ['change', 'id'],
    ];
    const arbitrary = fc.record({
      name: fc.constantFrom('ssh-new-patchset-created.json', 'webhook-new-comment-added-recheck.json'),
      target: fc.constantFrom(...targets),
      value: hostileString,
    });
    fc.assert(
      fc.property(arbitrary, ({ name, target, value }) => {
        const event = setAtPath(fixture(name), target, value, false);
        planOrEventError(event);
      }),
      { numRuns: 800 },
    );
  });

  it('hostile ref-updated values never reach a plan', () => {
    const arbitrary = fc.record({
      project: fc.oneof(hostileString, fc.constant('stackforge/akanda-appliance')),
      refName: fc.oneof(hostileString, fc.constantFrom('master', 'refs/heads/stable/kilo')),
      newRev: fc.oneof(hostileString, fc.stringMatching(/^[0-9a-fA-F]{40}$/)),
    });
    fc.assert(
      fc.property(arbitrary, (refUpdate) => planOrEventError({ type: 'ref-updated', refUpdate })),
      { numRuns: 800 },
    );
  });
});

describe('names, Depends-On and dependency cycles under generated input', () => {
  it('an accepted name has no shell metacharacter, whitespace, control character or leading dash', () => {
    fc.assert(
      fc.property(fc.oneof(hostileString, fc.stringMatching(/^[ -~]{0,20}$/)), (value) => {
        for (const kind of ['project', 'branch', 'ref'] as const) {
          if (!isValidName(kind, value)) continue;
          expect(value).not.toMatch(/[\s$`;&|<>()'"\\*?[\]~^:{}!#%=,@]/);
          expect([...value].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)).toBe(false);
          expect(value.split('/').some((part) => part.startsWith('-') || part.startsWith('.') || part === '')).toBe(
            false,
          );
          expect(value).not.toContain('..');
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('parseDependsOn never throws and returns only valid changes and projects', () => {
    const footerLine = fc
      .tuple(fc.constantFrom('Depends-On: ', 'depends-on:', 'DEPENDS-ON:  '), hostileString)
      .map(([key, value]) => `${key}${value}`);
    const message = fc.array(fc.oneof(footerLine, hostileString), { maxLength: 8 }).map((lines) => lines.join('\n'));
    fc.assert(
      fc.property(message, (text) => {
        for (const footer of parseDependsOn(text)) {
          if (footer.form === 'url') {
            expect(isGerritNumber(footer.change)).toBe(true);
            if (footer.project !== undefined) expect(isValidName('project', footer.project)).toBe(true);
          } else {
            expect(isValidName('changeId', footer.changeId)).toBe(true);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('findDependencyCycle returns a real cycle, or there is a topological order', () => {
    const graph = fc
      .array(fc.tuple(fc.integer({ min: 0, max: 12 }), fc.array(fc.integer({ min: 0, max: 14 }), { maxLength: 4 })))
      .map((edges) => new Map(edges.map(([from, to]) => [`n${from}`, to.map((t) => `n${t}`)])));
    fc.assert(
      fc.property(graph, (g) => {
        const cycle = findDependencyCycle(g);
        if (cycle) {
          expect(cycle[0]).toBe(cycle[cycle.length - 1]);
          for (let i = 0; i + 1 < cycle.length; i++) expect(g.get(cycle[i]!) ?? []).toContain(cycle[i + 1]);
          return;
        }
        // Kahn's algorithm must then order every node.
        const nodes = new Set([...g.keys(), ...[...g.values()].flat()]);
        const remaining = new Map([...nodes].map((n) => [n, new Set(g.get(n) ?? [])]));
        let progress = true;
        while (progress) {
          progress = false;
          for (const [node, deps] of remaining) {
            if ([...deps].every((d) => !remaining.has(d))) {
              remaining.delete(node);
              progress = true;
            }
          }
        }
        expect(remaining.size).toBe(0);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('config validation under generated input', () => {
  it('a mutated shipped config is either valid or a ConfigError, never a crash', () => {
    const base = JSON.parse(JSON.stringify(shippedConfig())) as unknown;
    const mutation = fc.record({ at: fc.nat(), value: hostileValue, remove: fc.boolean() });
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
        let document: unknown = JSON.parse(JSON.stringify(base));
        for (const { at, value, remove } of mutations) {
          const paths = allPaths(document);
          document = setAtPath(document, paths[at % paths.length]!, value, remove);
        }
        try {
          validateConfig(document, 'fuzz.yaml');
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
          for (const line of error.message.split('\n')) expect(line).toMatch(/^fuzz\.yaml: \S.*: .+/);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('parseGerritEvent of any JSON is an event or an EventError', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          expect(typeof parseGerritEvent(value).type).toBe('string');
        } catch (error) {
          expect(error).toBeInstanceOf(EventError);
        }
      }),
      { numRuns: 300 },
    );
  });
});
