/**
 * The one-line reason a failed build's report line carries (docs/design.md, "Node API"). It comes from the
 * node, which is untrusted, so the same rule applies on the node, in the node API and in the report: the
 * first line only, printable characters only, whitespace collapsed, at most SUMMARY_MAX_CHARS, so a summary
 * can never add a line to the review or break the zuul-results-summary line format.
 */
export const SUMMARY_MAX_CHARS = 100;

// Any line terminator, Unicode's included (NEL, LINE SEPARATOR, PARAGRAPH SEPARATOR).
const LINE_BREAK = /\r\n|[\n\r\v\f\u0085\u2028\u2029]/u;
// Controls, format characters (bidi overrides, zero-width), surrogates, private use, unassigned, separators.
const UNPRINTABLE = /[\p{C}\p{Zl}\p{Zp}]/gu;

/** The sanitised summary of `text`, or undefined when nothing printable is left. */
export function sanitiseSummary(text: unknown): string | undefined {
  if (typeof text !== 'string') return undefined;
  const firstLine = text.split(LINE_BREAK, 1)[0] ?? '';
  const printable = firstLine.replace(UNPRINTABLE, ' ').replace(/\s+/gu, ' ').trim();
  // Cut by code point so a surrogate pair is never split into an unprintable half.
  const cut = Array.from(printable).slice(0, SUMMARY_MAX_CHARS).join('').trim();
  return cut === '' ? undefined : cut;
}
