/**
 * Renders a report's charts and writes the page: <html> plus every chart as its own SVG file in
 * <chartsDir>/ (for slides and papers). The page inlines the same SVGs, so it stands alone.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from '../util/atomic-write.js';
import { renderPage, type Page, type Section } from './html.js';
import { renderSvg } from './render.js';

export const REPORT_FILES = { html: 'report.html', charts: 'charts' } as const;

export interface ChartDef {
  /** File stem: <chartsDir>/<name>.svg. */
  name: string;
  spec: TopLevelSpec;
  caption?: string;
}

export type ChartSection = Omit<Section, 'figures'> & { charts: ChartDef[] };
export type ReportPage = Omit<Page, 'sections'> & { sections: ChartSection[] };

/** Writes htmlPath and chartsDir/*.svg; returns the chart files written. */
export async function writeReport(htmlPath: string, chartsDir: string, page: ReportPage): Promise<string[]> {
  mkdirSync(chartsDir, { recursive: true });
  const files: string[] = [];
  const sections: Section[] = [];
  for (const s of page.sections) {
    const figures = [];
    for (const c of s.charts) {
      const svg = await renderSvg(c.spec, c.name);
      const file = join(chartsDir, `${c.name}.svg`);
      writeFileAtomic(file, `<?xml version="1.0" encoding="UTF-8"?>\n${svg}\n`);
      files.push(file);
      figures.push({ name: c.name, svg, caption: c.caption });
    }
    const { charts: _charts, ...rest } = s;
    sections.push({ ...rest, figures });
  }
  writeFileAtomic(htmlPath, renderPage({ ...page, sections }));
  return files;
}
