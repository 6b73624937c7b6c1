/**
 * Vega-Lite spec -> standalone SVG, on the server: vega-lite compiles to a Vega spec and a headless Vega
 * View (renderer 'none': no canvas, no browser) writes the SVG. vega is imported lazily so commands that
 * never write a report do not pay for loading it.
 */
import type { TopLevelSpec } from 'vega-lite';
import { vegaTextWidth } from './text-width.js';

/** Shared look of every chart (fonts, axes); the page's CSS matches these. */
const THEME = {
  font: 'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif',
  background: 'white',
  padding: 8,
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 600, gridColor: '#e5e7eb', domainColor: '#9ca3af', tickColor: '#9ca3af' },
  legend: { labelFontSize: 11, titleFontSize: 12, orient: 'top', labelLimit: 260 },
  title: { fontSize: 14, fontWeight: 600, anchor: 'start', offset: 10 },
} as const;

let modules: Promise<[typeof import('vega'), typeof import('vega-lite')]> | null = null;

function load(): Promise<[typeof import('vega'), typeof import('vega-lite')]> {
  modules ??= Promise.all([import('vega'), import('vega-lite')]).then(([vega, vl]) => {
    // Vega calls a user-defined width function for layout and label truncation (as vl-convert does).
    (vega as unknown as { textMetrics: { width: typeof vegaTextWidth } }).textMetrics.width = vegaTextWidth;
    return [vega, vl];
  });
  return modules;
}

/** Renders one chart. `idPrefix` makes the SVG's internal ids (clip paths, gradients) unique in a page. */
export async function renderSvg(spec: TopLevelSpec, idPrefix: string): Promise<string> {
  const [vega, vl] = await load();
  const compiled = vl.compile({ ...spec, config: { ...THEME, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return prefixIds(await view.toSVG(), idPrefix);
  } finally {
    view.finalize();
  }
}

/**
 * Several SVGs inlined in one HTML page share one id namespace: two charts both defining `clip1` would
 * clip each other. Rewrites every id and its references (url(#id), href="#id") with a per-chart prefix.
 */
export function prefixIds(svg: string, prefix: string): string {
  const ids = new Set([...svg.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]));
  if (ids.size === 0) return svg;
  return svg
    .replace(/\sid="([^"]+)"/g, (_, id: string) => ` id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (m, id: string) => (ids.has(id) ? `url(#${prefix}-${id})` : m))
    .replace(/href="#([^"]+)"/g, (m, id: string) => (ids.has(id) ? `href="#${prefix}-${id}"` : m));
}
