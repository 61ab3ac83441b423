/**
 * Block hashes of synthesised prompts, computed once per distinct prefix.
 *
 * A replay sends the same blocks many times (the conversation trace references 288,500
 * 512-token blocks but only 182,790 distinct ones, and every mode replays them again), so
 * hashing each request's tokens would dominate the run time. Here the hashes are the real
 * ones (XXH3 of the synthesised token ids, chained exactly as src/router/hashing.ts does),
 * but memoised in a trie keyed by the request's segments: a node is one segment following
 * a given prefix, and holds the hashes of the engine blocks inside it. While segments start
 * on engine-block boundaries (Mooncake: 512 = 8 x 64) every block comes from the trie; after
 * a segment that ends mid-block the rest of the prompt is hashed from its tokens.
 */
import { xxh3 } from '@node-rs/xxhash';
import { hashTokenBlock, XXH3_SEED } from '../router/hashing.js';
import { joinU64 } from '../router/u64.js';
import { fillSegment, promptTokens } from './synth.js';
import { grown } from './typed.js';
import type { BenchRequest } from './workload.js';

export interface PromptBlocks {
  /** Full engine blocks of the prompt. */
  readonly n: number;
  /** Local block hashes, interleaved u32 pairs (what KvRouter.route takes). */
  readonly localPairs: Uint32Array;
  /** Sequence hashes, interleaved u32 pairs. */
  readonly seqPairs: Uint32Array;
  /** Dense block ids for the oracle: equal sequence hashes get equal ids. */
  readonly keys: Int32Array;
}

interface Node {
  children?: Map<number | string, Node>;
  /** Per segment id, the child with the most full blocks (for segments used at two lengths). */
  bySeg?: Map<number, Node>;
  /** First arena block of this segment's full blocks, and their count. */
  readonly off: number;
  readonly n: number;
  /** Token offset where this node's segment ends. */
  readonly end: number;
  /** Whether the segment after this node starts on a block boundary. */
  readonly alignedAfter: boolean;
  readonly segId: number;
  /** Arena slot of the last full block at or before this node (-1: none). */
  readonly last: number;
}

// Chaining without bigint arithmetic: parent and local hash as u32 halves in one 16-byte buffer.
const pairBuf = new Uint8Array(16);
const pairU32 = new Uint32Array(pairBuf.buffer);
const outBig = new BigUint64Array(1);
const outU32 = new Uint32Array(outBig.buffer);
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** seq = XXH3(le_u64(parent) || le_u64(local), 1337), written to out[o], out[o+1]. */
function chain(pLo: number, pHi: number, lLo: number, lHi: number, out: Uint32Array, o: number): void {
  pairU32[0] = pLo;
  pairU32[1] = pHi;
  pairU32[2] = lLo;
  pairU32[3] = lHi;
  outBig[0] = xxh3.xxh64(pairBuf, XXH3_SEED);
  out[o] = outU32[0]!;
  out[o + 1] = outU32[1]!;
}

const TWO32 = 4294967296;

/** 53-bit numeric key of a sequence hash (for callers that need a number). */
function blockKey(lo: number, hi: number): number {
  return (hi & 0x1fffff) * TWO32 + lo;
}

/**
 * Hashes are kept in arenas (one slot per distinct block in context): local and sequence
 * hash pairs, and the block's dense id (its own slot, or the slot of the identical block of a
 * longer/shorter use of the same segment after the same prefix).
 */
export class PromptHasher {
  private readonly root: Node;
  private scratch: Uint32Array;
  private scratchBytes: Uint8Array;
  private local = new Uint32Array(1 << 16);
  private seq = new Uint32Array(1 << 16);
  private ids = new Int32Array(1 << 15);
  private used = 0;
  /** Fallback (misaligned) blocks: sequence-hash key -> id. */
  private readonly interned = new Map<number, number>();
  /** Distinct trie nodes (segments in context) hashed so far. */
  nodes = 0;

  constructor(
    readonly seed: number,
    readonly blockSize: number,
    segmentTokens: number,
  ) {
    if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`block size must be an integer >= 1, got ${blockSize}`);
    this.root = { off: 0, n: 0, end: 0, alignedAfter: true, segId: -1, last: -1 };
    this.scratch = new Uint32Array(Math.max(segmentTokens, blockSize));
    this.scratchBytes = new Uint8Array(this.scratch.buffer);
  }

  /** Upper bound of the block ids handed out so far. */
  get blockCount(): number {
    return this.used;
  }

  private reserve(n: number): number {
    const off = this.used;
    const need = off + n;
    if (need > this.ids.length) {
      let cap = this.ids.length;
      while (cap < need) cap *= 2;
      this.local = grown(this.local, cap * 2);
      this.seq = grown(this.seq, cap * 2);
      this.ids = grown(this.ids, cap);
    }
    this.used = need;
    return off;
  }

  private child(parent: Node, id: number, len: number): Node {
    const key: number | string = id >= 0 && id < 2 ** 36 && len < 65536 ? id * 65536 + len : `${id}:${len}`;
    let c = parent.children?.get(key);
    if (c) return c;
    const bs = this.blockSize;
    let n = 0;
    let off = 0;
    if (parent.alignedAfter) {
      n = Math.floor(len / bs);
      off = this.reserve(n);
      if (this.scratch.length < len) {
        this.scratch = new Uint32Array(len);
        this.scratchBytes = new Uint8Array(this.scratch.buffer);
      }
      fillSegment(this.seed, id, len, this.scratch, 0);
      const local = this.local;
      const seq = this.seq;
      // A sibling with the same segment id (another length) shares its leading blocks.
      const sib = parent.bySeg?.get(id);
      // The prefix's last block (the parent of an aligned node ends on a block boundary).
      const hasParent = parent.last >= 0;
      const pLo0: number = hasParent ? seq[2 * parent.last]! : 0;
      const pHi0: number = hasParent ? seq[2 * parent.last + 1]! : 0;
      let pLo = pLo0;
      let pHi = pHi0;
      for (let i = 0; i < n; i++) {
        const o = 2 * (off + i);
        if (LITTLE_ENDIAN) {
          outBig[0] = xxh3.xxh64(this.scratchBytes.subarray(i * bs * 4, (i + 1) * bs * 4), XXH3_SEED);
          local[o] = outU32[0]!;
          local[o + 1] = outU32[1]!;
        } else {
          outBig[0] = hashTokenBlock(this.scratch, i * bs, bs);
          local[o] = outU32[0]!;
          local[o + 1] = outU32[1]!;
        }
        if (!hasParent && i === 0) {
          seq[o] = local[o]!;
          seq[o + 1] = local[o + 1]!;
        } else {
          chain(pLo, pHi, local[o]!, local[o + 1]!, seq, o);
        }
        pLo = seq[o]!;
        pHi = seq[o + 1]!;
        this.ids[off + i] = sib && i < sib.n ? this.ids[sib.off + i]! : off + i;
      }
    }
    c = {
      off,
      n,
      end: parent.end + len,
      alignedAfter: parent.alignedAfter && len % bs === 0,
      segId: id,
      last: n > 0 ? off + n - 1 : parent.last,
    };
    (parent.children ??= new Map()).set(key, c);
    const prevSib = parent.bySeg?.get(id);
    if (n > 0 && (!prevSib || n > prevSib.n)) (parent.bySeg ??= new Map()).set(id, c);
    this.nodes++;
    return c;
  }

  /** The prompt's full-block hashes (and oracle keys). */
  blocks(req: Pick<BenchRequest, 'segments' | 'inputLength'>): PromptBlocks {
    const bs = this.blockSize;
    const n = Math.floor(req.inputLength / bs);
    const localPairs = new Uint32Array(n * 2);
    const seqPairs = new Uint32Array(n * 2);
    const keys = new Int32Array(n);
    let k = 0;
    let node = this.root;
    let misaligned = false;
    for (const s of req.segments) {
      if (!node.alignedAfter) {
        misaligned = true;
        break;
      }
      node = this.child(node, s.id, s.len);
      const local = this.local;
      const seq = this.seq;
      const ids = this.ids;
      for (let i = 0; i < node.n; i++) {
        const a = node.off + i;
        localPairs[2 * k] = local[2 * a]!;
        localPairs[2 * k + 1] = local[2 * a + 1]!;
        seqPairs[2 * k] = seq[2 * a]!;
        seqPairs[2 * k + 1] = seq[2 * a + 1]!;
        keys[k] = ids[a]!;
        k++;
      }
    }
    if (misaligned && k < n) {
      // Hash the rest from the tokens, chained onto the last trie block.
      const tokens = promptTokens(this.seed, req);
      for (let b = k; b < n; b++) {
        outBig[0] = hashTokenBlock(tokens, b * bs, bs);
        localPairs[2 * b] = outU32[0]!;
        localPairs[2 * b + 1] = outU32[1]!;
        if (b === 0) {
          seqPairs[0] = localPairs[0]!;
          seqPairs[1] = localPairs[1]!;
        } else {
          chain(seqPairs[2 * b - 2]!, seqPairs[2 * b - 1]!, localPairs[2 * b]!, localPairs[2 * b + 1]!, seqPairs, 2 * b);
        }
        const key = blockKey(seqPairs[2 * b]!, seqPairs[2 * b + 1]!);
        let id = this.interned.get(key);
        if (id === undefined) {
          id = this.reserve(1);
          this.ids[id] = id;
          this.interned.set(key, id);
        }
        keys[b] = id;
      }
      k = n;
    }
    if (k !== n) throw new Error(`internal: hashed ${k} of ${n} blocks`);
    return { n, localPairs, seqPairs, keys };
  }
}

/** Pairs -> bigint arrays for the engine's precomputed prompt hashes. */
export function engineHashes(b: PromptBlocks): { local: bigint[]; seq: bigint[] } {
  const local = new Array<bigint>(b.n);
  const seq = new Array<bigint>(b.n);
  for (let i = 0; i < b.n; i++) {
    local[i] = joinU64(b.localPairs[2 * i]!, b.localPairs[2 * i + 1]!);
    seq[i] = joinU64(b.seqPairs[2 * i]!, b.seqPairs[2 * i + 1]!);
  }
  return { local, seq };
}
