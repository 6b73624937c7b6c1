/**
 * The report page: one self-contained HTML file (inline CSS and SVG, no scripts, no network) made of
 * summary cards and sections; each section lays its charts and number tables out side by side.
 */
import { REPORT_CSS } from './style.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export interface Figure {
  /** File stem of the chart (charts/<name>.svg); also the figure's id in the page. */
  name: string;
  svg: string;
  caption?: string;
}

export interface Section {
  title: string;
  /** Plain text shown under the heading. */
  note?: string;
  figures: Figure[];
  /** Ready-made HTML tables (see tables.ts). */
  tables: string[];
  /** Extra HTML, e.g. links to the fold reports. */
  html?: string;
}

export interface Page {
  title: string;
  subtitle?: string;
  /** Key / value lines under the title (run folder, model, data...). */
  meta: [string, string][];
  /** Headline numbers. */
  cards: [string, string][];
  sections: Section[];
  footer?: string;
}

function figure(f: Figure): string {
  const caption = f.caption ? `<figcaption>${escapeHtml(f.caption)}</figcaption>` : '';
  return `<figure class="chart" id="chart-${escapeHtml(f.name)}" data-chart="${escapeHtml(f.name)}">${f.svg}${caption}</figure>`;
}

function section(s: Section): string {
  const note = s.note ? `<p class="note">${escapeHtml(s.note)}</p>` : '';
  const tables = s.tables.map((t) => `<div class="table-wrap">${t}</div>`).join('');
  return `<section><h2>${escapeHtml(s.title)}</h2>${note}<div class="grid">${s.figures.map(figure).join('')}${tables}</div>${s.html ?? ''}</section>`;
}

export function renderPage(p: Page): string {
  const meta = p.meta.map(([k, v]) => `<div><dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd></div>`).join('');
  const cards = p.cards.map(([k, v]) => `<div class="card"><div class="card-label">${escapeHtml(k)}</div><div class="card-value">${escapeHtml(v)}</div></div>`).join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(p.title)}</title>
<style>${REPORT_CSS}</style>
</head>
<body>
<main>
<header><h1>${escapeHtml(p.title)}</h1>${p.subtitle ? `<p class="subtitle">${escapeHtml(p.subtitle)}</p>` : ''}<dl class="meta">${meta}</dl></header>
<div class="cards">${cards}</div>
${p.sections.map(section).join('\n')}
<footer>${escapeHtml(p.footer ?? '')}</footer>
</main>
</body>
</html>
`;
}
