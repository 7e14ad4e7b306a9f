import { durationSeconds, formatElapsed } from '../../lambda/core/duration';

describe('durationSeconds', () => {
  it.each([
    ['90m', 5400],
    ['1h30m', 5400],
    ['2h', 7200],
    ['45s', 45],
    ['1h2m3s', 3723],
    ['0s', 0],
    ['150m', 9000],
  ])('%s is %d seconds', (text, seconds) => {
    expect(durationSeconds(text)).toBe(seconds);
  });

  it.each(['', '90', 'm', '1.5h', '-5m', '1m1h', '1h ', ' 1h', '1d', '5M'])('rejects %j', (text) => {
    expect(() => durationSeconds(text)).toThrow(`expected a duration like 90m, got ${JSON.stringify(text)}`);
  });
});

describe('formatElapsed (the Zuul report format)', () => {
  it.each([
    [0, '0s'],
    [7, '7s'],
    [125, '2m 05s'],
    [3723, '1h 02m 03s'],
    [36000, '10h 00m 00s'],
    [59.6, '1m 00s'],
    [-3, '0s'],
  ])('%d seconds is %s', (seconds, text) => {
    expect(formatElapsed(seconds)).toBe(text);
  });
});
