//! Debian package version comparison (`[epoch:]upstream[-revision]`), as
//! `dpkg --compare-versions` does it, to pick the newest kernel.

use std::cmp::Ordering;

/// Compares two Debian version strings.
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

/// Splits a version into epoch, upstream version and revision.
fn split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if e.bytes().all(|b| b.is_ascii_digit()) => (e.parse().unwrap_or(0), rest),
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// Sort weight of a non-digit character: `~` before everything (even the
/// end of the string), letters before other characters.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: alternating non-digit and digit runs.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let digit = |s: &[u8]| s.first().is_some_and(u8::is_ascii_digit);
    while !a.is_empty() || !b.is_empty() {
        while (!a.is_empty() && !digit(a)) || (!b.is_empty() && !digit(b)) {
            let (ac, bc) = (order(a.first().copied()), order(b.first().copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            a = a.get(1..).unwrap_or_default();
            b = b.get(1..).unwrap_or_default();
        }
        while a.first() == Some(&b'0') {
            a = &a[1..];
        }
        while b.first() == Some(&b'0') {
            b = &b[1..];
        }
        let mut first_diff = Ordering::Equal;
        while digit(a) && digit(b) {
            if first_diff == Ordering::Equal {
                first_diff = a[0].cmp(&b[0]);
            }
            a = &a[1..];
            b = &b[1..];
        }
        if digit(a) {
            return Ordering::Greater;
        }
        if digit(b) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::compare;
    use std::cmp::Ordering::{Equal, Greater, Less};

    #[test]
    fn dpkg_examples() {
        let cases = [
            ("6.12.95-1~bpo12+1", "6.1.176-1", Greater),
            ("6.12.95-1~bpo12+1", "6.12.95-1", Less),
            ("6.12.9-1", "6.12.10-1", Less),
            ("1:1.35.0-4", "1.36.0-1", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0-0", Equal),
            ("1.0a", "1.0+", Less),
            ("1.0-1", "1.0-1", Equal),
            ("2.0", "10.0", Less),
            ("1.001", "1.1", Equal),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
            assert_eq!(compare(b, a), want.reverse(), "{b} vs {a}");
        }
    }
}
