/**
 * A Gerrit stand-in for the job scripts: bare repositories for the Akanda and OpenStack projects
 * the devstack job prepares, with master, stable/kilo (or its kilo-eol tag, as OpenStack retires
 * branches) and change refs, served to the scripts as file:// URLs.
 */
import { join } from 'node:path';
import { ChangeRef, UpstreamProject } from './support';

export const AKANDA = {
  rug: 'stackforge/akanda-rug',
  neutron: 'stackforge/akanda-neutron',
  appliance: 'stackforge/akanda-appliance',
  builder: 'stackforge/akanda-appliance-builder',
  horizon: 'stackforge/akanda-horizon',
} as const;

export const OPENSTACK = [
  'openstack/devstack',
  'openstack/requirements',
  'openstack/keystone',
  'openstack/glance',
  'openstack/nova',
  'openstack/neutron',
  'openstack/placement',
  'openstack/tempest',
] as const;

const ELEMENT = {
  'diskimage-builder/elements/akanda/element-deps': 'source-repositories\n',
  'diskimage-builder/elements/akanda/source-repository-akanda':
    'akanda git /usr/local/share/akanda-appliance https://review.opendev.org/stackforge/akanda-appliance\n',
  'diskimage-builder/elements/akanda/README.rst': 'The Akanda appliance element.\n',
};

const TOX_TESTENV = `[tox]
skipsdist = True

[testenv]
basepython = python3
skip_install = True
sitepackages = True
allowlist_externals = stestr
`;

/** Stand-ins for what the real job runs: devstack's stack.sh, Tempest's and the rug's test suites. */
const FAKES: Record<string, Record<string, string>> = {
  'openstack/devstack': {
    // Writes a log where devstack's LOGDIR is and exits as the test asks.
    'stack.sh':
      '#!/bin/bash\nset -eu\nTOP=$(cd "$(dirname "$0")" && pwd)\nmkdir -p "$TOP/../logs"\n' +
      'echo "stack.sh ran with $(grep -c . "$TOP/local.conf") lines of local.conf" >"$TOP/../logs/stack.sh.log"\n' +
      'echo "q-svc started" >"$TOP/../logs/screen-q-svc.log"\nsleep "${AKANDA_FAKE_STACK_SLEEP:-0}"\n' +
      'exit "${AKANDA_FAKE_STACK_EXIT:-0}"\n',
  },
  'openstack/tempest': {
    'tox.ini': `${TOX_TESTENV}\n[testenv:all]\ncommands = stestr --test-path ./tempest_tests run {posargs}\n`,
    'tempest_tests/__init__.py': '',
    'tempest_tests/test_network.py':
      'import unittest\n\n\nclass TestRouters(unittest.TestCase):\n    def test_create_router(self):\n        pass\n\n' +
      '    @unittest.skip("no IPv6 on this cloud")\n    def test_ipv6_router(self):\n        pass\n',
  },
  'stackforge/akanda-rug': {
    'tox.ini': `${TOX_TESTENV}\n[testenv:functional]\ncommands = stestr --test-path ./functional run {posargs}\n`,
    'functional/__init__.py': '',
    'functional/test_appliance.py':
      'import unittest\n\n\nclass TestAppliance(unittest.TestCase):\n    def test_router_boots(self):\n        pass\n',
  },
};

export class World {
  readonly gitBase: string;
  readonly projects = new Map<string, UpstreamProject>();
  /** A change to akanda-rug on master, and one on stable/kilo. */
  readonly rugChange: ChangeRef;
  readonly rugKiloChange: ChangeRef;
  /** A change to akanda-appliance on master (the image must contain it). */
  readonly applianceChange: ChangeRef;

  constructor(readonly root: string) {
    this.gitBase = join(root, 'git');
    for (const name of [...Object.values(AKANDA), ...OPENSTACK]) {
      const project = new UpstreamProject(this.gitBase, name, root);
      const files: Record<string, string> = { 'README.rst': `${name}\n` };
      if (name === AKANDA.appliance) Object.assign(files, ELEMENT);
      Object.assign(files, FAKES[name] ?? {});
      const master = project.branch('master', `initial ${name}`, files);
      if (name === AKANDA.builder) {
        // Retired: the branch is gone, only its end-of-life tag is left.
        project.push(project.commit(`kilo ${name}`, {}, master), 'refs/tags/kilo-eol');
      } else if (name !== AKANDA.horizon) {
        project.branch('stable/kilo', `kilo ${name}`, { 'KILO.rst': 'kilo\n' }, master);
      }
      this.projects.set(name, project);
    }
    const rug = this.project(AKANDA.rug);
    this.rugChange = rug.change(12345, 3, rug.head('master'), { 'akanda/rug/fix.py': 'fixed = True\n' });
    this.rugKiloChange = rug.change(12399, 1, rug.head('stable/kilo'), { 'akanda/rug/backport.py': 'x = 1\n' });
    const appliance = this.project(AKANDA.appliance);
    this.applianceChange = appliance.change(4567, 2, appliance.head('master'), {
      'akanda/router/fix.py': 'routed = True\n',
    });
  }

  project(name: string): UpstreamProject {
    const project = this.projects.get(name);
    if (!project) throw new Error(`no upstream project ${name}`);
    return project;
  }

  get gitUrl(): string {
    return `file://${this.gitBase}`;
  }
}
