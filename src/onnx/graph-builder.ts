/**
 * Appends ONNX nodes and initializers in topological order, naming intermediate values uniquely,
 * so the BERT graph code reads like the forward pass it describes.
 */
import { endianness } from 'node:os';
import { DataType, type AttributeValue, type NodeDef, type TensorDef } from './onnx-proto.js';

/** Attribute shorthand: numbers are ints unless wrapped with f(). */
export type Attr = number | readonly number[] | string | { float: number } | { tensor: TensorDef };

export const f = (value: number): { float: number } => ({ float: value });

function toAttribute(a: Attr): AttributeValue {
  if (typeof a === 'number') return { kind: 'int', value: a };
  if (typeof a === 'string') return { kind: 'string', value: a };
  if (Array.isArray(a)) return { kind: 'ints', value: a as readonly number[] };
  if ('float' in (a as object)) return { kind: 'float', value: (a as { float: number }).float };
  return { kind: 'tensor', value: (a as { tensor: TensorDef }).tensor };
}

// raw_data is little-endian; typed arrays are in host order, so only little-endian hosts may alias them.
if (endianness() !== 'LE') throw new Error('The ONNX exporter needs a little-endian host');

function bytesOf(a: Float32Array | BigInt64Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export class GraphBuilder {
  readonly nodes: NodeDef[] = [];
  readonly initializers: TensorDef[] = [];
  private readonly used = new Set<string>();
  private readonly constants = new Map<string, string>();
  private nodeCount = 0;

  /** A fresh value name based on `hint`. */
  fresh(hint: string): string {
    let name = hint;
    for (let i = 1; this.used.has(name); i++) name = `${hint}_${i}`;
    this.used.add(name);
    return name;
  }

  /** Reserves a name chosen by the caller (graph inputs, initializers, outputs). */
  reserve(name: string): string {
    if (this.used.has(name)) throw new Error(`internal: ONNX value name ${name} used twice`);
    this.used.add(name);
    return name;
  }

  /** Adds a node with one output; returns the output's name (`out` names it, e.g. a graph output). */
  op(opType: string, inputs: readonly string[], attrs: Record<string, Attr> = {}, out?: string): string {
    const output = out ? this.reserve(out) : this.fresh(`${opType}_${this.nodeCount}`);
    const attributes = Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, toAttribute(v)]));
    this.nodes.push({ opType, inputs, outputs: [output], name: `${opType}_${this.nodeCount++}`, attributes });
    return output;
  }

  /** A float32 initializer holding `data` (aliased, not copied). */
  floatInit(name: string, data: Float32Array, dims: readonly number[]): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`internal: initializer ${name} has ${data.length} values, dims ${dims} need ${n}`);
    this.initializers.push({ name: this.reserve(name), dataType: DataType.FLOAT, dims, raw: bytesOf(data) });
    return name;
  }

  /** A shared float32 scalar constant. */
  floatConst(value: number): string {
    return this.constant(`f:${value}`, `const_f_${this.constants.size}`, DataType.FLOAT, [], bytesOf(Float32Array.of(value)));
  }

  /** A shared int64 constant: a scalar (number) or a 1-D tensor (array). */
  int64Const(value: number | readonly number[]): string {
    const values = typeof value === 'number' ? [value] : value;
    const dims = typeof value === 'number' ? [] : [values.length];
    return this.constant(`i:${JSON.stringify(value)}`, `const_i64_${this.constants.size}`, DataType.INT64, dims,
      bytesOf(BigInt64Array.from(values, (v) => BigInt(v))));
  }

  private constant(key: string, name: string, dataType: TensorDef['dataType'], dims: readonly number[], raw: Uint8Array): string {
    const known = this.constants.get(key);
    if (known) return known;
    const n = this.reserve(name);
    this.initializers.push({ name: n, dataType, dims, raw });
    this.constants.set(key, n);
    return n;
  }
}
