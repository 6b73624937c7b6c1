/**
 * A dependency-free progress reporter for long jobs (embedding millions of documents).
 *
 * On a TTY it redraws one line with '\r' at most `redrawMs` apart (default 100 ms, ~10/s). Elsewhere (CI
 * logs, files) '\r' would pile up as garbage, so it prints a plain line every `logEveryMs` (default 10 s).
 * finish() always prints one closing summary line (unless quiet). The rate is an exponential moving average
 * over time (half-life `halfLifeMs`, default 5 s) so it follows speed changes without jittering; the ETA uses
 * that rate. The clock and stream are injectable for tests.
 */

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** Total units of work if known (enables percentage and ETA). */
  total?: number;
  /** Unit name for the count and rate, e.g. 'docs'. */
  unit?: string;
  /** Label printed first, e.g. 'embed'. */
  label?: string;
  /** A second counter tracked alongside, e.g. 'tokens' (rate only). */
  secondaryUnit?: string;
  quiet?: boolean;
  stream?: ProgressStream;
  /** Milliseconds clock; default performance.now. */
  now?: () => number;
  /** Minimum ms between TTY redraws (default 100). */
  redrawMs?: number;
  /** Ms between plain lines when not a TTY (default 10000). */
  logEveryMs?: number;
  /** Half-life of the rate smoothing in ms (default 5000). */
  halfLifeMs?: number;
  /** Force TTY / non-TTY behaviour (default: stream.isTTY). */
  tty?: boolean;
}

/** 1234567 -> '1.23M'; small numbers stay exact. */
export function formatCount(n: number): string {
  const a = Math.abs(n);
  if (a < 1000) return Number.isInteger(n) ? String(n) : n.toFixed(1);
  const units = ['k', 'M', 'G', 'T'];
  let v = n;
  let i = -1;
  while (Math.abs(v) >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2)) + units[i];
}

/** Rates keep one decimal below 1000 (12.5 docs/s), then the compact form. */
export function formatRate(r: number): string {
  return Math.abs(r) < 999.95 ? r.toFixed(1) : formatCount(r);
}

/** Seconds -> '42s', '3m05s', '2h03m', '1d04h'. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** Time-aware exponential moving average of a rate (units per second). */
export class RateMeter {
  private rate: number | undefined;
  private lastT: number | undefined;
  private pending = 0;

  constructor(private readonly halfLifeMs: number) {}

  /** Record `delta` units done at time `t` (ms). */
  add(delta: number, t: number): void {
    if (this.lastT === undefined) {
      this.lastT = t;
      this.pending = delta;
      return;
    }
    this.pending += delta;
    const dt = t - this.lastT;
    // Ignore bursts closer together than 50 ms: an instantaneous rate over 1 ms is noise.
    if (dt < 50) return;
    const inst = (this.pending * 1000) / dt;
    const alpha = 1 - Math.pow(0.5, dt / this.halfLifeMs);
    this.rate = this.rate === undefined ? inst : this.rate + alpha * (inst - this.rate);
    this.pending = 0;
    this.lastT = t;
  }

  /** Smoothed units/s, or undefined before two samples ≥50 ms apart. */
  get value(): number | undefined {
    return this.rate;
  }
}

export class Progress {
  count = 0;
  secondary = 0;
  private readonly start: number;
  private readonly rate: RateMeter;
  private readonly rate2: RateMeter;
  private lastDraw = -Infinity;
  private lastLog: number;
  private finished = false;
  private readonly stream: ProgressStream;
  private readonly now: () => number;
  private readonly tty: boolean;
  private lastLen = 0;

  constructor(private readonly opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.now = opts.now ?? (() => performance.now());
    this.tty = opts.tty ?? !!this.stream.isTTY;
    this.start = this.now();
    this.lastLog = this.start;
    const hl = opts.halfLifeMs ?? 5000;
    this.rate = new RateMeter(hl);
    this.rate2 = new RateMeter(hl);
    this.rate.add(0, this.start);
    this.rate2.add(0, this.start);
  }

  get total(): number | undefined {
    return this.opts.total;
  }

  set total(t: number | undefined) {
    this.opts.total = t;
  }

  /** Add `n` units done (and optionally `secondary` units, e.g. tokens); redraws if due. */
  tick(n = 1, secondary = 0): void {
    if (this.finished) return;
    const t = this.now();
    this.count += n;
    this.secondary += secondary;
    this.rate.add(n, t);
    if (this.opts.secondaryUnit) this.rate2.add(secondary, t);
    if (this.opts.quiet) return;
    if (this.tty) {
      if (t - this.lastDraw >= (this.opts.redrawMs ?? 100)) {
        this.lastDraw = t;
        this.draw(this.line(t));
      }
    } else if (t - this.lastLog >= (this.opts.logEveryMs ?? 10_000)) {
      this.lastLog = t;
      this.stream.write(this.line(t) + '\n');
    }
  }

  /** The status line at time t (exposed for tests and for callers that log elsewhere). */
  line(t = this.now()): string {
    const o = this.opts;
    const unit = o.unit ?? 'it';
    const elapsed = (t - this.start) / 1000;
    const parts: string[] = [];
    if (o.label) parts.push(o.label);
    if (o.total !== undefined && o.total > 0) {
      const pct = Math.min(100, (100 * this.count) / o.total);
      parts.push(`${pct.toFixed(1).padStart(5)}% ${formatCount(this.count)}/${formatCount(o.total)} ${unit}`);
    } else {
      parts.push(`${formatCount(this.count)} ${unit}`);
    }
    const r = this.rate.value ?? (elapsed > 0 ? this.count / elapsed : undefined);
    parts.push(r === undefined ? `? ${unit}/s` : `${formatRate(r)} ${unit}/s`);
    if (o.secondaryUnit) {
      const r2 = this.rate2.value ?? (elapsed > 0 ? this.secondary / elapsed : undefined);
      parts.push(r2 === undefined ? `? ${o.secondaryUnit}/s` : `${formatRate(r2)} ${o.secondaryUnit}/s`);
    }
    parts.push(`elapsed ${formatDuration(elapsed)}`);
    if (o.total !== undefined && o.total > 0) {
      const left = Math.max(0, o.total - this.count);
      parts.push(`ETA ${left === 0 ? '0s' : r ? formatDuration(left / r) : '?'}`);
    }
    return parts.join(' | ');
  }

  private draw(s: string): void {
    const width = this.stream.columns;
    if (width && s.length > width - 1) s = s.slice(0, width - 1);
    // Pad with spaces to wipe the tail of a longer previous line.
    const pad = this.lastLen > s.length ? ' '.repeat(this.lastLen - s.length) : '';
    this.lastLen = s.length;
    this.stream.write('\r' + s + pad);
  }

  /** Print the closing summary (average rate over the whole run, total time). Idempotent. */
  finish(message?: string): void {
    if (this.finished) return;
    this.finished = true;
    if (this.opts.quiet) return;
    const t = this.now();
    const elapsed = (t - this.start) / 1000;
    const unit = this.opts.unit ?? 'it';
    const avg = elapsed > 0 ? this.count / elapsed : 0;
    let s = `${this.opts.label ? this.opts.label + ' | ' : ''}done: ${formatCount(this.count)} ${unit} in ${formatDuration(elapsed)} (${formatRate(avg)} ${unit}/s`;
    if (this.opts.secondaryUnit) {
      s += `, ${formatRate(elapsed > 0 ? this.secondary / elapsed : 0)} ${this.opts.secondaryUnit}/s`;
    }
    s += ')';
    if (message) s += ' ' + message;
    if (this.tty) {
      this.draw(s);
      this.stream.write('\n');
    } else {
      this.stream.write(s + '\n');
    }
  }
}
