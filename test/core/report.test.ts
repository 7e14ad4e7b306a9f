import { buildsetOutcome, type Build } from '../../lambda/core/lifecycle';
import {
  buildsetReview,
  renderReport,
  REVIEW_TAG,
  unrunnableReview,
  type FinishedBuild,
  type ReportedJob,
} from '../../lambda/core/report';

const report = {
  label: 'Verified',
  footer: 'akanda-ci contact: https://wiki.openstack.org/wiki/ThirdPartySystems/Akanda_CI',
  commentOnly: false,
};

function finished(jobName: string, state: Build['state'], extra: Partial<FinishedBuild> = {}): FinishedBuild {
  return { jobName, voting: true, state, ...extra };
}

/** The review as the reporter makes it: the outcome decided once, then rendered. */
function reviewOf(pipeline: 'check' | 'gate', builds: FinishedBuild[], options: typeof report) {
  const outcome = buildsetOutcome(builds, { commentOnly: options.commentOnly });
  if (!outcome.complete || !outcome.report) throw new Error(`not reportable: ${JSON.stringify(outcome)}`);
  return buildsetReview(pipeline, builds, outcome, options);
}

// The zuul-results-summary plugin's patterns, as documented in the Gerrit reference.
const HEADER = /^Build (\w+) \((\w+) pipeline\)\.$/;
const JOB_LINE = /^- (\S+) (https?:\/\/\S+) : ([A-Z_]+)( in ((\d+h )?(\d+m )?\d+s))?( \(non-voting\))?$/;

describe('renderReport', () => {
  it('renders the exact Zuul format with the footer last', () => {
    const text = renderReport({
      pipeline: 'check',
      succeeded: true,
      footer: report.footer,
      jobs: [
        {
          jobName: 'pep8',
          voting: true,
          result: 'SUCCESS',
          url: 'https://logs.example/54/654/2/check/pep8/ab12/',
          elapsedSeconds: 723,
        },
        {
          jobName: 'dsvm-tempest-akanda',
          voting: false,
          result: 'FAILURE',
          url: 'https://logs.example/54/654/2/check/dsvm-tempest-akanda/cd34/',
          elapsedSeconds: 3723,
        },
        { jobName: 'py27', voting: true, result: 'SUCCESS', url: 'https://logs.example/py27/', elapsedSeconds: 7 },
      ],
    });
    expect(text).toBe(
      [
        'Build succeeded (check pipeline).',
        '',
        '- pep8 https://logs.example/54/654/2/check/pep8/ab12/ : SUCCESS in 12m 03s',
        '- dsvm-tempest-akanda https://logs.example/54/654/2/check/dsvm-tempest-akanda/cd34/ : FAILURE in 1h 02m 03s (non-voting)',
        '- py27 https://logs.example/py27/ : SUCCESS in 7s',
        '',
        'akanda-ci contact: https://wiki.openstack.org/wiki/ThirdPartySystems/Akanda_CI',
      ].join('\n'),
    );
    const lines = text.split('\n');
    expect(lines[0]).toMatch(HEADER);
    expect(lines.slice(2, 5).every((line) => JOB_LINE.test(line))).toBe(true);
  });

  it('leaves out what a job does not have and an empty footer', () => {
    const text = renderReport({
      pipeline: 'gate',
      succeeded: false,
      footer: '  ',
      jobs: [{ jobName: 'dsvm-tempest-akanda', voting: true, result: 'NODE_FAILURE' }],
    });
    expect(text).toBe('Build failed (gate pipeline).\n\n- dsvm-tempest-akanda : NODE_FAILURE');
  });

  it('never lets a URL or footer inject extra lines', () => {
    const text = renderReport({
      pipeline: 'check',
      succeeded: false,
      footer: 'contact\nBuild succeeded (check pipeline).',
      jobs: [{ jobName: 'pep8', voting: true, result: 'FAILURE', url: 'https://x/\n- fake https://y : SUCCESS' }],
    });
    expect(text.split('\n')).toEqual([
      'Build failed (check pipeline).',
      '',
      '- pep8 : FAILURE',
      '',
      'contact Build succeeded (check pipeline).',
    ]);
  });
});

describe('buildsetReview', () => {
  it('votes +1 when every voting build succeeded, whatever the non-voting ones did', () => {
    const review = reviewOf(
      'check',
      [
        finished('pep8', 'succeeded', { elapsedSeconds: 60, logUrl: 'https://logs.example/pep8/' }),
        finished('dsvm-tempest-akanda', 'timed_out', { voting: false, elapsedSeconds: 9600 }),
      ],
      report,
    );
    expect(review).toEqual({
      message: [
        'Build succeeded (check pipeline).',
        '',
        '- pep8 https://logs.example/pep8/ : SUCCESS in 1m 00s',
        '- dsvm-tempest-akanda : TIMED_OUT in 2h 40m 00s (non-voting)',
        '',
        report.footer,
      ].join('\n'),
      labels: { Verified: 1 },
      tag: REVIEW_TAG,
    });
  });

  it.each([
    ['failed', 'FAILURE'],
    ['timed_out', 'TIMED_OUT'],
    ['node_failure', 'NODE_FAILURE'],
    ['retry_limit', 'RETRY_LIMIT'],
  ] as const)('votes -1 when a voting build ends %s, reported as %s', (state, result) => {
    const review = reviewOf('check', [finished('pep8', 'succeeded'), finished('py27', state)], report);
    expect(review?.labels).toEqual({ Verified: -1 });
    expect(review?.message.split('\n')).toEqual([
      'Build failed (check pipeline).',
      '',
      '- pep8 : SUCCESS',
      `- py27 : ${result}`,
      '',
      report.footer,
    ]);
  });

  it('reports ERROR for a failed build whose node said ERROR', () => {
    const review = reviewOf('gate', [finished('pep8', 'failed', { result: 'ERROR' })], report);
    expect(review?.message).toContain('- pep8 : ERROR');
  });

  it('uses the configured label and never a value other than +1/-1', () => {
    const review = reviewOf('check', [finished('pep8', 'failed')], { ...report, label: 'Verified-Akanda' });
    expect(review?.labels).toEqual({ 'Verified-Akanda': -1 });
  });

  it('comments without a vote when commentOnly or when no job votes', () => {
    const commentOnly = reviewOf('check', [finished('pep8', 'failed')], { ...report, commentOnly: true });
    expect(commentOnly).toEqual({ message: expect.stringContaining('Build failed'), tag: REVIEW_TAG });
    expect(commentOnly).not.toHaveProperty('labels');
    const nonVoting = reviewOf('check', [finished('pep8', 'failed', { voting: false })], report);
    expect(nonVoting).not.toHaveProperty('labels');
    expect(nonVoting?.message.startsWith('Build succeeded (check pipeline).')).toBe(true);
  });

  it('renders the outcome it is given (the reporter decides it once)', () => {
    const builds = [finished('pep8', 'failed', { voting: false })];
    const review = buildsetReview('check', builds, { complete: true, report: true, succeeded: false }, report);
    expect(review.message.startsWith('Build failed (check pipeline).')).toBe(true);
    expect(review).not.toHaveProperty('labels');
  });
});

describe('failure summary', () => {
  // The plugin matches a prefix: result and time must stay where they are, the summary comes after.
  const PLUGIN_JOB_LINE = /^- (\S+) (https?:\/\/\S+) : ([A-Z_]+)( in ((\d+h )?(\d+m )?\d+s))?/;
  const URL = 'https://logs.example/54/654/2/check/dsvm-tempest-akanda/cd34/';
  const render = (summary: string, result: ReportedJob['result'] = 'FAILURE', voting = true) =>
    renderReport({
      pipeline: 'check',
      succeeded: false,
      footer: '',
      jobs: [{ jobName: 'dsvm-tempest-akanda', voting, result, url: URL, elapsedSeconds: 2470, summary }],
    });

  it('follows the elapsed time and the non-voting marker, and the plugin still reads result and time', () => {
    const text = render('devstack failed: see failure.txt', 'FAILURE', false);
    const line = text.split('\n')[2]!;
    expect(line).toBe(
      `- dsvm-tempest-akanda ${URL} : FAILURE in 41m 10s (non-voting) (devstack failed: see failure.txt)`,
    );
    expect(line.match(PLUGIN_JOB_LINE)?.slice(1, 5)).toEqual(['dsvm-tempest-akanda', URL, 'FAILURE', ' in 41m 10s']);
    expect(render('phase: devstack', 'ERROR').split('\n')[2]).toBe(
      `- dsvm-tempest-akanda ${URL} : ERROR in 41m 10s (phase: devstack)`,
    );
  });

  it('is shown on FAILURE and ERROR lines only', () => {
    for (const result of ['SUCCESS', 'TIMED_OUT', 'NODE_FAILURE', 'RETRY_LIMIT', 'ABORTED'] as const) {
      expect(render('phase: devstack', result)).not.toContain('devstack');
    }
  });

  it.each([
    ['a newline', 'phase: devstack\nBuild succeeded (check pipeline).'],
    ['a carriage return', 'phase: devstack\rBuild succeeded (check pipeline).'],
    ['CRLF', 'phase: devstack\r\nBuild succeeded (check pipeline).'],
    ['a LINE SEPARATOR', 'phase: devstack\u2028Build succeeded (check pipeline).'],
    ['a PARAGRAPH SEPARATOR', 'phase: devstack\u2029Build succeeded (check pipeline).'],
    ['a NEL', 'phase: devstack\u0085Build succeeded (check pipeline).'],
  ])('keeps only the first line when the summary holds %s', (_name, summary) => {
    const text = render(summary);
    expect(text.split(/\r\n|[\n\r\u0085\u2028\u2029]/)).toEqual([
      'Build failed (check pipeline).',
      '',
      `- dsvm-tempest-akanda ${URL} : FAILURE in 41m 10s (phase: devstack)`,
    ]);
  });

  it('drops control and format characters, collapses whitespace and keeps at most 100 characters', () => {
    const line = render(`\t devstack\u0000 \u202e failed\u200b:\u001b[31m   ${'x'.repeat(500)}`).split('\n')[2]!;
    const summary = line.slice(line.indexOf(' (') + 2, -1);
    expect(summary).toBe(`devstack failed : [31m ${'x'.repeat(77)}`);
    expect(summary).toHaveLength(100);
    expect(render('\u{1f525}'.repeat(150)).split('\n')[2]).toBe(
      `- dsvm-tempest-akanda ${URL} : FAILURE in 41m 10s (${'\u{1f525}'.repeat(100)})`,
    );
  });

  it('is left out when nothing printable remains', () => {
    expect(render(' \u0000\t\u200b ').split('\n')[2]).toBe(`- dsvm-tempest-akanda ${URL} : FAILURE in 41m 10s`);
    expect(render('\nphase: devstack').split('\n')[2]).toBe(`- dsvm-tempest-akanda ${URL} : FAILURE in 41m 10s`);
  });

  it('reaches the review from a finished build', () => {
    const builds: FinishedBuild[] = [
      finished('dsvm-tempest-akanda', 'failed', { result: 'FAILURE', logUrl: URL, summary: 'phase: devstack' }),
    ];
    expect(reviewOf('check', builds, report).message.split('\n')[2]).toBe(
      `- dsvm-tempest-akanda ${URL} : FAILURE (phase: devstack)`,
    );
  });
});

describe('unrunnableReview', () => {
  it('reports why nothing ran, Zuul-style, with Verified -1 and the footer', () => {
    expect(unrunnableReview('check', 'Depends-On cycle: 1234 -> 1240 -> 1234', report)).toEqual({
      message: `Build failed (check pipeline).\n\nDepends-On cycle: 1234 -> 1240 -> 1234\n\n${report.footer}`,
      labels: { Verified: -1 },
      tag: REVIEW_TAG,
    });
    const header = unrunnableReview('gate', 'x', report).message.split('\n')[0]!;
    expect(HEADER.exec(header)?.slice(1)).toEqual(['failed', 'gate']);
  });

  it('keeps the reason on one line, and comment-only mode votes nothing', () => {
    const review = unrunnableReview('check', 'Depends-On https://r.example/c/9\n- fake : SUCCESS', {
      ...report,
      footer: '',
      commentOnly: true,
    });
    expect(review).toEqual({
      message: 'Build failed (check pipeline).\n\nDepends-On https://r.example/c/9 - fake : SUCCESS',
      tag: REVIEW_TAG,
    });
  });
});
