/**
 * Labels <-> contiguous class ids, and the label_mapping.json file.
 *
 * Default order is sklearn's LabelEncoder convention: sorted unique values (numbers numerically, strings
 * by Unicode code point), so the same data always gives the same ids. An explicit label list (--labels)
 * fixes the order instead, and then a value outside it is an Error. Regression targets pass through as
 * float scores after a finiteness check.
 */

export type Label = string | number;
export type Task = 'classification' | 'regression';

export interface LabelMappingJson {
  labels: Label[];
  task: 'classification';
}

function compareCodePoints(a: string, b: string): number {
  // String comparison with < is by UTF-16 code unit; this matches numpy/Python (code point) order.
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done ? (y.done ? 0 : -1) : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/** A value for an error message; never throws (String() does on objects whose toString is not callable). */
function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  try {
    return String(v);
  } catch {
    return `${typeof v === 'object' ? 'an' : 'a'} ${typeof v} that has no text form`;
  }
}

export class LabelMap {
  readonly labels: readonly Label[];
  private readonly ids: Map<Label, number>;

  constructor(labels: readonly Label[]) {
    if (labels.length === 0) throw new Error('label map: no labels');
    const kinds = new Set(labels.map((l) => typeof l));
    if (kinds.size !== 1 || !(kinds.has('string') || kinds.has('number'))) {
      throw new Error('label map: labels must be all strings or all numbers');
    }
    this.ids = new Map();
    labels.forEach((l, i) => {
      if (typeof l === 'number' && !Number.isFinite(l)) throw new Error(`label map: label ${l} is not finite`);
      if (this.ids.has(l)) throw new Error(`label map: duplicate label ${describe(l)}`);
      this.ids.set(l, i);
    });
    this.labels = [...labels];
  }

  /** Sorted unique values of the data (LabelEncoder order). */
  static fromValues(values: Iterable<Label>): LabelMap {
    const uniq = [...new Set(values)];
    if (uniq.length === 0) throw new Error('label map: no labels in the data');
    if (uniq.every((v) => typeof v === 'number')) return new LabelMap((uniq as number[]).sort((a, b) => a - b));
    if (uniq.every((v) => typeof v === 'string')) return new LabelMap((uniq as string[]).sort(compareCodePoints));
    throw new Error('label map: the label column mixes strings and numbers; convert it to one type');
  }

  get size(): number {
    return this.labels.length;
  }

  has(label: Label): boolean {
    return this.ids.has(label);
  }

  id(label: Label, row?: number): number {
    const id = this.ids.get(label);
    if (id === undefined) {
      const where = row === undefined ? '' : ` at row ${row}`;
      throw new Error(`unknown label ${describe(label)}${where} (known: ${this.labels.map(describe).join(', ')})`);
    }
    return id;
  }

  encode(values: ArrayLike<Label>): Int32Array {
    const out = new Int32Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = this.id(values[i], i);
    return out;
  }

  decode(id: number): Label {
    if (!Number.isInteger(id) || id < 0 || id >= this.labels.length) {
      throw new Error(`class id ${id} is outside [0, ${this.labels.length})`);
    }
    return this.labels[id];
  }

  toJSON(): LabelMappingJson {
    return { labels: [...this.labels], task: 'classification' };
  }

  static fromJSON(data: unknown, source = 'label_mapping.json'): LabelMap {
    if (data === null || typeof data !== 'object') throw new Error(`${source}: expected an object {"labels": [...], "task": "classification"}`);
    const d = data as { labels?: unknown; task?: unknown };
    if (d.task !== 'classification') throw new Error(`${source}: task must be "classification", got ${JSON.stringify(d.task)}`);
    if (!Array.isArray(d.labels)) throw new Error(`${source}: "labels" must be an array`);
    return new LabelMap(d.labels as Label[]);
  }
}

/** Regression targets as float32 scores; NaN/Infinity or a non-numeric string is an Error naming the row. */
export function encodeRegressionTargets(values: ArrayLike<unknown>): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const x = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
    if (!Number.isFinite(x)) throw new Error(`regression target at row ${i} is ${describe(v)}; scores must be finite numbers`);
    // Stored as float32: a finite double beyond ±3.4e38 would become an infinite target.
    if (!Number.isFinite(Math.fround(x))) throw new Error(`regression target at row ${i} is ${describe(v)}, beyond the float32 range`);
    out[i] = x;
  }
  return out;
}
