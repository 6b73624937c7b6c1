/**
 * A restricted pickle interpreter: enough of the pickle VM to read what torch.save writes for a
 * state dict, and nothing that can run code.
 *
 * Python's pickle "calls" any global it names (GLOBAL + REDUCE), which is how a malicious
 * pytorch_model.bin runs `os.system`. Here a global is only ever a value handed out by the
 * caller's `findGlobal`, which throws for anything not on its allowlist at the moment the GLOBAL
 * opcode is read; REDUCE/BUILD are then interpreted by the caller's own code for those values.
 * Unknown opcodes are errors, inputs are bounds-checked, so a hostile pickle is an Error.
 *
 * Value mapping: str -> string, int -> number (bigint beyond 2^53), float -> number, bool, None -> null,
 * bytes -> Uint8Array, tuple and list -> Array, dict -> Map.
 */

/** A global the caller allows: what REDUCE does with it is the caller's interpretation. */
export interface PickleGlobal {
  readonly module: string;
  readonly name: string;
  /** REDUCE with this global as the callable; absent = not callable (an Error). */
  call?(args: unknown[]): unknown;
}

export interface UnpickleHooks {
  /** Returns the allowed global or throws (naming it) for anything else. */
  findGlobal(module: string, name: string): PickleGlobal;
  /** BINPERSID: resolve a persistent id (torch: a storage reference). Absent = an Error. */
  persistentLoad?(pid: unknown): unknown;
  /** BUILD (obj.__setstate__(state)): returns the new object. Absent = an Error. */
  build?(obj: unknown, state: unknown): unknown;
}

export class UnpickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnpickleError';
  }
}

/** Bytes as latin-1 text (pickle's encoding for GLOBAL names and python 2 str). */
const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

const OP_NAMES: Record<number, string> = {
  0x63: 'GLOBAL', 0x93: 'STACK_GLOBAL', 0x52: 'REDUCE', 0x62: 'BUILD', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX',
  0x69: 'INST', 0x6f: 'OBJ', 0x50: 'PERSID', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4',
};

/** Runs the restricted VM over `data`; returns the value at STOP. */
export function unpickle(data: Uint8Array, hooks: UnpickleHooks): unknown {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let pos = 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const fail = (msg: string): never => {
    throw new UnpickleError(`pickle: ${msg} (at byte ${pos})`);
  };
  const need = (n: number): void => {
    if (n < 0 || pos + n > data.byteLength) fail('truncated data');
  };
  const u8 = (): number => {
    need(1);
    return data[pos++];
  };
  const u16 = (): number => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('length out of range');
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => {
    need(n);
    const b = data.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const str = (n: number): string => {
    try {
      return utf8.decode(bytes(n));
    } catch (err) {
      if (err instanceof UnpickleError) throw err;
      return fail('string is not valid UTF-8');
    }
  };
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail('truncated GLOBAL');
    if (end - pos > 1024) fail('GLOBAL name too long');
    const s = latin1(data.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1])) fail('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail('no MARK on the stack');
    return stack.splice(m!);
  };
  const signedLE = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const asDict = (d: unknown, op: string): Map<unknown, unknown> => {
    if (!(d instanceof Map)) fail(`${op} on a non-dict`);
    return d as Map<unknown, unknown>;
  };
  const asList = (l: unknown, op: string): unknown[] => {
    if (!Array.isArray(l)) fail(`${op} on a non-list`);
    return l as unknown[];
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) fail(`memo key ${i} not found`);
    return memo.get(i);
  };
  const global = (module: string, name: string): PickleGlobal => hooks.findGlobal(module, name);

  while (true) {
    const opPos = pos;
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const proto = u8();
        if (proto > 5) fail(`unsupported pickle protocol ${proto}`);
        break;
      }
      case 0x95: u64(); break; // FRAME: framing is only a read-ahead hint
      case 0x2e: { // STOP
        if (stack.length !== 1 || marks.length) fail('malformed pickle: STOP with a stack that is not one value');
        return stack[0];
      }
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x64: { // DICT
        const items = popMark();
        if (items.length % 2) fail('DICT with an odd number of items');
        const d = new Map();
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x61: { const v = pop(); asList(top(), 'APPEND').push(v); break; } // APPEND
      case 0x65: { const items = popMark(); asList(top(), 'APPENDS').push(...items); break; } // APPENDS
      case 0x73: { const v = pop(); const k = pop(); asDict(top(), 'SETITEM').set(k, v); break; } // SETITEM
      case 0x75: { // SETITEMS
        const items = popMark();
        if (items.length % 2) fail('SETITEMS with an odd number of items');
        const d = asDict(top(), 'SETITEMS');
        for (let i = 0; i < items.length; i += 2) d.set(items[i], items[i + 1]);
        break;
      }
      case 0x4a: { need(4); stack.push(view.getInt32(pos, true)); pos += 4; break; } // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(signedLE(bytes(u8()))); break; // LONG1
      case 0x8b: { // LONG4
        const n = u32();
        if (n > 1024) fail('LONG4 integer too large');
        stack.push(signedLE(bytes(n)));
        break;
      }
      case 0x47: { need(8); stack.push(view.getFloat64(pos, false)); pos += 8; break; } // BINFLOAT
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4e: stack.push(null); break; // NONE
      case 0x58: stack.push(str(u32())); break; // BINUNICODE
      case 0x8c: stack.push(str(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(str(u64())); break; // BINUNICODE8
      case 0x54: { // BINSTRING (python 2 str): read as latin-1 like pickle's encoding='latin1'
        need(4);
        const n = view.getInt32(pos, true);
        pos += 4;
        if (n < 0) fail('negative BINSTRING length');
        stack.push(latin1(bytes(n)));
        break;
      }
      case 0x55: stack.push(latin1(bytes(u8()))); break; // SHORT_BINSTRING
      case 0x42: stack.push(bytes(u32()).slice()); break; // BINBYTES
      case 0x43: stack.push(bytes(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: stack.push(bytes(u64()).slice()); break; // BINBYTES8
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x63: { // GLOBAL "module\nname\n": checked against the allowlist right here
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(global(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE: interpreted by the allowed global, never executed
        const args = pop();
        const fn = pop() as PickleGlobal;
        if (!Array.isArray(args)) fail('REDUCE arguments are not a tuple');
        if (typeof fn !== 'object' || fn === null || typeof fn.call !== 'function') {
          fail(`REDUCE on a value that is not a callable global${fn && typeof fn === 'object' && 'name' in fn ? ` (${fn.module}.${fn.name})` : ''}`);
        }
        stack.push(fn.call!(args as unknown[]));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const obj = pop();
        if (!hooks.build) fail('BUILD is not supported');
        stack.push(hooks.build!(obj, state));
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!hooks.persistentLoad) fail('persistent ids are not supported');
        stack.push(hooks.persistentLoad!(pid));
        break;
      }
      default: {
        pos = opPos;
        const name = OP_NAMES[op];
        fail(`unsupported opcode ${name ?? `0x${op.toString(16).padStart(2, '0')}`}${name ? ' (not used by torch.save state dicts)' : ''}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Writer: the small subset torch.save emits (protocol 2), for test fixtures and the generator.

/** Emits pickle opcodes; values are written by the caller in torch.save's order. */
export class PickleWriter {
  private chunks: number[] = [];
  private memoNext = 0;

  proto(n: number): this { return this.op(0x80, n); }
  mark(): this { return this.op(0x28); }
  stop(): this { return this.op(0x2e); }
  emptyDict(): this { return this.op(0x7d); }
  emptyTuple(): this { return this.op(0x29); }
  tuple(): this { return this.op(0x74); }
  setitems(): this { return this.op(0x75); }
  reduce(): this { return this.op(0x52); }
  build(): this { return this.op(0x62); }
  binpersid(): this { return this.op(0x51); }
  bool(v: boolean): this { return this.op(v ? 0x88 : 0x89); }
  none(): this { return this.op(0x4e); }

  /** BINPUT / LONG_BINPUT with the next memo index, as Python's pickler does after most objects. */
  put(): this {
    const i = this.memoNext++;
    if (i < 256) return this.op(0x71, i);
    this.op(0x72);
    return this.u32(i);
  }

  global(module: string, name: string): this {
    this.op(0x63);
    for (const ch of Buffer.from(`${module}\n${name}\n`, 'latin1')) this.chunks.push(ch);
    return this;
  }

  /** BININT1 / BININT2 / BININT / LONG1, the smallest that fits, like Python's save_long. */
  int(v: number): this {
    if (!Number.isSafeInteger(v)) throw new RangeError(`pickle int ${v}`);
    if (v >= 0 && v < 256) return this.op(0x4b, v);
    if (v >= 0 && v < 65536) {
      this.op(0x4d);
      this.chunks.push(v & 0xff, v >> 8);
      return this;
    }
    if (v >= -0x80000000 && v <= 0x7fffffff) {
      this.op(0x4a);
      return this.u32(v >>> 0);
    }
    // LONG1: little-endian two's complement, minimal length.
    const out: number[] = [];
    let b = BigInt(v);
    while (true) {
      const byte = Number(b & 0xffn);
      out.push(byte);
      b >>= 8n;
      if ((b === 0n && !(byte & 0x80)) || (b === -1n && byte & 0x80)) break;
    }
    this.op(0x8a, out.length);
    this.chunks.push(...out);
    return this;
  }

  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    this.op(0x58);
    this.u32(b.byteLength);
    for (const ch of b) this.chunks.push(ch);
    return this;
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }

  private u32(v: number): this {
    this.chunks.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
    return this;
  }

  private op(...b: number[]): this {
    this.chunks.push(...b);
    return this;
  }
}
