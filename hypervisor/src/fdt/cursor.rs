//! A bounds-checked token stream over the structure block, built on
//! fdt-rs's tokenizer (`DevTree::parse_iter`).
//!
//! fdt-rs trusts the blob more than we may: in debug builds it asserts that
//! every token is followed by more bytes, and it happily walks past the end
//! of the structure block. The cursor therefore checks each step before
//! handing it to fdt-rs: the token must start inside the structure block,
//! must not be the blob's last word (that one is read by hand; only
//! `FDT_END` may sit there), and must not end past the structure block.
//!
//! `FDT_BEGIN_NODE` is also decoded here rather than by fdt-rs, which
//! refuses node names longer than 29 bytes including the unit address,
//! while the specification allows 31 bytes before the `@` (real trees have
//! names such as `external-memory-controller@2c60000`). Names are checked
//! to be UTF-8 and at most [`MAX_NAME_LEN`] bytes. No allocation.

use core::str::from_utf8;

use fdt_rs::base::DevTree;
use fdt_rs::base::parse::ParsedTok;
use fdt_rs::prelude::FallibleIterator;

use super::DtError;
use super::header::{Header, be32, validate};

/// The `FDT_BEGIN_NODE` token value.
const FDT_BEGIN_NODE: u32 = 1;
/// The `FDT_END` token value.
const FDT_END: u32 = 9;

/// Longest node name accepted, unit address included.
pub const MAX_NAME_LEN: usize = 255;

/// One structural token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token<'dt> {
    /// A node starts; its name (with unit address, empty for the root).
    Begin(&'dt str),
    /// A property of the innermost open node.
    Prop {
        /// The property name, from the strings block.
        name: &'dt str,
        /// The raw value.
        value: &'dt [u8],
    },
    /// The innermost open node ends.
    End,
}

/// Walks the tokens of a validated blob, skipping `FDT_NOP`.
pub(crate) struct Cursor<'dt> {
    fdt: DevTree<'dt>,
    blob: &'dt [u8],
    strings: &'dt [u8],
    off: usize,
    end: usize,
    done: bool,
}

impl<'dt> Cursor<'dt> {
    /// Validates the header of `buf` and positions the cursor at the start
    /// of the structure block.
    pub(crate) fn new(buf: &'dt [u8]) -> Result<(Self, Header), DtError> {
        let (blob, header) = validate(buf)?;
        // SAFETY: `validate` checked that `blob` is 4-byte aligned and exactly
        // `totalsize` bytes long, which is what `DevTree::new` requires.
        let fdt = unsafe { DevTree::new(blob) }.map_err(|_| DtError::BadLayout)?;
        let strings_end = header.off_dt_strings.saturating_add(header.size_dt_strings);
        let strings = blob
            .get(header.off_dt_strings..strings_end)
            .ok_or(DtError::BadLayout)?;
        let range = header.struct_range();
        let cursor = Self {
            fdt,
            blob,
            strings,
            off: range.start,
            end: range.end,
            done: false,
        };
        Ok((cursor, header))
    }

    /// Byte offset of the next token.
    pub(crate) fn offset(&self) -> usize {
        self.off
    }

    /// The next token, `Ok(None)` at `FDT_END`.
    pub(crate) fn next_token(&mut self) -> Result<Option<Token<'dt>>, DtError> {
        loop {
            if self.done {
                return Ok(None);
            }
            let off = self.off;
            let bad = DtError::BadStructure { offset: off };
            let after = off.checked_add(4).ok_or(bad)?;
            if after > self.end {
                return Err(bad);
            }
            if after >= self.blob.len() {
                // fdt-rs must not see the blob's last word (see the module
                // comment); only FDT_END can legitimately be there.
                return if be32(self.blob, off) == Some(FDT_END) {
                    self.done = true;
                    Ok(None)
                } else {
                    Err(bad)
                };
            }
            if be32(self.blob, off) == Some(FDT_BEGIN_NODE) {
                return self.begin_node(off, after).map(Some);
            }
            let mut tokens = self.fdt.parse_iter();
            tokens.offset = off;
            let token = tokens.next().map_err(|_| bad)?;
            if tokens.offset > self.end {
                return Err(bad);
            }
            self.off = tokens.offset;
            return match token {
                None => {
                    self.done = true;
                    Ok(None)
                }
                Some(ParsedTok::Nop) => continue,
                Some(ParsedTok::EndNode) => Ok(Some(Token::End)),
                // Decoded by `begin_node` before fdt-rs is asked.
                Some(ParsedTok::BeginNode(_)) => Err(bad),
                Some(ParsedTok::Prop(prop)) => {
                    let name = self
                        .prop_name(prop.name_offset)
                        .ok_or(DtError::BadName { offset: off })?;
                    Ok(Some(Token::Prop {
                        name,
                        value: prop.prop_buf,
                    }))
                }
            };
        }
    }

    /// Decodes the `FDT_BEGIN_NODE` token at `off`, whose name starts at
    /// `name_start`: a NUL-terminated name inside the structure block,
    /// padded to a 4-byte boundary.
    fn begin_node(&mut self, off: usize, name_start: usize) -> Result<Token<'dt>, DtError> {
        let bad_name = DtError::BadName { offset: off };
        let limit = self.end.min(name_start.saturating_add(MAX_NAME_LEN + 1));
        let window = self.blob.get(name_start..limit).ok_or(bad_name)?;
        let len = window.iter().position(|&b| b == 0).ok_or(bad_name)?;
        let name = from_utf8(window.get(..len).ok_or(bad_name)?).map_err(|_| bad_name)?;
        let next = (name_start + len + 1).next_multiple_of(4);
        if next > self.end {
            return Err(DtError::BadStructure { offset: off });
        }
        self.off = next;
        Ok(Token::Begin(name))
    }

    /// The NUL-terminated name at `name_off` in the strings block.
    fn prop_name(&self, name_off: usize) -> Option<&'dt str> {
        let rest = self.strings.get(name_off..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        from_utf8(rest.get(..len)?).ok()
    }
}
