import { describe, expect, it } from 'vitest';
import { formatCount, formatDuration, Progress, RateMeter } from '../src/util/progress.js';

class FakeStream {
  out: string[] = [];
  constructor(
    public isTTY: boolean,
    public columns?: number,
  ) {}
  write(s: string) {
    this.out.push(s);
    return true;
  }
  get text() {
    return this.out.join('');
  }
}

function clock(start = 1000) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe('formatting', () => {
  it('formats counts', () => {
    expect(formatCount(0)).toBe('0');
    expect(formatCount(999)).toBe('999');
    expect(formatCount(1000)).toBe('1.00k');
    expect(formatCount(12_345)).toBe('12.3k');
    expect(formatCount(1_234_567)).toBe('1.23M');
    expect(formatCount(250_000_000)).toBe('250M');
    expect(formatCount(12.34)).toBe('12.3');
  });
  it('formats durations', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(59.4)).toBe('59s');
    expect(formatDuration(65)).toBe('1m05s');
    expect(formatDuration(3600 * 2 + 180)).toBe('2h03m');
    expect(formatDuration(86400 + 4 * 3600)).toBe('1d04h');
    expect(formatDuration(Infinity)).toBe('?');
  });
});

describe('RateMeter', () => {
  it('converges to a steady rate and follows a change with the configured half-life', () => {
    const m = new RateMeter(1000);
    m.add(0, 0);
    for (let t = 100; t <= 10_000; t += 100) m.add(50, t); // 500/s
    expect(m.value).toBeCloseTo(500, 6);
    for (let t = 10_100; t <= 11_000; t += 100) m.add(100, t); // now 1000/s for one half-life
    expect(m.value!).toBeGreaterThan(740);
    expect(m.value!).toBeLessThan(760);
  });
  it('ignores bursts closer than 50 ms', () => {
    const m = new RateMeter(1000);
    m.add(0, 0);
    m.add(10, 1);
    expect(m.value).toBeUndefined();
    m.add(10, 100);
    expect(m.value).toBeCloseTo(200, 6);
  });
});

describe('Progress', () => {
  it('TTY: redraws with \\r at most every redrawMs, shows %, rate and ETA', () => {
    const c = clock();
    const s = new FakeStream(true);
    const p = new Progress({ total: 1000, unit: 'docs', label: 'embed', stream: s, now: c.now, halfLifeMs: 1000 });
    for (let i = 0; i < 100; i++) {
      c.t += 10; // 10 docs every 10 ms = 1000 docs/s, 100 ticks over 1 s
      p.tick(10);
    }
    // 1 s of ticks, redraw every 100 ms -> about 10 draws, never one per tick.
    expect(s.out.length).toBeGreaterThanOrEqual(9);
    expect(s.out.length).toBeLessThanOrEqual(11);
    expect(s.out.every((x) => x.startsWith('\r'))).toBe(true);
    const line = p.line();
    expect(line).toContain('embed');
    expect(line).toContain('100.0% 1.00k/1.00k docs');
    expect(p.line()).toMatch(/1\.00k docs\/s/);
    expect(line).toContain('ETA 0s');
  });

  it('computes ETA from the smoothed rate', () => {
    const c = clock(0);
    const p = new Progress({ total: 10_000, unit: 'docs', stream: new FakeStream(true), now: c.now });
    for (let i = 0; i < 20; i++) {
      c.t += 100;
      p.tick(20); // 200 docs/s
    }
    // 400 done, 9600 left at 200/s = 48 s
    expect(p.line()).toContain('ETA 48s');
    expect(p.line()).toContain('elapsed 2s');
    expect(p.line()).toContain('4.0%');
  });

  it('non-TTY: prints a plain line every logEveryMs and a summary at finish', () => {
    const c = clock(0);
    const s = new FakeStream(false);
    const p = new Progress({ unit: 'docs', secondaryUnit: 'tokens', stream: s, now: c.now, logEveryMs: 10_000 });
    for (let i = 0; i < 300; i++) {
      c.t += 100;
      p.tick(5, 640); // 50 docs/s, 6400 tokens/s, 30 s in all
    }
    expect(s.out.length).toBe(3); // at 10 s, 20 s, 30 s
    expect(s.text).not.toContain('\r');
    expect(s.out[0]).toMatch(/^500 docs \| 50\.0 docs\/s \| 6\.40k tokens\/s \| elapsed 10s\n$/);
    p.finish();
    p.finish(); // idempotent
    expect(s.out.length).toBe(4);
    expect(s.out[3]).toBe('done: 1.50k docs in 30s (50.0 docs/s, 6.40k tokens/s)\n');
    p.tick(1); // ignored after finish
    expect(s.out.length).toBe(4);
  });

  it('TTY finish ends the line and wipes the tail of a longer previous line', () => {
    const c = clock(0);
    const s = new FakeStream(true, 200);
    const p = new Progress({ total: 100, unit: 'x', stream: s, now: c.now });
    c.t += 200;
    p.tick(1);
    const prevLen = s.out[0].length - 1;
    c.t += 200;
    p.finish('ok');
    const last = s.out[s.out.length - 2];
    expect(last.startsWith('\rdone: 1 x in 0s')).toBe(true);
    expect(last.length - 1).toBeGreaterThanOrEqual(Math.min(prevLen, 199));
    expect(s.out[s.out.length - 1]).toBe('\n');
  });

  it('truncates to the terminal width', () => {
    const c = clock(0);
    const s = new FakeStream(true, 20);
    const p = new Progress({ total: 100, unit: 'documents', label: 'a-long-label', stream: s, now: c.now });
    c.t += 500;
    p.tick(3);
    expect(s.out[0].length).toBeLessThanOrEqual(20);
  });

  it('quiet prints nothing', () => {
    const c = clock(0);
    const s = new FakeStream(false);
    const p = new Progress({ quiet: true, stream: s, now: c.now, logEveryMs: 1 });
    for (let i = 0; i < 10; i++) {
      c.t += 100;
      p.tick();
    }
    p.finish();
    expect(s.out).toEqual([]);
    expect(p.count).toBe(10);
  });

  it('without a total shows no % or ETA', () => {
    const c = clock(0);
    const p = new Progress({ unit: 'docs', stream: new FakeStream(true), now: c.now });
    c.t += 1000;
    p.tick(10);
    expect(p.line()).toBe('10 docs | 10.0 docs/s | elapsed 1s');
  });
});
