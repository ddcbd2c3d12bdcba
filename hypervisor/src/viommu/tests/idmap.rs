//! [`IdMap`] against a `BTreeMap`: the remembered entry never answers for
//! another ID, whatever was inserted or removed since.

use crate::viommu::idmap::IdMap;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

#[test]
fn random_operations_agree_with_a_btreemap() {
    let mut x: u64 = 0x243f_6a88_85a3_08d3;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let (mut map, mut reference) = (IdMap::new(), BTreeMap::new());
    for step in 0..20_000u64 {
        let id = next(48) as u32;
        match next(6) {
            0 | 1 => assert_eq!(map.insert(id, step), reference.insert(id, step)),
            2 => assert_eq!(map.remove(id), reference.remove(&id)),
            3 => {
                let got = map.get_mut(id).map(|v| {
                    *v += 1;
                    *v
                });
                let want = reference.get_mut(&id).map(|v| {
                    *v += 1;
                    *v
                });
                assert_eq!(got, want);
            }
            _ => assert_eq!(map.get(id), reference.get(&id)),
        }
        assert_eq!(map.contains_key(id), reference.contains_key(&id));
        assert_eq!(map.len(), reference.len());
        if step % 97 == 0 {
            let ours: Vec<(u32, u64)> = map.iter().map(|(k, v)| (k, *v)).collect();
            let theirs: Vec<(u32, u64)> = reference.iter().map(|(k, v)| (*k, *v)).collect();
            assert_eq!(ours, theirs);
            assert!(map.keys().eq(reference.keys().copied()));
        }
    }
    map.clear();
    assert!(map.is_empty() && map.get(0).is_none());
}

#[test]
fn the_remembered_entry_is_checked_against_the_id() {
    let mut map = IdMap::new();
    for id in [5, 1, 9] {
        map.insert(id, id * 10);
    }
    assert_eq!(map.get_mut(9).copied(), Some(90)); // remembered: the last
    map.remove(9);
    assert_eq!(map.get(9), None);
    map.insert(3, 30); // shifts 5 to where 9 was remembered
    assert_eq!(map.get(5), Some(&50));
    assert_eq!(map.get_mut(1).copied(), Some(10));
    map.remove(1); // the remembered index now holds 3
    assert_eq!(map.get(1), None);
    assert_eq!(map.get(3), Some(&30));
}
