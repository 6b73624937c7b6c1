/**
 * A small seeded PRNG: xoshiro128** (Blackman & Vigna), 32-bit state words so it stays on fast int32
 * arithmetic (no BigInt). Seeds and stream ids are mixed through splitmix32, so (seed, epoch) pairs give
 * independent-looking streams: `new Rng(seed, epoch)`.
 *
 * Not cryptographic. Deterministic across platforms (only Math.imul and 32-bit shifts are used).
 */

/** splitmix32-style finaliser (Mulberry32's output mix): a bijective avalanche on 32 bits. */
function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x21f0aaad);
  x = Math.imul(x ^ (x >>> 15), 0x735a2d97);
  return (x ^ (x >>> 15)) >>> 0;
}

function checkSeed(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${what} must be a non-negative safe integer, got ${v}`);
}

export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spareNormal: number | null = null;

  /** seed and each stream id: non-negative safe integers (both 32-bit halves are used). */
  constructor(seed: number, ...streams: number[]) {
    checkSeed(seed, 'seed');
    let h = 0x9e3779b9;
    const absorb = (v: number): void => {
      h = mix32((h + (v >>> 0)) >>> 0);
      h = mix32((h + Math.floor(v / 0x100000000)) >>> 0);
    };
    absorb(seed);
    streams.forEach((s, i) => {
      checkSeed(s, `stream ${i}`);
      absorb(s);
    });
    // Fill the state from a splitmix32 sequence; xoshiro must not start at all-zero.
    let c = h;
    const next = (): number => {
      c = (c + 0x9e3779b9) >>> 0;
      return mix32(c);
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased (rejection), n <= 2^32. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) throw new Error(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    if (n === 1) return 0;
    // Reject the top partial block so every residue is equally likely.
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const r = this.nextUint32();
      if (r < limit) return r % n;
    }
  }

  /** In-place Fisher-Yates shuffle; returns the array. */
  shuffle<T extends { length: number; [i: number]: any }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }

  /** Standard normal (Box-Muller, the second value is kept for the next call). */
  normal(mean = 0, std = 1): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.float();
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** Uniform double in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
