import {
  changeRef,
  describeValue,
  InvalidNameError,
  isValidName,
  nameProblem,
  validateChangeRef,
  validateName,
} from '../../lambda/core/names';

describe('project, branch and ref names', () => {
  it.each([
    ['project', 'stackforge/akanda-rug'],
    ['project', 'openstack/astara-appliance'],
    ['project', 'TestRepo1'],
    ['project', 'a/b/c.d_e+f'],
    ['branch', 'master'],
    ['branch', 'stable/kilo'],
    ['branch', 'feature/ha-routers_2'],
    ['branch', 'patch_create'],
    ['ref', 'refs/heads/master'],
    ['ref', 'refs/changes/40/187040/3'],
    ['ref', 'refs/changes/40/187040/meta'],
    ['ref', 'refs/tags/2015.1.0'],
  ] as const)('accepts %s %j', (kind, value) => {
    expect(nameProblem(kind, value)).toBeUndefined();
    expect(validateName(kind, value)).toBe(value);
  });

  const charset = 'may contain only letters, digits, ".", "_", "/", "+" and "-"';
  it.each([
    ['', 'is empty'],
    ['a b', charset],
    ['a\tb', charset],
    ['a\nb', charset],
    ['a\u0000b', charset],
    ['a\u007fb', charset],
    ['a;b', charset],
    ['$(id)', charset],
    ['`id`', charset],
    ['a|b', charset],
    ['a&b', charset],
    ['a>b', charset],
    ["a'b", charset],
    ['a"b', charset],
    ['a~1', charset],
    ['a^', charset],
    ['a:b', charset],
    ['a?', charset],
    ['a*', charset],
    ['a[1]', charset],
    ['a\\b', charset],
    ['a@{1}', charset],
    ['@', charset],
    ['r\u00e9seau', charset],
    ['a$b', charset],
    ['a%2fb', charset],
    ['/a', 'must not begin or end with "/"'],
    ['a/', 'must not begin or end with "/"'],
    ['a//b', 'must not contain "//"'],
    ['a..b', 'must not contain ".."'],
    ['a.', 'must not end with "."'],
    ['.a', 'has a component beginning with "."'],
    ['a/.b', 'has a component beginning with "."'],
    ['-rf', 'has a component beginning with "-"'],
    ['x/--upload-pack=y', charset],
    ['x/-y', 'has a component beginning with "-"'],
    ['a.lock', 'has a component ending with ".lock"'],
    ['a/b.lock/c', 'has a component ending with ".lock"'],
    ['a'.repeat(201), 'is longer than 200 characters'],
  ])('rejects branch %j: %s', (value, problem) => {
    expect(nameProblem('branch', value)).toBe(problem);
    expect(() => validateName('branch', value)).toThrow(InvalidNameError);
  });

  it('rules that depend on the kind', () => {
    expect(nameProblem('project', 'openstack/nova.git')).toBe('must not end with ".git"');
    expect(nameProblem('branch', 'refs/heads/master')).toBe('must be a short branch name, not a ref');
    expect(nameProblem('ref', 'heads/master')).toBe('must begin with "refs/"');
    expect(nameProblem('ref', 'refs/heads/a b')).toBe(charset);
    expect(nameProblem('project', 42)).toBe('must be a string');
    expect(isValidName('project', 'stackforge/akanda-rug')).toBe(true);
    expect(isValidName('project', undefined)).toBe(false);
  });

  it('error messages quote and escape the value on one line', () => {
    expect(() => validateName('project', 'evil\n$(rm -rf /)')).toThrow(
      'project "evil\\n$(rm -rf /)" may contain only letters, digits, ".", "_", "/", "+" and "-"',
    );
    expect(describeValue('x'.repeat(100))).toBe(`"${'x'.repeat(60)}..."`);
    expect(describeValue(null)).toBe('null');
    expect(describeValue('\u202emaster\u0000\u00e9')).toBe('"\\u202emaster\\u0000\\u00e9"');
    expect(describeValue(5)).toBe('number');
  });
});

describe('revisions and Change-Ids', () => {
  it('revisions are 40 lowercase hex digits', () => {
    expect(nameProblem('revision', 'b59138869113bfd9d3e7fbf9439d74e1ae6c54b8')).toBeUndefined();
    for (const bad of [
      'B59138869113BFD9D3E7FBF9439D74E1AE6C54B8',
      'b5913886',
      'g'.repeat(40),
      'a'.repeat(41),
      `${'a'.repeat(40)}\n`,
    ]) {
      expect(nameProblem('revision', bad)).toBe('must be 40 lowercase hex digits');
    }
  });

  it('Change-Ids are I and 40 lowercase hex digits', () => {
    expect(nameProblem('changeId', 'Ie10fd901201c53e9fe3b9766343060763ac81dc6')).toBeUndefined();
    expect(nameProblem('changeId', 'e10fd901201c53e9fe3b9766343060763ac81dc6')).toBe(
      'must be "I" followed by 40 lowercase hex digits',
    );
  });
});

describe('change refs', () => {
  it.each([
    [1, 1, 'refs/changes/01/1/1'],
    [5, 2, 'refs/changes/05/5/2'],
    [100, 1, 'refs/changes/00/100/1'],
    [654, 1, 'refs/changes/54/654/1'],
    [187040, 3, 'refs/changes/40/187040/3'],
    [2147483647, 12, 'refs/changes/47/2147483647/12'],
  ])('change %d patchset %d is %s', (change, patchset, ref) => {
    expect(changeRef(change, patchset)).toBe(ref);
    expect(validateChangeRef(ref, change, patchset)).toBe(ref);
  });

  it('rejects numbers that are not Gerrit numbers', () => {
    expect(() => changeRef(0, 1)).toThrow(InvalidNameError);
    expect(() => changeRef(1.5, 1)).toThrow(InvalidNameError);
    expect(() => changeRef(1, 2147483648)).toThrow(InvalidNameError);
  });

  it('a change ref must match its change and patchset numbers', () => {
    expect(() => validateChangeRef('refs/changes/40/187040/2', 187040, 3)).toThrow(
      'ref "refs/changes/40/187040/2" does not match change 187040 patchset 3 (expected refs/changes/40/187040/3)',
    );
    expect(() => validateChangeRef('refs/changes/41/187040/3', 187040, 3)).toThrow(/does not match/);
    expect(() => validateChangeRef('refs/changes/40/187040/03', 187040, 3)).toThrow(/does not match/);
    expect(() => validateChangeRef('refs/heads/master', 187040, 3)).toThrow(/is not a change ref/);
    expect(() => validateChangeRef(undefined, 187040, 3)).toThrow(/is not a change ref/);
  });
});
