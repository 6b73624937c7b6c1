/** Number tables shown beside the charts (same numbers, exact to 4 decimals). */
import type { SklearnReportDict, SklearnScores } from '../eval/metrics.js';
import { escapeHtml } from './html.js';
import { f4 } from './charts.js';

export type Cell = string | number | null | undefined;

/** A table; numbers get 4 decimals (pass counts as strings). `rowClass` marks rows (e.g. 'sum', 'best'). */
export function htmlTable(caption: string, headers: string[], rows: Cell[][], rowClass: (i: number) => string = () => ''): string {
  const cell = (c: Cell): string => escapeHtml(typeof c === 'number' ? f4(c) : (c ?? '-'));
  const head = `<thead><tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead>`;
  const body = rows
    .map((r, i) => {
      const cls = rowClass(i);
      return `<tr${cls ? ` class="${cls}"` : ''}>${r.map((c) => `<td>${cell(c)}</td>`).join('')}</tr>`;
    })
    .join('');
  return `<table><caption>${escapeHtml(caption)}</caption>${head}<tbody>${body}</tbody></table>`;
}

/** sklearn classification_report as a table: one row per class, then accuracy and the averages. */
export function classReportTable(caption: string, dict: SklearnReportDict, labels: string[], names: string[] = labels): string {
  const s = (k: string) => dict[k] as SklearnScores;
  const rows: Cell[][] = labels.map((l, i) => [names[i], s(l).precision, s(l).recall, s(l)['f1-score'], String(s(l).support)]);
  const total = s('macro avg').support;
  rows.push(['accuracy', null, null, dict.accuracy as number, String(total)]);
  for (const k of ['macro avg', 'weighted avg']) rows.push([k, s(k).precision, s(k).recall, s(k)['f1-score'], String(s(k).support)]);
  return htmlTable(caption, ['', 'precision', 'recall', 'F1', 'support'], rows, (i) => (i === labels.length ? 'sum' : ''));
}

/** Confusion matrix counts with row totals. */
export function confusionTable(caption: string, matrix: number[][], names: string[]): string {
  const rows: Cell[][] = matrix.map((r, i) => [names[i], ...r.map(String), String(r.reduce((a, b) => a + b, 0))]);
  return htmlTable(caption, ['true \\ predicted', ...names, 'total'], rows);
}
