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
