//! A bounds-checked token stream over the structure block, built on
//! fdt-rs's tokenizer (`DevTree::parse_iter`).
//!
//! fdt-rs trusts the blob more than we may: in debug builds it asserts that
//! every token is followed by more bytes, and it happily walks past the end
//! of the structure block. The cursor therefore checks each step before
//! handing it to fdt-rs: the token must start inside the structure block,
//! must not be the blob's last word (that one is read by hand; only
//! `FDT_END` may sit there), and must not end past the structure block.
//! Names are checked to be UTF-8. No allocation.

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
        let strings_end = header.off_dt_strings + header.size_dt_strings;
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
            let mut tokens = self.fdt.parse_iter();
            tokens.offset = off;
            let token = match tokens.next() {
                Ok(token) => token,
                Err(_) if be32(self.blob, off) == Some(FDT_BEGIN_NODE) => {
                    return Err(DtError::BadName { offset: off });
                }
                Err(_) => return Err(bad),
            };
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
                Some(ParsedTok::BeginNode(node)) => {
                    let name =
                        from_utf8(node.name).map_err(|_| DtError::BadName { offset: off })?;
                    Ok(Some(Token::Begin(name)))
                }
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

    /// The NUL-terminated name at `name_off` in the strings block.
    fn prop_name(&self, name_off: usize) -> Option<&'dt str> {
        let rest = self.strings.get(name_off..)?;
        let len = rest.iter().position(|&b| b == 0)?;
        from_utf8(rest.get(..len)?).ok()
    }
}
