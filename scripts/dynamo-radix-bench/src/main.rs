//! Replays bench-router's indexer event stream through Dynamo's own `RadixTree`
//! (crate dynamo-kv-router 1.6.1) and prints one JSON line with block ops/s.
//!
//! Input file (written by scripts/bench-router.ts), little-endian u64 words, per request:
//!   worker_id, event_id, n, then n pairs (block_hash, tokens_hash).
//! Loop (same as the TypeScript indexer bench's untimed pass): apply the Stored event of request i,
//! then find_matches(tokens hashes of request i + 1, early_exit = false).
//! Block ops = stored blocks + looked-up blocks. `warmup` rounds run first and are not counted
//! (the TypeScript side runs as many before its counted rounds).
use dynamo_kv_router::protocols::{
    ExternalSequenceBlockHash, KvCacheEvent, KvCacheEventData, KvCacheStoreData, KvCacheStoredBlockData,
    LocalBlockHash, RouterEvent,
};
use dynamo_kv_router::RadixTree;
use std::time::Instant;

fn cpu_time_ns() -> u128 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // utime and stime are fields 14 and 15 (after the ")" of the command name).
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u128 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0u128)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0u128);
    ticks * 10_000_000 // USER_HZ = 100
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: dynamo-radix-bench <events.bin> [repeat] [warmup]");
    let repeat: usize = args.get(2).and_then(|x| x.parse().ok()).unwrap_or(3);
    let warmup: usize = args.get(3).and_then(|x| x.parse().ok()).unwrap_or(0);
    let bytes = std::fs::read(path).expect("read events file");
    let words: Vec<u64> = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
    let mut reqs: Vec<(u64, u64, Vec<(u64, u64)>)> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let (w, e, n) = (words[i], words[i + 1], words[i + 2] as usize);
        i += 3;
        let blocks = (0..n).map(|k| (words[i + 2 * k], words[i + 2 * k + 1])).collect();
        i += 2 * n;
        reqs.push((w, e, blocks));
    }
    let mut results = Vec::new();
    // Several rounds (a round is ~tens of ms): wall figure = median round; CPU figure = all
    // rounds' ops over all rounds' CPU time (/proc ticks are 10 ms, too coarse for one round).
    let rounds = repeat.max(7);
    let (mut all_ops, mut all_cpu) = (0u64, 0u128);
    for round in 0..warmup + rounds {
        // Built before timing; consumed by value inside the timed loop.
        let events: Vec<RouterEvent> = reqs
            .iter()
            .map(|(w, e, blocks)| {
                RouterEvent::new(
                    *w,
                    KvCacheEvent {
                        event_id: *e,
                        data: KvCacheEventData::Stored(KvCacheStoreData {
                            parent_hash: None,
                            start_position: None,
                            blocks: blocks
                                .iter()
                                .map(|(b, t)| KvCacheStoredBlockData {
                                    block_hash: ExternalSequenceBlockHash(*b),
                                    tokens_hash: LocalBlockHash(*t),
                                    mm_extra_info: None,
                                })
                                .collect(),
                        }),
                        dp_rank: 0,
                    },
                )
            })
            .collect();
        let mut queries: Vec<Option<Vec<LocalBlockHash>>> = reqs
            .iter()
            .skip(1)
            .map(|(_, _, blocks)| Some(blocks.iter().map(|(_, t)| LocalBlockHash(*t)).collect()))
            .collect();
        queries.push(None);
        let mut tree = RadixTree::new();
        let mut ops: u64 = 0;
        let mut sink: u64 = 0;
        let cpu0 = cpu_time_ns();
        let t0 = Instant::now();
        for (ev, q) in events.into_iter().zip(queries.iter_mut()) {
            if let KvCacheEventData::Stored(ref s) = ev.event.data {
                ops += s.blocks.len() as u64;
            }
            tree.apply_event(ev).expect("apply_event");
            if let Some(q) = q.take() {
                ops += q.len() as u64;
                let sc = tree.find_matches(q, false);
                sink += sc.scores.len() as u64;
            }
        }
        let ns = t0.elapsed().as_nanos();
        let cpu = cpu_time_ns().saturating_sub(cpu0);
        if round < warmup {
            continue;
        }
        all_ops += ops;
        all_cpu += cpu;
        results.push((ops as f64 / (ns as f64 / 1e9), 0.0, ops, sink));
    }
    results.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
    let m = results[results.len() / 2];
    println!(
        "{{\"crate\":\"dynamo-kv-router 1.6.1\",\"block_ops\":{},\"block_ops_per_s\":{},\"block_ops_per_cpu_s\":{},\"repeat\":{},\"warmup\":{},\"sink\":{}}}",
        m.2, m.0.round(), (all_ops as f64 / (all_cpu.max(1) as f64 / 1e9)).round(), results.len(), warmup, m.3
    );
}
