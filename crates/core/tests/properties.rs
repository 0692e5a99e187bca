//! Property tests for the shard map, the strategies and table rules.

use proptest::prelude::*;
use shardgate_core::Strategy as ShardStrategy;
use shardgate_core::hash::hash_combine64;
use shardgate_core::{CoreError, KeyRange, KeyValue, KeyspaceId, ShardId, ShardMap, TableRule};
use std::collections::{BTreeSet, HashMap};

// ---------------------------------------------------------------- generators

/// A split point: any non-zero u64, with the edges over-represented.
fn split_point() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 1u64..=u64::MAX,
        1 => Just(1u64),
        1 => Just(u64::MAX),
        1 => Just(1u64 << 63),
        1 => 1u64..64,
        1 => (u64::MAX - 64)..=u64::MAX,
    ]
}

/// Ranges (in keyspace order) built from sorted distinct split points, with
/// random owners.
fn map_ranges() -> impl Strategy<Value = Vec<(KeyRange, ShardId)>> {
    prop::collection::btree_set(split_point(), 0..24).prop_flat_map(|splits| {
        let splits: Vec<u64> = splits.into_iter().collect();
        let n = splits.len() + 1;
        prop::collection::vec((0u32..8).prop_map(ShardId), n).prop_map(move |owners| {
            let starts = std::iter::once(0).chain(splits.iter().copied());
            let ends = splits
                .iter()
                .copied()
                .map(Some)
                .chain(std::iter::once(None));
            starts
                .zip(ends)
                .zip(owners)
                .map(|((start, end), owner)| (KeyRange { start, end }, owner))
                .collect()
        })
    })
}

type Ranges = Vec<(KeyRange, ShardId)>;

/// Ranges plus the same ranges in a random order (what `ShardMap::new` gets).
fn map_ranges_shuffled() -> impl Strategy<Value = (Ranges, Ranges)> {
    map_ranges().prop_flat_map(|r| (Just(r.clone()), Just(r).prop_shuffle()))
}

fn key_value() -> impl Strategy<Value = KeyValue> {
    prop_oneof![
        any::<i64>().prop_map(KeyValue::Int),
        (-100i64..100).prop_map(KeyValue::Int),
        ".{0,20}".prop_map(KeyValue::Text),
        any::<[u8; 16]>().prop_map(KeyValue::Uuid),
        any::<i64>().prop_map(KeyValue::Timestamp),
        any::<i32>().prop_map(KeyValue::Date),
    ]
}

fn shard_ids(n: u32) -> Vec<ShardId> {
    (0..n).map(ShardId).collect()
}

/// Brute force: the owners of every range that contains `id`.
fn owners_linear(map: &ShardMap, id: KeyspaceId) -> Vec<ShardId> {
    map.ranges()
        .filter(|(r, _)| r.contains(id))
        .map(|(_, s)| s)
        .collect()
}

/// Keyspace ids worth probing: the edges of the space and of every range.
fn probes(ranges: &[(KeyRange, ShardId)], random: &[u64]) -> Vec<u64> {
    let mut v = vec![0, 1, u64::MAX, u64::MAX - 1, 1 << 63];
    for (r, _) in ranges {
        v.extend([r.start, r.start.wrapping_sub(1), r.start.wrapping_add(1)]);
    }
    v.extend_from_slice(random);
    v
}

// ------------------------------------------------------------------ shard map

proptest! {
    #[test]
    fn shard_map_accepts_any_exact_cover(
        (ranges, shuffled) in map_ranges_shuffled(),
        version in any::<u64>(),
        random in prop::collection::vec(any::<u64>(), 64),
    ) {
        let map = ShardMap::new(version, shuffled).expect("an exact cover is accepted");
        prop_assert_eq!(map.version(), version);
        let got: Vec<(KeyRange, ShardId)> = map.ranges().collect();
        prop_assert_eq!(&got, &ranges);

        // The union of ranges() covers the space exactly once.
        prop_assert_eq!(got[0].0.start, 0);
        for w in got.windows(2) {
            prop_assert_eq!(w[0].0.end, Some(w[1].0.start));
            prop_assert!(w[0].0.start < w[1].0.start);
        }
        prop_assert_eq!(got.last().unwrap().0.end, None);

        // Every probed keyspace id has exactly one owner, the one lookup gives.
        for id in probes(&ranges, &random) {
            let owners = owners_linear(&map, KeyspaceId(id));
            prop_assert_eq!(owners.len(), 1, "id {:016x} owned by {:?}", id, owners);
            prop_assert_eq!(map.lookup(KeyspaceId(id)), owners[0], "id {:016x}", id);
        }

        // shards() is the sorted, deduplicated owner set.
        let owner_set: BTreeSet<ShardId> = ranges.iter().map(|(_, s)| *s).collect();
        prop_assert_eq!(map.shards(), owner_set.into_iter().collect::<Vec<_>>());
    }

    #[test]
    fn removing_a_range_leaves_a_gap(
        (ranges, shuffled) in map_ranges_shuffled(),
        pick in any::<prop::sample::Index>(),
    ) {
        let victim = ranges[pick.index(ranges.len())];
        let rest: Vec<_> = shuffled.into_iter().filter(|r| *r != victim).collect();
        let res = ShardMap::new(1, rest);
        if ranges.len() == 1 {
            prop_assert_eq!(res, Err(CoreError::Empty));
        } else {
            prop_assert!(matches!(res, Err(CoreError::Gap(_))), "removed {:?}: {:?}", victim, res);
        }
    }

    #[test]
    fn duplicating_a_range_overlaps(
        (ranges, shuffled) in map_ranges_shuffled(),
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        other_owner in (0u32..8).prop_map(ShardId),
    ) {
        let (dup, _) = ranges[pick.index(ranges.len())];
        let mut input = shuffled;
        input.insert(at.index(input.len() + 1), (dup, other_owner));
        let res = ShardMap::new(1, input);
        prop_assert!(matches!(res, Err(CoreError::Overlap(..))), "duplicated {:?}: {:?}", dup, res);
    }

    #[test]
    fn stretching_a_range_overlaps(
        (ranges, _) in map_ranges_shuffled(),
        pick in any::<prop::sample::Index>(),
        frac in any::<u64>(),
        lower_start in any::<bool>(),
        to_end in any::<bool>(),
    ) {
        prop_assume!(ranges.len() >= 2);
        let mut input = ranges.clone();
        if lower_start {
            // Move the start of range i >= 1 below its old start.
            let i = 1 + pick.index(ranges.len() - 1);
            let old = input[i].0.start;
            input[i].0.start = frac % old;
        } else {
            // Move the end of range i < last past the next range's start.
            let i = pick.index(ranges.len() - 1);
            let next = input[i + 1].0.start;
            input[i].0.end = if to_end || next == u64::MAX {
                None
            } else {
                Some(next + 1 + frac % (u64::MAX - next))
            };
        }
        let res = ShardMap::new(1, input.clone());
        prop_assert!(matches!(res, Err(CoreError::Overlap(..))), "{:?}: {:?}", input, res);
    }

    #[test]
    fn uniform_maps_split_evenly(n in 1u32..200) {
        let map = ShardMap::uniform(7, &shard_ids(n)).unwrap();
        let r: Vec<_> = map.ranges().collect();
        prop_assert_eq!(r.len(), n as usize);
        for (i, (range, owner)) in r.iter().enumerate() {
            prop_assert_eq!(*owner, ShardId(i as u32));
            let len = range.end.map_or(1u128 << 64, u128::from) - range.start as u128;
            let ideal = (1u128 << 64) / n as u128;
            prop_assert!(len.abs_diff(ideal) <= 1, "range {} has {} ids, ideal {}", i, len, ideal);
        }
    }
}

// ----------------------------------------------------------------- strategies

/// Places `key` twice and checks it is deterministic and one of `shards`.
fn place_checked(
    s: &ShardStrategy,
    key: &[KeyValue],
    shards: &BTreeSet<ShardId>,
) -> Result<ShardId, TestCaseError> {
    let a = s
        .place(key)
        .map_err(|e| TestCaseError::fail(format!("{key:?}: {e}")))?;
    let b = s
        .place(key)
        .map_err(|e| TestCaseError::fail(format!("{key:?}: {e}")))?;
    prop_assert_eq!(a, b, "placement of {:?} is not deterministic", key);
    // A clone (as after a config reload) places the same way too.
    prop_assert_eq!(s.clone().place(key).unwrap(), a);
    prop_assert!(
        shards.contains(&a),
        "{:?} placed on unknown shard {:?}",
        key,
        a
    );
    Ok(a)
}

fn range_parts(bounds: &[KeyValue], owners: &[ShardId]) -> Vec<(Option<KeyValue>, ShardId)> {
    bounds
        .iter()
        .cloned()
        .map(Some)
        .chain(std::iter::once(None))
        .zip(owners.iter().copied())
        .collect()
}

/// Brute force: the index of the range that holds `k` (bounds are upper
/// bounds, exclusive).
fn range_index(bounds: &[KeyValue], k: &KeyValue) -> usize {
    bounds.iter().take_while(|b| *b <= k).count()
}

proptest! {
    #[test]
    fn hash_placement_is_deterministic(
        n in 1u32..=64,
        keys in prop::collection::vec(key_value(), 1..32),
    ) {
        let shards = shard_ids(n);
        let s = ShardStrategy::hash(&shards).unwrap();
        let set: BTreeSet<ShardId> = shards.iter().copied().collect();
        let ShardStrategy::Hash { map } = &s else { unreachable!() };
        for k in &keys {
            let placed = place_checked(&s, std::slice::from_ref(k), &set)?;
            prop_assert_eq!(placed, map.lookup(KeyspaceId(k.pg_hash())));
        }
    }

    #[test]
    fn consistent_placement_is_deterministic(
        n in 1u32..=8,
        vnodes in 1u32..=64,
        keys in prop::collection::vec(key_value(), 1..32),
    ) {
        let names: Vec<String> = (0..n).map(|i| format!("shard-{i}")).collect();
        let named: Vec<(ShardId, &str)> =
            names.iter().enumerate().map(|(i, s)| (ShardId(i as u32), s.as_str())).collect();
        let s = ShardStrategy::consistent(&named, vnodes).unwrap();
        // Rebuilding the ring from the same names gives the same ring.
        prop_assert_eq!(&s, &ShardStrategy::consistent(&named, vnodes).unwrap());
        let set: BTreeSet<ShardId> = shard_ids(n).into_iter().collect();
        let ShardStrategy::Consistent { map, .. } = &s else { unreachable!() };
        prop_assert_eq!(map.shards(), shard_ids(n));
        for k in &keys {
            place_checked(&s, std::slice::from_ref(k), &set)?;
        }
    }

    #[test]
    fn int_range_placement_is_monotone(
        bounds in prop::collection::btree_set(any::<i64>(), 0..16),
        owners_seed in prop::collection::vec(0u32..6, 17),
        mut keys in prop::collection::vec(
            prop_oneof![any::<i64>(), -1000i64..1000, Just(i64::MIN), Just(i64::MAX)], 2..40),
    ) {
        let bounds: Vec<KeyValue> = bounds.into_iter().map(KeyValue::Int).collect();
        // The bounds themselves (and their neighbours) are the interesting keys.
        for b in &bounds {
            let KeyValue::Int(v) = b else { unreachable!() };
            keys.extend([*v, v.saturating_sub(1), v.saturating_add(1)]);
        }
        keys.sort();
        let keys: Vec<KeyValue> = keys.into_iter().map(KeyValue::Int).collect();
        check_range(&bounds, &owners_seed, &keys)?;
    }

    #[test]
    fn text_range_placement_is_monotone(
        bounds in prop::collection::btree_set("[a-z]{0,4}", 0..16),
        owners_seed in prop::collection::vec(0u32..6, 17),
        mut keys in prop::collection::vec("[a-z]{0,5}", 2..40),
    ) {
        keys.extend(bounds.iter().cloned());
        keys.sort();
        let bounds: Vec<KeyValue> = bounds.into_iter().map(KeyValue::Text).collect();
        let keys: Vec<KeyValue> = keys.into_iter().map(KeyValue::Text).collect();
        check_range(&bounds, &owners_seed, &keys)?;
    }

    #[test]
    fn range_rejects_unsorted_bounds(
        bounds in prop::collection::btree_set(any::<i64>(), 2..10),
        swap in any::<prop::sample::Index>(),
    ) {
        let mut b: Vec<KeyValue> = bounds.into_iter().map(KeyValue::Int).collect();
        let i = swap.index(b.len() - 1);
        b.swap(i, i + 1);
        let owners = shard_ids(b.len() as u32 + 1);
        prop_assert!(ShardStrategy::range(range_parts(&b, &owners)).is_err());
        // A repeated bound is refused too.
        b.sort();
        b.insert(i, b[i].clone());
        let owners = shard_ids(b.len() as u32 + 1);
        prop_assert!(ShardStrategy::range(range_parts(&b, &owners)).is_err());
    }

    #[test]
    fn list_and_directory_place_with_default(
        entries in prop::collection::hash_map(key_value(), (0u32..16).prop_map(ShardId), 0..50),
        default in (0u32..16).prop_map(ShardId),
        probes in prop::collection::vec(key_value(), 0..30),
        directory in any::<bool>(),
    ) {
        let make = |default: Option<ShardId>| {
            if directory {
                ShardStrategy::Directory { entries: entries.clone(), default }
            } else {
                ShardStrategy::List { values: entries.clone(), default }
            }
        };
        let s = make(Some(default));
        let no_default = make(None);
        let mut set: BTreeSet<ShardId> = entries.values().copied().collect();
        set.insert(default);
        for (k, owner) in &entries {
            let placed = place_checked(&s, std::slice::from_ref(k), &set)?;
            prop_assert_eq!(placed, *owner);
            prop_assert_eq!(no_default.place(std::slice::from_ref(k)).unwrap(), *owner);
        }
        for k in &probes {
            let placed = place_checked(&s, std::slice::from_ref(k), &set)?;
            match entries.get(k) {
                Some(owner) => prop_assert_eq!(placed, *owner),
                None => {
                    prop_assert_eq!(placed, default);
                    prop_assert!(matches!(
                        no_default.place(std::slice::from_ref(k)),
                        Err(CoreError::NoPlacement(_))
                    ));
                }
            }
        }
    }
}

fn check_range(
    bounds: &[KeyValue],
    owners_seed: &[u32],
    sorted_keys: &[KeyValue],
) -> Result<(), TestCaseError> {
    let n = bounds.len() + 1;
    // Owners equal to the range index: the placed shard *is* the index.
    let by_index = ShardStrategy::range(range_parts(bounds, &shard_ids(n as u32))).unwrap();
    // Random owners (shards may own several ranges).
    let owners: Vec<ShardId> = owners_seed[..n].iter().copied().map(ShardId).collect();
    let random = ShardStrategy::range(range_parts(bounds, &owners)).unwrap();
    let idx_set: BTreeSet<ShardId> = shard_ids(n as u32).into_iter().collect();
    let owner_set: BTreeSet<ShardId> = owners.iter().copied().collect();

    let mut prev: Option<(usize, &KeyValue)> = None;
    for k in sorted_keys {
        let key = std::slice::from_ref(k);
        let idx = place_checked(&by_index, key, &idx_set)?.0 as usize;
        prop_assert_eq!(idx, range_index(bounds, k), "key {:?}", k);
        if let Some((p, pk)) = prev {
            prop_assert!(
                p <= idx,
                "{:?} -> range {} but larger {:?} -> range {}",
                pk,
                p,
                k,
                idx
            );
        }
        prev = Some((idx, k));
        prop_assert_eq!(place_checked(&random, key, &owner_set)?, owners[idx]);
        // Bounds are inclusive lower bounds of the next range.
        if let Some(i) = bounds.iter().position(|b| b == k) {
            prop_assert_eq!(idx, i + 1);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- table rules

proptest! {
    #[test]
    fn overrides_beat_the_strategy(
        n in 1u32..=16,
        pinned in prop::collection::btree_set(key_value(), 1..10),
        others in prop::collection::vec(key_value(), 0..20),
        kind in 0u8..4,
    ) {
        let shards = shard_ids(n);
        let strategy = match kind {
            0 => ShardStrategy::hash(&shards).unwrap(),
            1 => {
                let named: Vec<(ShardId, String)> =
                    shards.iter().map(|s| (*s, format!("n{}", s.0))).collect();
                let named: Vec<(ShardId, &str)> = named.iter().map(|(s, x)| (*s, x.as_str())).collect();
                ShardStrategy::consistent(&named, 16).unwrap()
            }
            2 => ShardStrategy::range(vec![(Some(KeyValue::Int(0)), ShardId(0)), (None, ShardId(n - 1))]).unwrap(),
            _ => ShardStrategy::Directory { entries: HashMap::new(), default: Some(ShardId(0)) },
        };
        let mut rule = TableRule::sharded("t", vec!["k".into()], strategy.clone());
        // Pinned keys go to shards the strategy never uses.
        let overrides: Vec<(Vec<KeyValue>, ShardId)> = pinned
            .iter()
            .enumerate()
            .map(|(i, k)| (vec![k.clone()], ShardId(1000 + i as u32)))
            .collect();
        if let shardgate_core::TableKind::Sharded { overrides: o, .. } = &mut rule.kind {
            *o = overrides.clone();
        }
        for (k, s) in &overrides {
            prop_assert_eq!(rule.place(k).unwrap(), *s);
        }
        for k in &others {
            let key = std::slice::from_ref(k);
            let want = match overrides.iter().find(|(o, _)| o.as_slice() == key) {
                Some((_, s)) => *s,
                None => strategy.place(key).unwrap(),
            };
            prop_assert_eq!(rule.place(key).unwrap(), want);
        }
        // Wrong arity is refused even for a pinned key's prefix.
        let two = vec![pinned.iter().next().unwrap().clone(), KeyValue::Int(1)];
        prop_assert_eq!(rule.place(&two), Err(CoreError::Arity { expected: 1, got: 2 }));
        prop_assert_eq!(rule.place(&[]), Err(CoreError::Arity { expected: 1, got: 0 }));
    }

    #[test]
    fn composite_keys_hash_deterministically(
        n in 1u32..=64,
        keys in prop::collection::vec((key_value(), key_value()), 1..32),
    ) {
        let shards = shard_ids(n);
        let strategy = ShardStrategy::hash(&shards).unwrap();
        let rule = TableRule::sharded("t", vec!["a".into(), "b".into()], strategy.clone());
        let ShardStrategy::Hash { map } = &strategy else { unreachable!() };
        let set: BTreeSet<ShardId> = shards.iter().copied().collect();
        for (a, b) in &keys {
            let key = [a.clone(), b.clone()];
            let placed = place_checked(&strategy, &key, &set)?;
            prop_assert_eq!(rule.place(&key).unwrap(), placed);
            let id = hash_combine64(a.pg_hash(), b.pg_hash());
            prop_assert_eq!(ShardStrategy::keyspace_id(&key), KeyspaceId(id));
            prop_assert_eq!(placed, map.lookup(KeyspaceId(id)));
            prop_assert_eq!(
                rule.place(std::slice::from_ref(a)),
                Err(CoreError::Arity { expected: 2, got: 1 })
            );
        }
    }
}
