import { isMagicPath, jobRunsForFiles } from '../../lambda/core/file-matchers';

describe('jobRunsForFiles (Zuul semantics)', () => {
  const irrelevant = { 'irrelevant-files': ['^doc/.*$', '^.*\\.rst$', '^releasenotes/.*$'] };
  const files = { files: ['^akanda/rug/api/', '^etc/'] };

  it('a job without matchers always runs', () => {
    expect(jobRunsForFiles({}, ['doc/x.rst'])).toBe(true);
  });

  it('irrelevant-files skips when every changed file matches, /COMMIT_MSG aside', () => {
    expect(jobRunsForFiles(irrelevant, ['/COMMIT_MSG', 'doc/index.rst', 'README.rst'])).toBe(false);
    expect(jobRunsForFiles(irrelevant, ['/COMMIT_MSG', 'doc/index.rst', 'akanda/rug/main.py'])).toBe(true);
  });

  it('files runs when any changed file matches, /COMMIT_MSG aside', () => {
    expect(jobRunsForFiles(files, ['/COMMIT_MSG', 'akanda/rug/api/nova.py'])).toBe(true);
    expect(jobRunsForFiles(files, ['/COMMIT_MSG', 'akanda/rug/worker.py'])).toBe(false);
  });

  it('a change to the commit message alone runs every job (it always counts as changed)', () => {
    for (const job of [irrelevant, files, { ...files, ...irrelevant }]) {
      expect(jobRunsForFiles(job, ['/COMMIT_MSG'])).toBe(true);
      expect(jobRunsForFiles(job, ['/COMMIT_MSG', '/MERGE_LIST'])).toBe(true);
      expect(jobRunsForFiles(job, [])).toBe(true);
    }
  });

  it('with both matchers, files must select it and irrelevant-files must not skip it', () => {
    const both = { files: ['^akanda/'], 'irrelevant-files': ['^akanda/.*\\.rst$'] };
    expect(jobRunsForFiles(both, ['akanda/a.py'])).toBe(true);
    expect(jobRunsForFiles(both, ['akanda/a.rst'])).toBe(false);
    expect(jobRunsForFiles(both, ['tools/a.py'])).toBe(false);
  });

  it('patterns match from the start of the path, like Python re.match', () => {
    const job = { files: ['doc/'] };
    expect(jobRunsForFiles(job, ['doc/index.rst'])).toBe(true);
    expect(jobRunsForFiles(job, ['src/doc/index.rst'])).toBe(false);
    expect(jobRunsForFiles({ files: ['.*doc/'] }, ['src/doc/index.rst'])).toBe(true);
  });

  it('gives the same answer on repeated calls (compiled regexes keep no state)', () => {
    const job = { 'irrelevant-files': ['^doc/'] };
    for (let i = 0; i < 3; i++) {
      expect(jobRunsForFiles(job, ['doc/a', 'doc/b'])).toBe(false);
      expect(jobRunsForFiles(job, ['doc/a', 'src/b'])).toBe(true);
    }
  });

  it('magic paths are the ones Gerrit starts with a slash', () => {
    expect(isMagicPath('/COMMIT_MSG')).toBe(true);
    expect(isMagicPath('/PATCHSET_LEVEL')).toBe(true);
    expect(isMagicPath('COMMIT_MSG')).toBe(false);
  });
});
