/**
 * End to end through `akanda-ci local`: Gerrit stand-in (REST with `)]}'` and basic auth) and real
 * bare git repositories holding change refs; the real node agent runs each job's shell one-liner
 * in a checkout. One local instance serves every test in turn (each test uses its own change);
 * short job timeouts, a fast reaper and scaled review retries come from the config and flags.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ConfigInput } from '../../lambda/core/config';
import { GerritStandin, type RecordedReview } from '../support/gerrit-standin';
import { createGitRepos, type GitRepos } from '../support/git-repos';
import { type LocalProcess, startLocalProcess } from './local-process';

const WEBHOOK_TOKEN = randomBytes(16).toString('hex');
const FOOTER = 'akanda-ci contact: https://wiki.example.org/AkandaCI';

let gerrit: GerritStandin;
let repos: GitRepos;
let local: LocalProcess;
let workDir: string;
let nextChange = 101;

function config(): ConfigInput {
  return {
    gerrit: { url: gerrit.url, gitUrl: repos.gitUrl, username: gerrit.username },
    nodes: { local: { instanceTypes: ['local'] } },
    jobs: [
      {
        name: 'unit',
        node: 'local',
        timeout: '2m',
        run: 'cat README.rst && echo "built $AKANDA_CI_PROJECT $AKANDA_CI_CHANGE,$AKANDA_CI_PATCHSET" && echo extra > "$AKANDA_CI_LOG_DIR/extra.txt"',
      },
      { name: 'flaky-nv', node: 'local', timeout: '2m', voting: false, run: 'echo "non-voting and failing"; exit 1' },
      { name: 'broken', node: 'local', timeout: '2m', run: 'echo "about to fail"; exit 3' },
      { name: 'hang', node: 'local', timeout: '2s', run: 'echo hanging; sleep 600' },
      { name: 'slow', node: 'local', timeout: '2m', run: 'sleep "$(cat delay)"; echo "slept $(cat delay)"' },
      {
        name: 'with-lib',
        node: 'local',
        timeout: '2m',
        run: 'echo "prepared: $AKANDA_CI_PREPARED_PROJECTS" && grep -q "lib change" "$AKANDA_CI_WORKSPACE/e2e/lib/lib.txt"',
      },
      {
        name: 'publish',
        node: 'local',
        timeout: '2m',
        publishesImage: true,
        // The image build in miniature: an image and its sha256sum line, the checksum written by a
        // file in the repository (a tampering job writes a wrong one).
        run: 'cat image > "$AKANDA_CI_ARTIFACT_DIR/akanda-appliance.qcow2" && cd "$AKANDA_CI_ARTIFACT_DIR" && sha256sum akanda-appliance.qcow2 > akanda-appliance.qcow2.sha256 && if [ -f "$OLDPWD/tamper" ]; then echo "0000000000000000000000000000000000000000000000000000000000000000  akanda-appliance.qcow2" > akanda-appliance.qcow2.sha256; fi',
      },
    ],
    projects: [
      { name: 'e2e/pass', check: ['unit', 'flaky-nv'] },
      { name: 'e2e/fail', check: ['broken'] },
      { name: 'e2e/hang', check: ['hang'] },
      { name: 'e2e/slow', check: ['slow'] },
      { name: 'e2e/image', post: ['publish'] },
      { name: 'e2e/app', check: ['with-lib'] },
      { name: 'e2e/lib' },
    ],
    report: { footer: FOOTER },
    limits: { timeoutGrace: '1s', maxAttempts: 3, maxConcurrentNodes: 4 },
  };
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'akanda-ci-e2e-'));
  gerrit = await GerritStandin.start();
  repos = await createGitRepos(join(workDir, 'git'));
  for (const project of ['e2e/pass', 'e2e/fail', 'e2e/hang', 'e2e/slow', 'e2e/image', 'e2e/app', 'e2e/lib']) {
    await repos.createProject(project, { files: { 'README.rst': `${project} readme\n`, delay: '0\n' } });
  }
  const configPath = join(workDir, 'akanda-ci.yaml');
  await writeFile(configPath, stringify(config()));
  local = await startLocalProcess({
    configPath,
    dataDir: join(workDir, 'data'),
    env: { WEBHOOK_TOKEN, GERRIT_HTTP_PASSWORD: gerrit.password },
    args: ['--reaper-interval', '0.2', '--retry-scale', '0.005'],
  });
});

afterAll(async () => {
  const code = await local?.stop();
  await gerrit?.close();
  await rm(workDir, { recursive: true, force: true });
  expect(code).toBe(0);
});

async function newChange(project: string, files: Record<string, string> = {}, commitMessage?: string) {
  const number = nextChange++;
  const created = await repos.addChange(project, {
    change: number,
    patchset: 1,
    files: { 'change.txt': 'x', ...files },
  });
  gerrit.createChange({
    project,
    number,
    revision: created.revision,
    files: ['change.txt', ...Object.keys(files)],
    ...(commitMessage ? { commitMessage } : {}),
  });
  return { number, revision: created.revision };
}

async function postEvent(event: unknown, token = WEBHOOK_TOKEN): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${local.url}/webhook/${token}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json; charset=utf-8' },
    body: typeof event === 'string' ? event : JSON.stringify(event),
  });
  return { status: response.status, body: await response.json() };
}

function reviewsOf(change: number): RecordedReview[] {
  return gerrit.reviews.filter((r) => r.changeNumber === change);
}

function message(review: RecordedReview): string {
  return String(review.input.message);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

it('votes +1 on a passing change, with a Zuul-style report and browsable logs', async () => {
  const change = await newChange('e2e/pass');
  const answer = await postEvent(gerrit.patchsetCreatedEvent(change.number));
  expect(answer.status).toBe(202);

  const [review] = await gerrit.waitForReviews(1, { change: change.number });
  expect(review!.revision).toBe(change.revision);
  expect(review!.changeLocator).toMatch(/^e2e\/pass~master~I[0-9a-f]{40}$/);
  expect(review!.input.labels).toEqual({ Verified: 1 });
  expect(review!.input.tag).toBe('autogenerated:akanda-ci');
  const lines = message(review!).split('\n');
  expect(lines[0]).toBe('Build succeeded (check pipeline).');
  const nn = String(change.number % 100).padStart(2, '0');
  const logBase = `${local.url}/logs/${nn}/${change.number}/1/check`;
  expect(lines[2]).toMatch(new RegExp(`^- unit ${escape(logBase)}/unit/[0-9a-f]{7}/ : SUCCESS in \\d+s$`));
  expect(lines[3]).toMatch(
    new RegExp(`^- flaky-nv ${escape(logBase)}/flaky-nv/[0-9a-f]{7}/ : FAILURE in \\d+s \\(non-voting\\)$`),
  );
  expect(lines.at(-1)).toBe(FOOTER);

  const logUrl = lines[2]!.split(' ')[2]!;
  const index = await fetch(logUrl);
  expect(index.status).toBe(200);
  expect(await index.text()).toContain('job-output.txt');
  const console = await (await fetch(`${logUrl}job-output.txt`)).text();
  expect(console).toContain('e2e/pass readme');
  expect(console).toContain(`built e2e/pass ${change.number},1`);
  expect(await (await fetch(`${logUrl}extra.txt`)).text()).toContain('extra');
});

it('votes -1 on a failing change', async () => {
  const change = await newChange('e2e/fail');
  expect((await postEvent(gerrit.patchsetCreatedEvent(change.number))).status).toBe(202);
  const [review] = await gerrit.waitForReviews(1, { change: change.number });
  expect(review!.input.labels).toEqual({ Verified: -1 });
  expect(message(review!)).toMatch(/^Build failed \(check pipeline\)\.\n\n- broken http:\S+ : FAILURE in \d+s\n/);
});

it('times out a hanging job, terminates its node and votes -1 with TIMED_OUT', async () => {
  const mark = local.lines.length;
  const change = await newChange('e2e/hang');
  expect((await postEvent(gerrit.patchsetCreatedEvent(change.number))).status).toBe(202);
  const [review] = await gerrit.waitForReviews(1, { change: change.number });
  expect(review!.input.labels).toEqual({ Verified: -1 });
  expect(message(review!)).toMatch(/\n- hang http:\S+ : TIMED_OUT in \d+s\n/);
  await local.waitForLine(/build \w+ hang: running -> timed_out TIMED_OUT/, { from: mark });
  await local.waitForLine(/terminate local-\d+ \(build \w+\)/, { from: mark });
});

it('gives duplicate deliveries (webhook retries and the SSH shape) one buildset and one vote', async () => {
  const mark = local.lines.length;
  const change = await newChange('e2e/pass');
  const event = gerrit.patchsetCreatedEvent(change.number) as Record<string, Record<string, unknown>>;
  // The same event as `gerrit stream-events` prints it on an old server: numbers as strings, project a string.
  const ssh = {
    ...event,
    project: 'e2e/pass',
    change: { ...event.change, number: String(change.number) },
    patchSet: { ...event.patchSet, number: '1' },
  };
  const answers = await Promise.all([postEvent(event), postEvent(event), postEvent(ssh), postEvent(event)]);
  for (const answer of answers) expect([200, 202]).toContain(answer.status);
  await gerrit.waitForReviews(1, { change: change.number });
  await local.waitForLine(new RegExp(`buildset \\w+: reporting -> reported`), { from: mark });
  const recorded = local.lines
    .slice(mark)
    .filter((line) => line.includes(`change ${change.number},1`) && line.includes('recorded'));
  expect(recorded).toHaveLength(1);
  expect(reviewsOf(change.number)).toHaveLength(1);
});

it('cancels the build of an older patchset when a new one arrives, and votes only on the new one', async () => {
  const mark = local.lines.length;
  const change = await newChange('e2e/slow', { delay: '600\n' });
  expect((await postEvent(gerrit.patchsetCreatedEvent(change.number))).status).toBe(202);
  const running = await local.waitForLine(/build (\w+) slow: launching -> running/, { from: mark });
  const oldBuild = running[1]!;

  const second = await repos.addChange('e2e/slow', { change: change.number, patchset: 2, files: { delay: '0\n' } });
  gerrit.addPatchset(change.number, { revision: second.revision, files: ['delay'] });
  expect((await postEvent(gerrit.patchsetCreatedEvent(change.number, 2))).status).toBe(202);

  await local.waitForLine(new RegExp(`build ${oldBuild} slow: running -> cancelled`), { from: mark });
  await local.waitForLine(new RegExp(`terminate local-\\d+ \\(build ${oldBuild}\\)`), { from: mark });
  // The old node shuts down (its 600 s job stopped), well before its job would have ended.
  await local.waitForLine(new RegExp(`node local-\\d+ \\(build ${oldBuild}\\) exited`), { from: mark });
  const [review] = await gerrit.waitForReviews(1, { change: change.number });
  expect(review!.patchset).toBe(2);
  expect(review!.revision).toBe(second.revision);
  expect(review!.input.labels).toEqual({ Verified: 1 });
});

it('keeps retrying the review while Gerrit answers 503 and posts exactly one vote', async () => {
  const change = await newChange('e2e/pass');
  gerrit.failNextReviews(4, 503);
  expect((await postEvent(gerrit.patchsetCreatedEvent(change.number))).status).toBe(202);
  const [review] = await gerrit.waitForReviews(1, { change: change.number });
  expect(review!.input.labels).toEqual({ Verified: 1 });
  const posts = gerrit.reviewPosts.filter((r) => r.changeNumber === change.number);
  expect(posts.map((p) => p.status)).toEqual([503, 503, 503, 503, 200]);
});

it('does not vote twice when Gerrit saved the review but the answer was lost', async () => {
  const change = await newChange('e2e/fail');
  gerrit.failRequests({ status: 'reset', count: 1, only: 'review', afterApplying: true });
  expect((await postEvent(gerrit.patchsetCreatedEvent(change.number))).status).toBe(202);
  const mark = local.lines.length;
  await gerrit.waitForReviews(1, { change: change.number });
  await local.waitForLine(new RegExp(`review found already posted \\(e2e/fail change ${change.number},1`), {
    from: Math.max(0, mark - 50),
  });
  expect(reviewsOf(change.number)).toHaveLength(1);
  expect(gerrit.reviewPosts.filter((r) => r.changeNumber === change.number)).toHaveLength(1);
});

it('relaunches a build whose node went away and votes on the second attempt', async () => {
  const mark = local.lines.length;
  const change = await newChange('e2e/slow', { delay: '3\n' });
  expect((await postEvent(gerrit.patchsetCreatedEvent(change.number))).status).toBe(202);
  const launched = await local.waitForLine(/build (\w+) slow: launching on local-(\d+)/, { from: mark });
  const [, buildId, pid] = launched;
  await local.waitForLine(new RegExp(`build ${buildId} slow: launching -> running`), { from: mark });
  process.kill(-Number(pid), 'SIGKILL');

  await local.waitForLine(new RegExp(`build ${buildId} slow: running -> queued`), { from: mark });
  const relaunched = await local.waitForLine(new RegExp(`build ${buildId} slow: launching on local-(\\d+)`), {
    from: local.lines.findIndex((line, i) => i >= mark && line.includes(`build ${buildId} slow: running -> queued`)),
  });
  expect(relaunched[1]).not.toBe(pid);
  const [review] = await gerrit.waitForReviews(1, { change: change.number });
  expect(review!.input.labels).toEqual({ Verified: 1 });
  expect(message(review!)).toMatch(/\n- slow http:\S+ : SUCCESS in \d+s\n/);
});

it('answers malformed and unauthenticated calls with 4xx and changes nothing', async () => {
  const mark = local.lines.length;
  const gerritRequests = gerrit.requests.length;
  const change = await newChange('e2e/pass');
  const event = gerrit.patchsetCreatedEvent(change.number);

  expect((await postEvent(event, 'not-the-token')).status).toBe(401);
  expect((await postEvent(event, '')).status).toBe(401);
  expect((await postEvent(event, `${WEBHOOK_TOKEN}x`)).status).toBe(401);
  expect((await postEvent('{"type": "patchset-created", "change": ')).status).toBe(400);
  expect((await postEvent({ type: 'patchset-created', change: { project: '../etc', number: 'x' } })).status).toBe(400);
  expect((await postEvent({ ...event, padding: 'x'.repeat(300 * 1024) })).status).toBe(413);
  expect((await fetch(`${local.url}/webhook/${WEBHOOK_TOKEN}`)).status).toBe(404);

  const claim = await fetch(`${local.url}/node/claim`, {
    method: 'POST',
    body: JSON.stringify({ buildId: 'abcdef0123456789abcd', claimToken: 'guess' }),
  });
  expect(claim.status).toBe(401);
  const upload = await fetch(`${local.url}/node/upload`, {
    method: 'POST',
    body: JSON.stringify({ buildId: 'abcdef0123456789abcd', resultToken: 'guess' }),
  });
  expect(upload.status).toBe(401);
  const result = await fetch(`${local.url}/node/result`, { method: 'POST', body: '{"buildId": "$(reboot)"}' });
  expect(result.status).toBe(400);

  const changed = local.lines
    .slice(mark)
    .filter((line) => line.includes('recorded') || line.includes(`change ${change.number}`) || / error /.test(line));
  expect(changed).toEqual([]);
  expect(gerrit.requests.length).toBe(gerritRequests);
  expect(reviewsOf(change.number)).toHaveLength(0);
});

it('tests a change together with the change its Depends-On footer names', async () => {
  const lib = await newChange('e2e/lib', { 'lib.txt': 'lib change\n' });
  const changeId = `I${'d'.repeat(40)}`;
  const app = await newChange(
    'e2e/app',
    {},
    `Use the new lib\n\nDepends-On: ${gerrit.changeUrl(lib.number)}\nChange-Id: ${changeId}\n`,
  );
  expect((await postEvent(gerrit.patchsetCreatedEvent(app.number))).status).toBe(202);
  const [review] = await gerrit.waitForReviews(1, { change: app.number });
  expect(review!.input.labels).toEqual({ Verified: 1 });
  const logUrl = message(review!).split('\n')[2]!.split(' ')[2]!;
  expect(await (await fetch(`${logUrl}job-output.txt`)).text()).toContain('prepared: e2e/app e2e/lib');
});

it('publishes the image of a merge after checking its sha256, and refuses a tampered one', async () => {
  const mark = local.lines.length;
  const before = await repos.revisionOf('e2e/image', 'refs/heads/master');
  const merged = await repos.advanceBranch('e2e/image', 'master', { image: 'appliance image v1\n' });
  const answer = await postEvent(gerrit.refUpdatedEvent('e2e/image', 'master', before, merged));
  expect(answer.status).toBe(202);
  await local.waitForLine(
    /image published at images\/master\/[0-9a-f]{40}\/akanda-appliance\.qcow2 and as the latest/,
    {
      from: mark,
    },
  );
  expect(await (await fetch(`${local.url}/akanda-appliance-latest.qcow2`)).text()).toBe('appliance image v1\n');
  const sha = (await (await fetch(`${local.url}/akanda-appliance-latest.qcow2.sha256`)).text()).split(' ')[0];
  expect(sha).toMatch(/^[0-9a-f]{64}$/);
  const latest = (await (await fetch(`${local.url}/latest.json`)).json()) as Record<string, string>;
  expect(latest).toMatchObject({ sha256: sha, revision: merged, branch: 'master', project: 'e2e/image' });
  expect(await (await fetch(`${local.url}${latest.image}`)).text()).toBe('appliance image v1\n');

  const tampered = await repos.advanceBranch('e2e/image', 'master', { image: 'evil\n', tamper: 'yes\n' });
  const second = local.lines.length;
  expect((await postEvent(gerrit.refUpdatedEvent('e2e/image', 'master', merged, tampered))).status).toBe(202);
  await local.waitForLine(/image not published \(akanda-appliance\.qcow2 does not match its \.sha256\)/, {
    from: second,
  });
  expect(await (await fetch(`${local.url}/akanda-appliance-latest.qcow2`)).text()).toBe('appliance image v1\n');
  expect((await fetch(`${local.url}/images/master/${tampered}/akanda-appliance.qcow2`)).status).toBe(404);
});

it('never posted two reviews for one change, nor any for a superseded patchset', () => {
  const byChange = new Map<number, RecordedReview[]>();
  for (const review of gerrit.reviews)
    byChange.set(review.changeNumber, [...(byChange.get(review.changeNumber) ?? []), review]);
  expect([...byChange.values()].filter((reviews) => reviews.length > 1)).toEqual([]);
  expect(byChange.size).toBe(9);
});
