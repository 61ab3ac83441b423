/**
 * Deliberately naive reference implementations for property tests: plain objects, Maps and Sets
 * keyed by bigint / strings, linear scans everywhere. They state the intended semantics as
 * directly as possible (dynamo-facts §1.1 and §1.4) and share no code with src/router.
 */
import type { KvCacheEventData } from '../../src/router/index.js';

export class RefNode {
  children = new Map<bigint, RefNode>();
  workers = new Set<string>();
  parent: RefNode | null = null;
  constructor(readonly tokensHash: bigint) {}
}

export type RefStatus = 'ok' | 'parent_block_not_found' | 'block_not_found' | 'invalid_block_sequence';

export class RefIndexer {
  root = new RefNode(-1n);
  lookup = new Map<string, Map<bigint, RefNode>>();
  allNodes: RefNode[] = [];

  addWorker(w: string): void {
    if (!this.lookup.has(w)) this.lookup.set(w, new Map());
  }

  private emptied(n: RefNode): void {
    if (n.workers.size > 0 || n === this.root) return;
    for (const c of n.children.values()) c.parent = null;
    n.children.clear();
  }

  private detach(n: RefNode): void {
    if (n.parent) {
      for (const [k, v] of n.parent.children) if (v === n) n.parent.children.delete(k);
      n.parent = null;
    }
  }

  apply(w: string, data: KvCacheEventData): RefStatus {
    const lk = this.lookup.get(w)!;
    if (data.type === 'stored') {
      const hashes = data.blocks.map((b) => b.blockHash);
      const all = data.parentHash === null ? hashes : [data.parentHash, ...hashes];
      if (new Set(all).size !== all.length) return 'invalid_block_sequence';
      let cur: RefNode;
      if (data.parentHash === null) cur = this.root;
      else {
        const p = lk.get(data.parentHash);
        if (!p) return 'parent_block_not_found';
        cur = p;
      }
      for (const b of data.blocks) {
        let child = cur.children.get(b.tokensHash);
        if (!child) {
          const reuse = lk.get(b.blockHash);
          let isAncestor = false;
          for (let a: RefNode | null = cur; a; a = a.parent) if (a === reuse) isAncestor = true;
          if (reuse && reuse.tokensHash === b.tokensHash && !isAncestor) {
            this.detach(reuse);
            child = reuse;
          } else {
            child = new RefNode(b.tokensHash);
            this.allNodes.push(child);
          }
          cur.children.set(b.tokensHash, child);
          child.parent = cur;
        }
        child.workers.add(w);
        lk.set(b.blockHash, child);
        cur = child;
      }
      return 'ok';
    }
    if (data.type === 'removed') {
      let missing = false;
      for (const h of data.blockHashes) {
        const n = lk.get(h);
        if (!n) {
          missing = true;
          continue;
        }
        lk.delete(h);
        n.workers.delete(w);
        this.emptied(n);
      }
      return missing ? 'block_not_found' : 'ok';
    }
    for (const n of lk.values()) {
      n.workers.delete(w);
      this.emptied(n);
    }
    lk.clear();
    return 'ok';
  }

  removeWorker(w: string): void {
    this.apply(w, { type: 'cleared' });
    for (const n of this.allNodes) {
      if (n.workers.delete(w)) this.emptied(n);
    }
    this.lookup.delete(w);
  }

  /** Literal find_matches (early_exit = false). */
  findMatches(local: bigint[]): Map<string, number> {
    const scores = new Map<string, number>();
    let cur = this.root;
    let active: Set<string> | null = null;
    let depth = 0;
    for (const h of local) {
      const next = cur.children.get(h);
      if (!next) break;
      if (active === null) active = new Set(next.workers);
      else {
        for (const w of [...active]) {
          if (!next.workers.has(w)) {
            scores.set(w, depth);
            active.delete(w);
          }
        }
      }
      if (active.size === 0) return scores;
      cur = next;
      depth++;
    }
    for (const w of active ?? []) scores.set(w, depth);
    return scores;
  }

  blockCount(w: string): number {
    return this.lookup.get(w)?.size ?? 0;
  }
}

export interface RefRequest {
  id: string;
  worker: string;
  seq: bigint[];
  prefill: number;
  start: number;
}

/** Naive active-load tracker: a list of requests, everything recomputed by scanning. */
export class RefLoad {
  reqs: RefRequest[] = [];

  add(r: RefRequest): void {
    this.free(r.id);
    this.reqs.push({ ...r, seq: [...r.seq] });
  }
  free(id: string): void {
    this.reqs = this.reqs.filter((r) => r.id !== id);
  }
  prefillDone(id: string): void {
    for (const r of this.reqs) if (r.id === id) r.prefill = 0;
  }
  expire(now: number, maxAge: number): string[] {
    const gone = this.reqs.filter((r) => now - r.start > maxAge).map((r) => r.id);
    this.reqs = this.reqs.filter((r) => now - r.start <= maxAge);
    return gone;
  }
  activeBlocks(w: string): number {
    const s = new Set<bigint>();
    for (const r of this.reqs) if (r.worker === w) for (const h of r.seq) s.add(h);
    return s.size;
  }
  prefillTokens(w: string): number {
    return this.reqs.filter((r) => r.worker === w).reduce((a, r) => a + r.prefill, 0);
  }
  requests(w: string): number {
    return this.reqs.filter((r) => r.worker === w).length;
  }
  activeDepth(w: string, seq: bigint[]): number {
    const s = new Set<bigint>();
    for (const r of this.reqs) if (r.worker === w) for (const h of r.seq) s.add(h);
    let d = 0;
    while (d < seq.length && s.has(seq[d]!)) d++;
    return d;
  }
}
