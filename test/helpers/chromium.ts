/**
 * Headless Chromium (Debian's `chromium` package) for the report tests: screenshots and the DOM after
 * layout. A missing browser is a test failure with the fix in the message, never a skip.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runAsync } from './cli.js';
import { withoutSanitizerRuntime } from './native-env.js';

export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter((p): p is string => !!p);
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(`headless Chromium not found (tried ${candidates.join(', ')}): install it with "apt-get install chromium" (.ci/run does) or set CHROMIUM=/path/to/chromium`);
  }
  return found;
}

/** Runs headless Chromium without blocking the test worker (see runAsync). */
async function runChromium(args: string[]): Promise<string> {
  const profile = mkdtempSync(join(tmpdir(), 'edu-chromium-'));
  try {
    const r = await runAsync(chromiumPath(), [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--hide-scrollbars', `--user-data-dir=${profile}`, ...args,
    ], { timeoutMs: 120_000, env: withoutSanitizerRuntime() });
    if (r.error) throw r.error;
    if (r.timedOut) throw new Error(`chromium timed out after 120 s (killed): ${r.stderr}`);
    if (r.code !== 0) throw new Error(`chromium exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

export async function screenshot(html: string, png: string, width = 1200, height = 2400): Promise<void> {
  await runChromium([`--screenshot=${png}`, `--window-size=${width},${height}`, pathToFileURL(html).href]);
  if (!existsSync(png)) throw new Error(`chromium wrote no screenshot ${png}`);
}

export interface ProbedMark {
  role: string | null;
  label: string;
  /** Text content of <text> marks. */
  text: string | null;
  /** Rendered width in CSS pixels. */
  w: number;
}

export interface Probe {
  innerWidth: number;
  scrollWidth: number;
  scrollHeight: number;
  scripts: number;
  charts: Record<string, { width: number; height: number; right: number; marks: ProbedMark[] }>;
}

/**
 * Loads a copy of the page with a probe script appended (the report itself has no scripts) and returns
 * what the browser laid out: every chart's rendered box and its marks' aria labels and texts.
 */
export async function probeReport(html: string, width = 1200): Promise<Probe> {
  const dir = mkdtempSync(join(tmpdir(), 'edu-probe-'));
  try {
    const copy = join(dir, 'probe.html');
    const probe = `<script>(() => {
      const out = { innerWidth, scrollWidth: document.documentElement.scrollWidth, scrollHeight: document.documentElement.scrollHeight,
        scripts: document.scripts.length - 1, charts: {} };
      for (const fig of document.querySelectorAll('figure[data-chart]')) {
        const svg = fig.querySelector('svg');
        const r = svg.getBoundingClientRect();
        out.charts[fig.dataset.chart] = { width: r.width, height: r.height, right: r.right,
          marks: [...svg.querySelectorAll('[aria-label]')].map((e) => ({ role: e.getAttribute('aria-roledescription'),
            label: e.getAttribute('aria-label'), text: e.tagName === 'text' ? e.textContent : null, w: e.getBoundingClientRect().width })) };
      }
      const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
    })();</script>`;
    writeFileSync(copy, readFileSync(html, 'utf8').replace('</body>', `${probe}</body>`));
    const dom = await runChromium([`--window-size=${width},1000`, '--dump-dom', pathToFileURL(copy).href]);
    const m = dom.match(/<pre id="probe">([\s\S]*?)<\/pre>/);
    if (!m) throw new Error(`the probe did not run; dumped DOM starts with: ${dom.slice(0, 300)}`);
    return JSON.parse(m[1].replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&nbsp;/g, '\u00a0').replace(/&amp;/g, '&')) as Probe;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Width and height from a PNG's IHDR chunk. */
export function pngSize(file: string): { width: number; height: number } {
  const b = readFileSync(file);
  if (b.toString('latin1', 1, 4) !== 'PNG') throw new Error(`${file} is not a PNG`);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
}
