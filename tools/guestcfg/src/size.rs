//! Memory sizes as the TOML schema writes them: a plain integer of bytes,
//! or a string of digits with an optional binary suffix (`K`, `M`, `G`,
//! `T`, optionally followed by `iB`, any case), e.g. `"512M"`, `"2GiB"`.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

use crate::ErrorKind;

/// A size as written, before interpretation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SizeValue {
    /// An integer.
    Int(i64),
    /// A string.
    Text(String),
}

impl<'de> serde::Deserialize<'de> for SizeValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = SizeValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size: a number of bytes or a string such as \"512M\"")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SizeValue, E> {
                Ok(SizeValue::Int(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SizeValue, E> {
                i64::try_from(v)
                    .map(SizeValue::Int)
                    .map_err(|_| E::custom("size too large"))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<SizeValue, E> {
                Ok(SizeValue::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl SizeValue {
    /// The size in bytes.
    pub(crate) fn bytes(&self) -> Result<u64, ErrorKind> {
        match self {
            Self::Int(n) => u64::try_from(*n).map_err(|_| ErrorKind::Negative(*n)),
            Self::Text(text) => parse_size(text),
        }
    }
}

/// Parses `"512M"`-style sizes (see the module documentation).
pub(crate) fn parse_size(text: &str) -> Result<u64, ErrorKind> {
    let bad = || ErrorKind::BadSize(text.to_owned());
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(digits_end);
    if digits.is_empty() {
        return Err(bad());
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        _ => return Err(bad()),
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| ErrorKind::SizeOverflow(text.to_owned()))?;
    value
        .checked_mul(1u64 << shift)
        .ok_or_else(|| ErrorKind::SizeOverflow(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("16m").unwrap(), 16 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1T").unwrap(), 1 << 40);
        assert_eq!(parse_size("64K").unwrap(), 64 << 10);
        for bad in ["", "M", "512X", "-1M", "1.5G", "0x100", "5 M B"] {
            assert!(
                matches!(parse_size(bad), Err(ErrorKind::BadSize(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_size("99999999999999999999"),
            Err(ErrorKind::SizeOverflow(_))
        ));
        assert!(matches!(
            parse_size("17179869184G"),
            Err(ErrorKind::SizeOverflow(_))
        ));
        assert!(matches!(
            SizeValue::Int(-5).bytes(),
            Err(ErrorKind::Negative(-5))
        ));
    }
}
