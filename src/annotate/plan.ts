/**
 * The work plan of a sharded annotation: the sorted input files, cut into units (a Parquet file's row
 * groups in runs of about --unit-rows rows; any other file whole), and a deterministic assignment of
 * units to ranks. Everything here depends only on the input files and the options, so every rank (on
 * any machine) derives the same plan; the manifest records it once and later ranks reuse it.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { parquetSchema } from 'hyparquet';
import { columnTypeOf } from '../data/parquet.js';
import { formatFromPath, openTable } from '../data/table.js';
import type { ColumnInfo, TableFormat, WriteColumn } from '../data/types.js';
import { UsageError } from '../util/errors.js';
import { writeTypeOf } from './outputs.js';
import { readParquetFooter } from './source.js';

export interface InputFile {
  path: string;
  size: number;
  mtimeMs: number;
}

export interface Unit {
  /** Index into the plan's files. */
  file: number;
  rowStart: number;
  /** null: to the end of the file (formats without a row index). */
  rowEnd: number | null;
  /** Balancing weight: uncompressed bytes (Parquet row groups) or file bytes. */
  weight: number;
}

export interface ColumnPlan {
  text: string;
  /** The id column written first, or null when the inputs have none (then `file` and `row` are written). */
  id: WriteColumn | null;
  keep: WriteColumn[];
}

export interface Plan {
  files: (InputFile & { format: TableFormat })[];
  units: Unit[];
  columns: ColumnPlan;
}

/** Paths + sizes + mtimes, hashed: what decides whether a rerun sees "the same input set". */
export function statInputs(paths: readonly string[]): { files: InputFile[]; sha256: string } {
  const files = paths.map((path) => {
    const st = statSync(path);
    return { path, size: st.size, mtimeMs: Math.floor(st.mtimeMs) };
  });
  const sha256 = createHash('sha256').update(JSON.stringify(files.map((f) => [f.path, f.size, f.mtimeMs]))).digest('hex');
  return { files, sha256 };
}

export interface PlanOptions {
  textColumn: string;
  idColumn: string;
  /** Whether --id-column was given (then every file must have it). */
  idColumnExplicit: boolean;
  keepColumns: string[];
  unitRows: number;
}

/** Reads every file's schema (Parquet footers; a peek at the others) and cuts the units. */
export async function buildPlan(files: InputFile[], o: PlanOptions): Promise<Plan> {
  const out: Plan['files'] = [];
  const units: Unit[] = [];
  const schemas: ColumnInfo[][] = [];
  for (const [i, f] of files.entries()) {
    const format = formatFromPath(f.path);
    out.push({ ...f, format });
    if (f.size === 0) throw new UsageError(`${f.path}: empty file (0 bytes)`);
    if (format === 'parquet') {
      const meta = await readParquetFooter(f.path);
      schemas.push(parquetSchema(meta).children.map((c) => ({ name: c.element.name, type: columnTypeOf(c) })));
      let row = 0;
      let cur: Unit | null = null;
      for (const rg of meta.row_groups) {
        const rows = Number(rg.num_rows);
        if (rows === 0) continue;
        if (!cur || (cur.rowEnd as number) - cur.rowStart >= o.unitRows) {
          cur = { file: i, rowStart: row, rowEnd: row, weight: 0 };
          units.push(cur);
        }
        cur.rowEnd = (cur.rowEnd as number) + rows;
        cur.weight += Number(rg.total_byte_size);
        row += rows;
      }
    } else {
      const r = await openTable(f.path).catch((e: Error) => {
        throw new UsageError(e.message);
      });
      schemas.push(r.schema);
      await r.close();
      units.push({ file: i, rowStart: 0, rowEnd: null, weight: f.size });
    }
  }
  return { files: out, units, columns: planColumns(out, schemas, o) };
}

function planColumns(files: InputFile[], schemas: ColumnInfo[][], o: PlanOptions): ColumnPlan {
  const lookup = (name: string, flag: string, required: boolean): ColumnInfo[] | null => {
    const found = schemas.map((s) => s.find((c) => c.name === name));
    const missing = found.findIndex((c) => !c);
    if (missing >= 0) {
      if (!required && found.every((c) => !c)) return null;
      const have = schemas[missing].map((c) => c.name).join(', ');
      throw new UsageError(`${flag} ${name}: ${files[missing].path} has no such column (it has ${have})`);
    }
    return found as ColumnInfo[];
  };
  const text = lookup(o.textColumn, '--text-column', true)!;
  const bad = text.findIndex((c) => c.type !== 'string' && c.type !== 'other');
  if (bad >= 0) throw new UsageError(`--text-column ${o.textColumn} holds ${text[bad].type} values in ${files[bad].path}, not text`);
  const id = lookup(o.idColumn, '--id-column', o.idColumnExplicit);
  const keep = o.keepColumns.filter((k) => k !== o.idColumn).map((k) => mergeType(lookup(k, '--keep-columns', true)!, files));
  const idCol = id ? mergeType(id, files) : null;
  const names = [...(idCol ? [idCol.name] : ['file', 'row']), ...keep.map((k) => k.name)];
  const clash = names.find((n) => ['score', 'int_score', 'label', 'label_id', 'probs'].includes(n));
  if (clash) throw new UsageError(`input column ${clash} would be overwritten by an output column; leave it out of --keep-columns / --id-column`);
  return { text: o.textColumn, id: idCol, keep };
}

/** One output type per column across files; int and float mix into float64. */
function mergeType(cols: ColumnInfo[], files: InputFile[]): WriteColumn {
  const types = cols.map((c) => writeTypeOf(c, 'annotate'));
  const set = new Set(types);
  if (set.size === 1) return { name: cols[0].name, type: types[0] };
  if ([...set].every((t) => t === 'int64' || t === 'float64')) return { name: cols[0].name, type: 'float64' };
  const i = types.findIndex((t) => t !== types[0]);
  throw new UsageError(`column ${cols[0].name} is ${cols[0].type} in ${files[0].path} but ${cols[i].type} in ${files[i].path}; the outputs need one type`);
}

/**
 * Longest-processing-time assignment: units by decreasing weight (ties by position), each to the rank with
 * the least weight so far (ties: lowest rank). Deterministic; each rank then works in plan order.
 */
export function assignUnits(units: readonly Unit[], worldSize: number): number[][] {
  const load = new Array<number>(worldSize).fill(0);
  const owned: number[][] = Array.from({ length: worldSize }, () => []);
  const order = units.map((_, i) => i).sort((a, b) => units[b].weight - units[a].weight || a - b);
  for (const u of order) {
    let best = 0;
    for (let r = 1; r < worldSize; r++) if (load[r] < load[best]) best = r;
    load[best] += units[u].weight;
    owned[best].push(u);
  }
  return owned.map((list) => list.sort((a, b) => a - b));
}
