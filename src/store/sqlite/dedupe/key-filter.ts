// A blocked Bloom filter over event keys: "certainly not stored in this run" or "maybe". Written here
// rather than taken from a package because a lookup tests one key against every run's filter (up to
// ~45): the key is hashed once (KeyHash) and each filter costs one 64-byte block, where the Bloom
// packages on npm rehash the string per filter.

/** Bits per key: with 8 probes in a 512-bit block, about 1-2% false positives. */
const BITS_PER_KEY = 10;
const PROBES = 8;
const BLOCK_WORDS = 16;

/** Two independent 32-bit hashes of a key string (FNV-1a with two seeds, then a murmur3 finaliser). */
export interface KeyHash {
  a: number;
  b: number;
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export function hashKey(key: string): KeyHash {
  let a = 0x811c9dc5;
  let b = 0x2c1b3c6d;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193);
  }
  return { a: fmix(a), b: fmix(b ^ key.length) };
}

export class KeyFilter {
  private readonly words: Int32Array;
  private readonly blocks: number;

  private constructor(words: Int32Array) {
    this.words = words;
    this.blocks = words.length / BLOCK_WORDS;
  }

  /** An empty filter sized for `keys` keys (more still work, with more false positives). */
  static sized(keys: number): KeyFilter {
    const blocks = Math.max(1, Math.ceil((Math.max(keys, 1) * BITS_PER_KEY) / (BLOCK_WORDS * 32)));
    return new KeyFilter(new Int32Array(blocks * BLOCK_WORDS));
  }

  /** A filter saved by toBytes(). */
  static fromBytes(bytes: Uint8Array): KeyFilter {
    const copy = new Uint8Array(bytes); // aligned, owned
    return new KeyFilter(new Int32Array(copy.buffer, 0, copy.byteLength / 4));
  }

  toBytes(): Buffer {
    return Buffer.from(this.words.buffer, this.words.byteOffset, this.words.byteLength);
  }

  get byteLength(): number {
    return this.words.byteLength;
  }

  add(h: KeyHash): void {
    this.probe(h, true);
  }

  mayContain(h: KeyHash): boolean {
    return this.probe(h, false);
  }

  /** Visits the key's PROBES bits in its block: sets them, or answers whether all are set. */
  private probe(h: KeyHash, set: boolean): boolean {
    const base = (h.a % this.blocks) * BLOCK_WORDS;
    let x = h.b;
    const step = (h.a >>> 16) | 1;
    for (let i = 0; i < PROBES; i++) {
      const bit = x & 511;
      const word = base + (bit >>> 5);
      const mask = 1 << (bit & 31);
      if (set) this.words[word] |= mask;
      else if ((this.words[word] & mask) === 0) return false;
      x = (x + step) | 0;
      x = (x >>> 9) | (x << 23);
    }
    return true;
  }
}
