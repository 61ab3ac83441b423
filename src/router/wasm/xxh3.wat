;; XXH3-64 (seeded) for the two input shapes Dynamo's KV router hashes, batched: one call per
;; request hashes every block (17..128 bytes: block sizes of 5..32 u32 tokens) or chains every
;; sequence hash (16 bytes: le_u64(parent) || le_u64(local)). Written from the xxHash
;; specification (doc/xxhash_spec.md); 64x64 -> 128-bit products from four 32x32 -> 64 products.
;; Compiled by scripts/build-xxh3-wasm.mjs into src/router/wasm/xxh3-wasm-bytes.ts.
;;
;; Memory layout: [0, 192) the default secret, [192, 320) the 16 seeded medium-path keys of the
;; current call, [1024, ...) caller data (token ids, hashes).
(module
  (memory (export "memory") 1)
  (data (i32.const 0)
    "\b8\fe\6c\39\23\a4\4b\be\7c\01\81\2c\f7\21\ad\1c"
    "\de\d4\6d\e9\83\90\97\db\72\40\a4\a4\b7\b3\67\1f"
    "\cb\79\e6\4e\cc\c0\e5\78\82\5a\d0\7d\cc\ff\72\21"
    "\b8\08\46\74\f7\43\24\8e\e0\35\90\e6\81\3a\26\4c"
    "\3c\28\52\bb\91\c3\00\cb\88\d0\65\8b\1b\53\2e\a3"
    "\71\64\48\97\a2\0d\f9\4e\38\19\ef\46\a9\de\ac\d8"
    "\a8\fa\76\3f\e3\9c\34\3f\f9\dc\bb\c7\c7\0b\4f\1d"
    "\8a\51\e0\4b\cd\b4\59\31\c8\9f\7e\c9\d9\78\73\64"
    "\ea\c5\ac\83\34\d3\eb\c3\c5\81\a0\ff\fa\13\63\eb"
    "\17\0d\dd\51\b7\f0\da\49\d3\16\55\26\29\d4\68\9e"
    "\2b\16\be\58\7d\47\a1\fc\8f\f8\b8\d1\7a\d0\31\ce"
    "\45\cb\3a\8f\95\16\04\28\af\d7\fb\ca\bb\4b\40\7e")

  ;; Below, fold(a, b) = lo64(a * b) xor hi64(a * b), the hi64 from four 32x32 -> 64 products.

  ;; XXH3 avalanche
  (func $aval (param $h i64) (result i64)
    (local.set $h (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 37))))
    (local.set $h (i64.mul (local.get $h) (i64.const 0x165667919E3779F9)))
    (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 32))))

  ;; fold((load64(p) ^ key[e].lo) * (load64(p + 8) ^ key[e].hi)), key entry at byte offset k
  ;; ($fold written out: one call per mix instead of two)
  (func $mix (param $p i32) (param $k i32) (result i64)
    (local $a i64) (local $b i64) (local $al i64) (local $ah i64) (local $bl i64) (local $bh i64)
    (local $ll i64) (local $hl i64) (local $cross i64)
    (local.set $a (i64.xor (i64.load (local.get $p)) (i64.load offset=192 (local.get $k))))
    (local.set $b (i64.xor (i64.load offset=8 (local.get $p)) (i64.load offset=200 (local.get $k))))
    (local.set $al (i64.and (local.get $a) (i64.const 0xffffffff)))
    (local.set $ah (i64.shr_u (local.get $a) (i64.const 32)))
    (local.set $bl (i64.and (local.get $b) (i64.const 0xffffffff)))
    (local.set $bh (i64.shr_u (local.get $b) (i64.const 32)))
    (local.set $ll (i64.mul (local.get $al) (local.get $bl)))
    (local.set $hl (i64.mul (local.get $ah) (local.get $bl)))
    (local.set $cross
      (i64.add
        (i64.add (i64.shr_u (local.get $ll) (i64.const 32)) (i64.and (local.get $hl) (i64.const 0xffffffff)))
        (i64.mul (local.get $al) (local.get $bh))))
    (i64.xor
      (i64.mul (local.get $a) (local.get $b))
      (i64.add
        (i64.add (i64.shr_u (local.get $hl) (i64.const 32)) (i64.shr_u (local.get $cross) (i64.const 32)))
        (i64.mul (local.get $ah) (local.get $bh)))))

  ;; XXH3-64 of n consecutive blocks of len bytes (17 <= len <= 128) at in; hashes (u64 LE) to out.
  (func (export "blocks") (param $in i32) (param $n i32) (param $len i32) (param $seed i64) (param $out i32)
    (local $j i32) (local $b i32) (local $p i32) (local $acc i64) (local $acc0 i64) (local $b0 i32)
    (local $a i64) (local $bb i64) (local $al i64) (local $ah i64) (local $bl i64) (local $bh i64)
    (local $ll i64) (local $hl i64) (local $cross i64)
    ;; keys: key[j] = (secret64[16j] + seed, secret64[16j + 8] - seed), j = 0..7
    (loop $keys
      (i64.store offset=192 (local.get $j) (i64.add (i64.load (local.get $j)) (local.get $seed)))
      (i64.store offset=200 (local.get $j) (i64.sub (i64.load offset=8 (local.get $j)) (local.get $seed)))
      (local.set $j (i32.add (local.get $j) (i32.const 16)))
      (br_if $keys (i32.lt_u (local.get $j) (i32.const 128))))
    (local.set $acc0 (i64.mul (i64.extend_i32_u (local.get $len)) (i64.const 0x9E3779B185EBCA87)))
    (local.set $p (local.get $in))
    ;; 64-byte blocks (Dynamo's 16 tokens per block): the four mixes written out.
    (if (i32.eq (local.get $len) (i32.const 64))
      (then
        (block $done64
          (loop $next64
            (br_if $done64 (i32.ge_u (local.get $b0) (local.get $n)))
            (local.set $acc (local.get $acc0))
        (local.set $a (i64.xor (i64.load offset=16 (local.get $p)) (i64.load offset=224 (i32.const 0))))
        (local.set $bb (i64.xor (i64.load offset=24 (local.get $p)) (i64.load offset=232 (i32.const 0))))
        (local.set $al (i64.and (local.get $a) (i64.const 0xffffffff)))
        (local.set $ah (i64.shr_u (local.get $a) (i64.const 32)))
        (local.set $bl (i64.and (local.get $bb) (i64.const 0xffffffff)))
        (local.set $bh (i64.shr_u (local.get $bb) (i64.const 32)))
        (local.set $ll (i64.mul (local.get $al) (local.get $bl)))
        (local.set $hl (i64.mul (local.get $ah) (local.get $bl)))
        (local.set $cross
          (i64.add
            (i64.add (i64.shr_u (local.get $ll) (i64.const 32)) (i64.and (local.get $hl) (i64.const 0xffffffff)))
            (i64.mul (local.get $al) (local.get $bh))))
        (local.set $acc (i64.add (local.get $acc) (i64.xor
          (i64.mul (local.get $a) (local.get $bb))
          (i64.add
            (i64.add (i64.shr_u (local.get $hl) (i64.const 32)) (i64.shr_u (local.get $cross) (i64.const 32)))
            (i64.mul (local.get $ah) (local.get $bh))))))
        (local.set $a (i64.xor (i64.load offset=32 (local.get $p)) (i64.load offset=240 (i32.const 0))))
        (local.set $bb (i64.xor (i64.load offset=40 (local.get $p)) (i64.load offset=248 (i32.const 0))))
        (local.set $al (i64.and (local.get $a) (i64.const 0xffffffff)))
        (local.set $ah (i64.shr_u (local.get $a) (i64.const 32)))
        (local.set $bl (i64.and (local.get $bb) (i64.const 0xffffffff)))
        (local.set $bh (i64.shr_u (local.get $bb) (i64.const 32)))
        (local.set $ll (i64.mul (local.get $al) (local.get $bl)))
        (local.set $hl (i64.mul (local.get $ah) (local.get $bl)))
        (local.set $cross
          (i64.add
            (i64.add (i64.shr_u (local.get $ll) (i64.const 32)) (i64.and (local.get $hl) (i64.const 0xffffffff)))
            (i64.mul (local.get $al) (local.get $bh))))
        (local.set $acc (i64.add (local.get $acc) (i64.xor
          (i64.mul (local.get $a) (local.get $bb))
          (i64.add
            (i64.add (i64.shr_u (local.get $hl) (i64.const 32)) (i64.shr_u (local.get $cross) (i64.const 32)))
            (i64.mul (local.get $ah) (local.get $bh))))))
        (local.set $a (i64.xor (i64.load offset=0 (local.get $p)) (i64.load offset=192 (i32.const 0))))
        (local.set $bb (i64.xor (i64.load offset=8 (local.get $p)) (i64.load offset=200 (i32.const 0))))
        (local.set $al (i64.and (local.get $a) (i64.const 0xffffffff)))
        (local.set $ah (i64.shr_u (local.get $a) (i64.const 32)))
        (local.set $bl (i64.and (local.get $bb) (i64.const 0xffffffff)))
        (local.set $bh (i64.shr_u (local.get $bb) (i64.const 32)))
        (local.set $ll (i64.mul (local.get $al) (local.get $bl)))
        (local.set $hl (i64.mul (local.get $ah) (local.get $bl)))
        (local.set $cross
          (i64.add
            (i64.add (i64.shr_u (local.get $ll) (i64.const 32)) (i64.and (local.get $hl) (i64.const 0xffffffff)))
            (i64.mul (local.get $al) (local.get $bh))))
        (local.set $acc (i64.add (local.get $acc) (i64.xor
          (i64.mul (local.get $a) (local.get $bb))
          (i64.add
            (i64.add (i64.shr_u (local.get $hl) (i64.const 32)) (i64.shr_u (local.get $cross) (i64.const 32)))
            (i64.mul (local.get $ah) (local.get $bh))))))
        (local.set $a (i64.xor (i64.load offset=48 (local.get $p)) (i64.load offset=208 (i32.const 0))))
        (local.set $bb (i64.xor (i64.load offset=56 (local.get $p)) (i64.load offset=216 (i32.const 0))))
        (local.set $al (i64.and (local.get $a) (i64.const 0xffffffff)))
        (local.set $ah (i64.shr_u (local.get $a) (i64.const 32)))
        (local.set $bl (i64.and (local.get $bb) (i64.const 0xffffffff)))
        (local.set $bh (i64.shr_u (local.get $bb) (i64.const 32)))
        (local.set $ll (i64.mul (local.get $al) (local.get $bl)))
        (local.set $hl (i64.mul (local.get $ah) (local.get $bl)))
        (local.set $cross
          (i64.add
            (i64.add (i64.shr_u (local.get $ll) (i64.const 32)) (i64.and (local.get $hl) (i64.const 0xffffffff)))
            (i64.mul (local.get $al) (local.get $bh))))
        (local.set $acc (i64.add (local.get $acc) (i64.xor
          (i64.mul (local.get $a) (local.get $bb))
          (i64.add
            (i64.add (i64.shr_u (local.get $hl) (i64.const 32)) (i64.shr_u (local.get $cross) (i64.const 32)))
            (i64.mul (local.get $ah) (local.get $bh))))))
            (local.set $acc (i64.xor (local.get $acc) (i64.shr_u (local.get $acc) (i64.const 37))))
            (local.set $acc (i64.mul (local.get $acc) (i64.const 0x165667919E3779F9)))
            (i64.store (i32.add (local.get $out) (i32.shl (local.get $b0) (i32.const 3)))
              (i64.xor (local.get $acc) (i64.shr_u (local.get $acc) (i64.const 32))))
            (local.set $p (i32.add (local.get $p) (i32.const 64)))
            (local.set $b0 (i32.add (local.get $b0) (i32.const 1)))
            (br $next64)))
        (return)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $b) (local.get $n)))
        (local.set $acc (local.get $acc0))
        (if (i32.gt_u (local.get $len) (i32.const 32))
          (then
            (if (i32.gt_u (local.get $len) (i32.const 64))
              (then
                (if (i32.gt_u (local.get $len) (i32.const 96))
                  (then
                    (local.set $acc (i64.add (local.get $acc) (call $mix (i32.add (local.get $p) (i32.const 48)) (i32.const 96))))
                    (local.set $acc (i64.add (local.get $acc)
                      (call $mix (i32.sub (i32.add (local.get $p) (local.get $len)) (i32.const 64)) (i32.const 112))))))
                (local.set $acc (i64.add (local.get $acc) (call $mix (i32.add (local.get $p) (i32.const 32)) (i32.const 64))))
                (local.set $acc (i64.add (local.get $acc)
                  (call $mix (i32.sub (i32.add (local.get $p) (local.get $len)) (i32.const 48)) (i32.const 80))))))
            (local.set $acc (i64.add (local.get $acc) (call $mix (i32.add (local.get $p) (i32.const 16)) (i32.const 32))))
            (local.set $acc (i64.add (local.get $acc)
              (call $mix (i32.sub (i32.add (local.get $p) (local.get $len)) (i32.const 32)) (i32.const 48))))))
        (local.set $acc (i64.add (local.get $acc) (call $mix (local.get $p) (i32.const 0))))
        (local.set $acc (i64.add (local.get $acc)
          (call $mix (i32.sub (i32.add (local.get $p) (local.get $len)) (i32.const 16)) (i32.const 16))))
        (i64.store (i32.add (local.get $out) (i32.shl (local.get $b) (i32.const 3))) (call $aval (local.get $acc)))
        (local.set $p (i32.add (local.get $p) (local.get $len)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (br $next))))

  ;; Chained sequence hashes: out[0] = local[0]; out[i] = XXH3-64(le(out[i-1]) || le(local[i]), seed).
  (func (export "chain") (param $local i32) (param $n i32) (param $seed i64) (param $out i32)
    (local $i i32) (local $bf1 i64) (local $bf2 i64) (local $prev i64) (local $lo i64) (local $hi i64)
    (local $al i64) (local $ah i64) (local $bl i64) (local $bh i64) (local $ll i64) (local $hl i64) (local $cross i64)
    (local $x i64) (local $h i64)
    (if (i32.eqz (local.get $n)) (then (return)))
    (local.set $bf1 (i64.add (i64.xor (i64.load offset=24 (i32.const 0)) (i64.load offset=32 (i32.const 0))) (local.get $seed)))
    (local.set $bf2 (i64.sub (i64.xor (i64.load offset=40 (i32.const 0)) (i64.load offset=48 (i32.const 0))) (local.get $seed)))
    (local.set $prev (i64.load (local.get $local)))
    (i64.store (local.get $out) (local.get $prev))
    (local.set $i (i32.const 1))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $lo (i64.xor (local.get $prev) (local.get $bf1)))
        (local.set $hi (i64.xor (i64.load (i32.add (local.get $local) (i32.shl (local.get $i) (i32.const 3)))) (local.get $bf2)))
        ;; $fold, $bswap64 and $aval written out
        (local.set $al (i64.and (local.get $lo) (i64.const 0xffffffff)))
        (local.set $ah (i64.shr_u (local.get $lo) (i64.const 32)))
        (local.set $bl (i64.and (local.get $hi) (i64.const 0xffffffff)))
        (local.set $bh (i64.shr_u (local.get $hi) (i64.const 32)))
        (local.set $ll (i64.mul (local.get $al) (local.get $bl)))
        (local.set $hl (i64.mul (local.get $ah) (local.get $bl)))
        (local.set $cross
          (i64.add
            (i64.add (i64.shr_u (local.get $ll) (i64.const 32)) (i64.and (local.get $hl) (i64.const 0xffffffff)))
            (i64.mul (local.get $al) (local.get $bh))))
        (local.set $x (i64.or
          (i64.shl (i64.and (local.get $lo) (i64.const 0x00ff00ff00ff00ff)) (i64.const 8))
          (i64.and (i64.shr_u (local.get $lo) (i64.const 8)) (i64.const 0x00ff00ff00ff00ff))))
        (local.set $x (i64.or
          (i64.shl (i64.and (local.get $x) (i64.const 0x0000ffff0000ffff)) (i64.const 16))
          (i64.and (i64.shr_u (local.get $x) (i64.const 16)) (i64.const 0x0000ffff0000ffff))))
        (local.set $h
          (i64.add
            (i64.add (i64.add (i64.const 16) (i64.rotl (local.get $x) (i64.const 32))) (local.get $hi))
            (i64.xor
              (i64.mul (local.get $lo) (local.get $hi))
              (i64.add
                (i64.add (i64.shr_u (local.get $hl) (i64.const 32)) (i64.shr_u (local.get $cross) (i64.const 32)))
                (i64.mul (local.get $ah) (local.get $bh))))))
        (local.set $h (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 37))))
        (local.set $h (i64.mul (local.get $h) (i64.const 0x165667919E3779F9)))
        (local.set $prev (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 32))))
        (i64.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 3))) (local.get $prev))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))
)
