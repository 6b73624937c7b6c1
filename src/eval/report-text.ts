/**
 * Text reports: sklearn's classification_report layout (same columns, widths and `digits`) and a confusion
 * matrix table. Columns are aligned by terminal display width, so East Asian wide labels such as 사실형
 * (2 cells per character) line up; sklearn pads by code points and misaligns them.
 */
import type { ClassificationReport, ClassScores } from './metrics.js';

/** True for East Asian Wide / Fullwidth code points (Unicode EAW W/F), which take 2 terminal cells. */
function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) || // Hangul Jamo initials
    (cp >= 0x2e80 && cp <= 0x303e) || // CJK radicals, punctuation
    (cp >= 0x3041 && cp <= 0x33ff) || // Kana, CJK symbols
    (cp >= 0x3400 && cp <= 0x4dbf) || // CJK ext A
    (cp >= 0x4e00 && cp <= 0x9fff) || // CJK unified
    (cp >= 0xa000 && cp <= 0xa4cf) || // Yi
    (cp >= 0xa960 && cp <= 0xa97f) || // Hangul Jamo ext A
    (cp >= 0xac00 && cp <= 0xd7a3) || // Hangul syllables
    (cp >= 0xf900 && cp <= 0xfaff) || // CJK compatibility ideographs
    (cp >= 0xfe30 && cp <= 0xfe4f) || // CJK compatibility forms
    (cp >= 0xff00 && cp <= 0xff60) || // fullwidth forms
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1f64f) || // emoji
    (cp >= 0x1f900 && cp <= 0x1f9ff) ||
    (cp >= 0x20000 && cp <= 0x3fffd) // CJK ext B..
  );
}

function isZeroWidth(cp: number): boolean {
  return (
    (cp >= 0x0300 && cp <= 0x036f) || // combining diacritics
    (cp >= 0x200b && cp <= 0x200f) || // zero-width space/joiners, marks
    (cp >= 0xfe00 && cp <= 0xfe0f) // variation selectors
  );
}

/** Terminal cells taken by s. */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    w += isZeroWidth(cp) ? 0 : isWide(cp) ? 2 : 1;
  }
  return w;
}

export function padStart(s: string, width: number): string {
  return ' '.repeat(Math.max(0, width - displayWidth(s))) + s;
}

export function padEnd(s: string, width: number): string {
  return s + ' '.repeat(Math.max(0, width - displayWidth(s)));
}

/**
 * Python's format(x, '.{digits}f'): the exact binary value rounded half-to-even. Number.toFixed rounds an
 * exact tie up (0.03125 -> '0.0313' where Python prints '0.0312'), so ties are detected exactly and fixed.
 */
export function formatFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : x < 0 ? '-inf' : 'nan';
  const s = x.toFixed(digits);
  if (!isExactTie(Math.abs(x), digits)) return s;
  // toFixed rounded the tie away from zero; step back one unit in the last place if that is odd.
  const scaled = BigInt(s.replace('-', '').replace('.', ''));
  if (scaled % 2n === 0n) return s;
  const down = (scaled - 1n).toString().padStart(digits + 1, '0');
  const body = digits > 0 ? `${down.slice(0, -digits)}.${down.slice(-digits)}` : down;
  return (x < 0 ? '-' : '') + body;
}

/** Whether x * 10^digits has a fractional part of exactly one half (x >= 0, finite). */
function isExactTie(x: number, digits: number): boolean {
  if (x === 0 || Number.isInteger(x)) return false;
  // x = m * 2^-e exactly, with m an integer: scale until integral (at most 1074 halvings).
  let m = x;
  let e = 0;
  while (!Number.isInteger(m)) {
    m *= 2;
    e++;
  }
  // x * 10^d = M / 2^e with M = m * 10^d; a tie means M / 2^e = k + 1/2, i.e. 2M / 2^e is odd.
  const big = BigInt(m) * 10n ** BigInt(digits) * 2n;
  const den = 1n << BigInt(e);
  return big % den === 0n && (big / den) % 2n === 1n;
}

export interface ReportTextOptions {
  /** Display names per label (default: the label values). */
  targetNames?: readonly string[];
  /** Decimal places (sklearn default 2; 4 reads better for close comparisons). */
  digits?: number;
}

/** sklearn.metrics.classification_report(..., digits) text. */
export function classificationReportText(report: ClassificationReport, options: ReportTextOptions = {}): string {
  const digits = options.digits ?? 4;
  const names = options.targetNames ?? report.labels.map(String);
  if (names.length !== report.labels.length) {
    throw new Error(`targetNames has ${names.length} entries, expected ${report.labels.length}`);
  }
  const lastHeading = 'weighted avg';
  const width = Math.max(...names.map(displayWidth), lastHeading.length, digits);
  const headers = ['precision', 'recall', 'f1-score', 'support'];
  const col = (s: string): string => ' ' + padStart(s, 9);
  const row = (name: string, c: ClassScores): string =>
    padStart(name, width) + ' ' + col(formatFixed(c.precision, digits)) + col(formatFixed(c.recall, digits)) +
    col(formatFixed(c.f1, digits)) + col(String(c.support)) + '\n';
  let out = padStart('', width) + ' ' + headers.map(col).join('') + '\n\n';
  report.perClass.forEach((c, i) => (out += row(names[i], c)));
  out += '\n';
  out += padStart('accuracy', width) + ' ' + col('') + col('') + col(formatFixed(report.accuracy, digits)) +
    col(String(report.macroAvg.support)) + '\n';
  out += row('macro avg', report.macroAvg);
  out += row(lastHeading, report.weightedAvg);
  return out;
}

/** Confusion matrix table: rows true labels, columns predicted, headed by the label names. */
export function confusionMatrixText(matrix: readonly (readonly number[])[], names: readonly string[]): string {
  if (matrix.length !== names.length || matrix.some((r) => r.length !== names.length)) {
    throw new Error(`confusion matrix must be ${names.length} x ${names.length} to match the names`);
  }
  const corner = 'true \\ pred';
  const first = Math.max(displayWidth(corner), ...names.map(displayWidth));
  const widths = names.map((n, j) => Math.max(displayWidth(n), ...matrix.map((r) => String(r[j]).length)));
  const line = (head: string, cells: string[]): string =>
    padEnd(head, first) + cells.map((c, j) => '  ' + padStart(c, widths[j])).join('') + '\n';
  let out = line(corner, [...names]);
  matrix.forEach((r, i) => (out += line(names[i], r.map(String))));
  return out;
}
