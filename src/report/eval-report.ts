/** The HTML report of `edu-train eval`: written beside the JSON report (--output) or where --html says. */
import { basename, dirname, extname, join } from 'node:path';
import type { Evaluation } from '../eval/evaluate.js';
import { evaluationCards, evaluationSections } from './evaluation-sections.js';
import { REPORT_FILES, writeReport } from './write.js';

/** eval.json -> eval.html; the SVGs go to <stem>-charts/ (report.html keeps the run folder's charts/). */
export function htmlBeside(jsonPath: string): string {
  return join(dirname(jsonPath), `${basename(jsonPath, extname(jsonPath))}.html`);
}

export function chartsDirFor(htmlPath: string): string {
  const stem = basename(htmlPath, extname(htmlPath));
  return join(dirname(htmlPath), stem === 'report' ? REPORT_FILES.charts : `${stem}-charts`);
}

export interface EvalReportInput {
  evaluation: Evaluation;
  scores?: { truth: ArrayLike<number>; pred: ArrayLike<number> };
  /** What was evaluated: run folder, data file or predictions file. */
  meta: [string, string][];
}

export async function writeEvalReport(htmlPath: string, r: EvalReportInput): Promise<void> {
  const e = r.evaluation;
  await writeReport(htmlPath, chartsDirFor(htmlPath), {
    title: 'edu-train: evaluation',
    subtitle: `${e.task === 'classification' ? `${e.labels.length}-class classification` : 'regression'} on ${e.n} rows`,
    meta: r.meta,
    cards: evaluationCards(e),
    sections: evaluationSections({ evaluation: e, scores: r.scores }),
    footer: `Written by edu-train eval on ${new Date().toISOString()}.`,
  });
}
