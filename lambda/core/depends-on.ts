/**
 * `Depends-On:` footers: changes (usually in other projects) that must be tested together with
 * this one. Only parsing lives here; resolving a footer to a project, branch and ref is an
 * adapter's job (it needs Gerrit REST), and once resolved, `findDependencyCycle` tells the
 * scheduler whether the changes depend on each other in a loop, which is never run.
 */
import { isGerritNumber, isValidName } from './names';

export type DependsOnFooter =
  /** `Depends-On: https://review.example.org/c/<project>/+/<change>` (and older URL shapes). */
  | { form: 'url'; url: string; host: string; change: number; project?: string }
  /** Deprecated `Depends-On: I<40 hex>`: a Change-Id, which may name changes on several branches. */
  | { form: 'change-id'; changeId: string };

// Zuul's footer rule: one per line, key case-insensitive, anywhere in the message.
const FOOTER = /^[ \t]*depends-on:[ \t]*(\S+)[ \t]*$/gim;
const CHANGE_ID = /^I[0-9a-fA-F]{40}$/;
const MAX_URL_LENGTH = 500;

/** Every Depends-On footer of a commit message, deduplicated, in order; unreadable ones are skipped. */
export function parseDependsOn(commitMessage: string): DependsOnFooter[] {
  const footers: DependsOnFooter[] = [];
  const seen = new Set<string>();
  for (const match of commitMessage.matchAll(FOOTER)) {
    const footer = parseFooterValue(match[1] ?? '');
    if (!footer) continue;
    const key = footer.form === 'url' ? `${footer.host}/${footer.change}` : footer.changeId;
    if (seen.has(key)) continue;
    seen.add(key);
    footers.push(footer);
  }
  return footers;
}

function parseFooterValue(value: string): DependsOnFooter | undefined {
  if (CHANGE_ID.test(value)) return { form: 'change-id', changeId: `I${value.slice(1).toLowerCase()}` };
  if (value.length > MAX_URL_LENGTH) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  if (url.username || url.password) return undefined;
  // The change is in the path, or after `#` for the old GWT UI (`/#/c/12345/`).
  const target = url.hash.startsWith('#/') ? url.hash.slice(1) : url.pathname;
  const located = locateChange(target);
  if (!located) return undefined;
  const footer: DependsOnFooter = { form: 'url', url: url.href, host: url.host.toLowerCase(), change: located.change };
  if (located.project !== undefined) footer.project = located.project;
  return footer;
}

/**
 * The change (and project, when named) in a Gerrit UI path:
 * `/c/<project>/+/<n>[/<ps>]`, `/c/<n>[/<ps>]`, `/<n>[/]`, each with an optional trailing `/`.
 */
function locateChange(path: string): { change: number; project?: string } | undefined {
  const withProject = /^\/c\/(.+?)\/\+\/(\d+)(?:\/\d+)?\/?$/.exec(path);
  if (withProject) {
    const project = safeDecode(withProject[1] ?? '');
    const change = Number(withProject[2]);
    if (project === undefined || !isValidName('project', project) || !isGerritNumber(change)) return undefined;
    return { change, project };
  }
  const bare = /^(?:\/c)?\/(\d+)(?:\/\d+)?\/?$/.exec(path);
  if (bare) {
    const change = Number(bare[1]);
    return isGerritNumber(change) ? { change } : undefined;
  }
  return undefined;
}

function safeDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/**
 * A cycle in a dependency graph (node -> the nodes it depends on), as the path that closes it
 * (`['a', 'b', 'a']`), or undefined when there is none. Iterative, so deep chains cannot
 * overflow the stack; nodes that only appear as dependencies count as leaves.
 */
export function findDependencyCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const done = new Set<string>();
  for (const start of graph.keys()) {
    if (done.has(start)) continue;
    const path: string[] = [];
    const onPath = new Set<string>();
    const stack: { node: string; next: number }[] = [{ node: start, next: 0 }];
    path.push(start);
    onPath.add(start);
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const dependencies = graph.get(frame.node) ?? [];
      if (frame.next >= dependencies.length) {
        stack.pop();
        path.pop();
        onPath.delete(frame.node);
        done.add(frame.node);
        continue;
      }
      const dependency = dependencies[frame.next++]!;
      if (onPath.has(dependency)) return [...path.slice(path.indexOf(dependency)), dependency];
      if (done.has(dependency)) continue;
      stack.push({ node: dependency, next: 0 });
      path.push(dependency);
      onPath.add(dependency);
    }
  }
  return undefined;
}

/** Changes that depend on each other in a loop: Zuul does not run them, neither do we. */
export class DependencyCycleError extends Error {
  override readonly name = 'DependencyCycleError';
  constructor(readonly cycle: readonly string[]) {
    super(`Depends-On cycle: ${cycle.join(' -> ')}`);
  }
}

/** Throws DependencyCycleError (`Depends-On cycle: a -> b -> a`) when the graph has a cycle. */
export function assertNoDependencyCycle(graph: ReadonlyMap<string, readonly string[]>): void {
  const cycle = findDependencyCycle(graph);
  if (cycle) throw new DependencyCycleError(cycle);
}
