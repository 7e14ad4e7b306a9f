import fc from 'fast-check';
import {
  assertNoDependencyCycle,
  DependencyCycleError,
  findDependencyCycle,
  parseDependsOn,
} from '../../lambda/core/depends-on';

const ID = 'I0123456789abcdef0123456789abcdef01234567';

describe('parseDependsOn', () => {
  it('reads every URL form', () => {
    const message = [
      'Add HA routers',
      '',
      'Depends-On: https://review.opendev.org/c/openstack/neutron/+/712345',
      'Depends-On: https://review.opendev.org/c/openstack/nova/+/700001/3',
      'Depends-On: https://review.openstack.org/#/c/187042/',
      'Depends-On: https://review.openstack.org/#/c/187044/2',
      'Depends-On: https://review.openstack.org/187043',
      'Depends-On: https://review.example.org/c/187045/',
      'Depends-On: http://gerrit.local:8080/c/stackforge%2Fakanda-rug/+/9',
      '',
      `Change-Id: ${ID}`,
    ].join('\n');
    expect(parseDependsOn(message)).toEqual([
      {
        form: 'url',
        url: 'https://review.opendev.org/c/openstack/neutron/+/712345',
        host: 'review.opendev.org',
        change: 712345,
        project: 'openstack/neutron',
      },
      {
        form: 'url',
        url: 'https://review.opendev.org/c/openstack/nova/+/700001/3',
        host: 'review.opendev.org',
        change: 700001,
        project: 'openstack/nova',
      },
      { form: 'url', url: 'https://review.openstack.org/#/c/187042/', host: 'review.openstack.org', change: 187042 },
      { form: 'url', url: 'https://review.openstack.org/#/c/187044/2', host: 'review.openstack.org', change: 187044 },
      { form: 'url', url: 'https://review.openstack.org/187043', host: 'review.openstack.org', change: 187043 },
      { form: 'url', url: 'https://review.example.org/c/187045/', host: 'review.example.org', change: 187045 },
      {
        form: 'url',
        url: 'http://gerrit.local:8080/c/stackforge%2Fakanda-rug/+/9',
        host: 'gerrit.local:8080',
        change: 9,
        project: 'stackforge/akanda-rug',
      },
    ]);
  });

  it('reads the legacy Change-Id form, normalised to lowercase hex', () => {
    expect(parseDependsOn(`x\n\nDepends-On: I0123456789ABCDEF0123456789abcdef01234567\n`)).toEqual([
      { form: 'change-id', changeId: ID },
    ]);
  });

  it('the footer key is case-insensitive and surrounding blanks do not matter', () => {
    const message = `x\n\ndepends-on: https://r.example/1\nDEPENDS-ON:https://r.example/2\n  Depends-On:   ${ID}  \n`;
    expect(parseDependsOn(message).map((f) => (f.form === 'url' ? f.change : f.changeId))).toEqual([1, 2, ID]);
  });

  it('deduplicates the same change named twice (URL forms per host and change; Change-Ids)', () => {
    const message = [
      'Depends-On: https://review.openstack.org/#/c/187042/',
      'Depends-On: https://review.openstack.org/187042',
      'Depends-On: https://review.openstack.org/c/stackforge/akanda-rug/+/187042',
      'Depends-On: https://other.example.org/187042',
      `Depends-On: ${ID}`,
      `Depends-On: ${ID.toUpperCase().replace(/^I/, 'I')}`,
    ].join('\n');
    const footers = parseDependsOn(message);
    expect(footers.map((f) => (f.form === 'url' ? `${f.host}/${f.change}` : f.changeId))).toEqual([
      'review.openstack.org/187042',
      'other.example.org/187042',
      ID,
    ]);
  });

  it('skips values that are not a change: other schemes, credentials, junk, hostile projects', () => {
    const message = [
      'Depends-On: ftp://review.example.org/1',
      'Depends-On: https://user:pw@review.example.org/1',
      'Depends-On: https://review.example.org/c/a/+/x',
      'Depends-On: https://review.example.org/q/status:open',
      'Depends-On: https://review.example.org/c/%24(id)/+/5',
      'Depends-On: https://review.example.org/c/%E0%A4%A/+/5',
      'Depends-On: https://review.example.org/0',
      'Depends-On: https://review.example.org/99999999999',
      'Depends-On: not a url at all',
      'Depends-On: I123',
      `Depends-On: https://review.example.org/${'1'.repeat(600)}`,
      'Depends-On:',
      'Mentions Depends-On: https://review.example.org/8 mid-line',
    ].join('\n');
    expect(parseDependsOn(message)).toEqual([]);
  });

  it('an empty message has none', () => {
    expect(parseDependsOn('')).toEqual([]);
  });
});

describe('findDependencyCycle', () => {
  const graph = (edges: Record<string, string[]>) => new Map(Object.entries(edges));

  it('finds no cycle in a chain, a diamond or an empty graph', () => {
    expect(findDependencyCycle(graph({}))).toBeUndefined();
    expect(findDependencyCycle(graph({ a: ['b'], b: ['c'], c: [] }))).toBeUndefined();
    expect(findDependencyCycle(graph({ a: ['b', 'c'], b: ['d'], c: ['d'], d: [] }))).toBeUndefined();
    expect(findDependencyCycle(graph({ a: ['unknown'] }))).toBeUndefined();
  });

  it('returns the path that closes a cycle', () => {
    expect(findDependencyCycle(graph({ a: ['b'], b: ['a'] }))).toEqual(['a', 'b', 'a']);
    expect(findDependencyCycle(graph({ a: ['a'] }))).toEqual(['a', 'a']);
    expect(findDependencyCycle(graph({ x: ['a'], a: ['b'], b: ['c'], c: ['a'] }))).toEqual(['a', 'b', 'c', 'a']);
  });

  it('finds a cycle reachable only from a later node', () => {
    expect(findDependencyCycle(graph({ a: [], b: ['c'], c: ['d'], d: ['b'] }))).toEqual(['b', 'c', 'd', 'b']);
  });

  it('handles a chain of 100,000 changes without overflowing the stack', () => {
    const chain = new Map<string, string[]>();
    for (let i = 0; i < 100000; i++) chain.set(`c${i}`, [`c${i + 1}`]);
    expect(findDependencyCycle(chain)).toBeUndefined();
    chain.set('c100000', ['c0']);
    // Compare lengths, not arrays: a failure must not print 100,000 names.
    const cycle = findDependencyCycle(chain);
    expect(cycle?.length).toBe(100002);
    expect([cycle?.[0], cycle?.[100001]]).toEqual(['c0', 'c0']);
  });
});

describe('findDependencyCycle, property-based', () => {
  /** Edges as index pairs over `size` nodes named n0..n(size-1). */
  const arbitraryGraph = fc.integer({ min: 1, max: 12 }).chain((size) =>
    fc.record({
      size: fc.constant(size),
      edges: fc.array(fc.tuple(fc.nat(size - 1), fc.nat(size - 1)), { maxLength: 30 }),
    }),
  );
  const toGraph = (size: number, edges: readonly (readonly [number, number])[]) => {
    const graph = new Map<string, string[]>();
    for (let i = 0; i < size; i++) graph.set(`n${i}`, []);
    for (const [from, to] of edges) graph.get(`n${from}`)!.push(`n${to}`);
    return graph;
  };
  /** Kahn's algorithm, an independent oracle: a graph is acyclic iff every node can be peeled off. */
  const acyclic = (graph: Map<string, string[]>) => {
    const dependents = new Map<string, number>([...graph.keys()].map((node) => [node, 0]));
    for (const targets of graph.values()) for (const t of targets) dependents.set(t, dependents.get(t)! + 1);
    const free = [...dependents].filter(([, n]) => n === 0).map(([node]) => node);
    let peeled = 0;
    for (let node = free.pop(); node !== undefined; node = free.pop()) {
      peeled++;
      for (const t of graph.get(node)!) {
        dependents.set(t, dependents.get(t)! - 1);
        if (dependents.get(t) === 0) free.push(t);
      }
    }
    return peeled === graph.size;
  };

  it('finds a cycle exactly when the graph has one, and the path it returns is a real cycle', () => {
    fc.assert(
      fc.property(arbitraryGraph, ({ size, edges }) => {
        const graph = toGraph(size, edges);
        const cycle = findDependencyCycle(graph);
        expect(cycle === undefined).toBe(acyclic(graph));
        if (cycle) {
          expect(cycle[0]).toBe(cycle[cycle.length - 1]);
          expect(new Set(cycle.slice(1)).size).toBe(cycle.length - 1);
          for (let i = 0; i + 1 < cycle.length; i++) expect(graph.get(cycle[i]!)).toContain(cycle[i + 1]);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('detects any cycle planted in an otherwise acyclic graph', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 12 }),
        fc.array(fc.tuple(fc.nat(11), fc.nat(11)), { maxLength: 30 }),
        fc.uniqueArray(fc.nat(11), { minLength: 1, maxLength: 6 }),
        (size, edges, loop) => {
          // Acyclic: only edges from a lower to a higher index.
          const forward = edges.filter(([a, b]) => a < size && b < size && a < b);
          const planted = loop.filter((n) => n < size);
          fc.pre(planted.length > 0);
          const cycleEdges = planted.map((n, i): [number, number] => [n, planted[(i + 1) % planted.length]!]);
          expect(findDependencyCycle(toGraph(size, forward))).toBeUndefined();
          expect(findDependencyCycle(toGraph(size, [...forward, ...cycleEdges]))).toBeDefined();
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('assertNoDependencyCycle', () => {
  it('passes an acyclic graph and names the cycle otherwise', () => {
    expect(() => assertNoDependencyCycle(new Map([['a', ['b']]]))).not.toThrow();
    const cyclic = new Map([
      ['stackforge/akanda-rug~12', ['stackforge/akanda-neutron~13']],
      ['stackforge/akanda-neutron~13', ['stackforge/akanda-rug~12']],
    ]);
    expect(() => assertNoDependencyCycle(cyclic)).toThrow(
      new DependencyCycleError([
        'stackforge/akanda-rug~12',
        'stackforge/akanda-neutron~13',
        'stackforge/akanda-rug~12',
      ]),
    );
    expect(() => assertNoDependencyCycle(cyclic)).toThrow(
      'Depends-On cycle: stackforge/akanda-rug~12 -> stackforge/akanda-neutron~13 -> stackforge/akanda-rug~12',
    );
  });
});
