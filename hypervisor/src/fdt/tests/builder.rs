//! A minimal FDT writer for tests that need blobs dtc will not produce
//! (deep nesting, over-long names, broken token streams).

use alloc::vec::Vec;

/// Builds a blob token by token.
#[derive(Default)]
pub(super) struct Builder {
    structure: Vec<u8>,
    strings: Vec<u8>,
    memreserve: Vec<(u64, u64)>,
}

impl Builder {
    /// Appends a raw big-endian word to the structure block.
    pub fn word(&mut self, w: u32) -> &mut Self {
        self.structure.extend_from_slice(&w.to_be_bytes());
        self
    }

    /// FDT_BEGIN_NODE with `name`.
    pub fn begin(&mut self, name: &str) -> &mut Self {
        self.word(1);
        self.structure.extend_from_slice(name.as_bytes());
        self.structure.push(0);
        self.pad()
    }

    /// FDT_END_NODE.
    pub fn end(&mut self) -> &mut Self {
        self.word(2)
    }

    /// FDT_PROP.
    pub fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let nameoff = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.word(3).word(value.len() as u32).word(nameoff);
        self.structure.extend_from_slice(value);
        self.pad()
    }

    /// A property made of big-endian cells.
    pub fn cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
        let value: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.prop(name, &value)
    }

    /// A string property.
    pub fn string(&mut self, name: &str, s: &str) -> &mut Self {
        let mut value = Vec::from(s.as_bytes());
        value.push(0);
        self.prop(name, &value)
    }

    /// A `/memreserve/` entry.
    pub fn reserve(&mut self, base: u64, size: u64) -> &mut Self {
        self.memreserve.push((base, size));
        self
    }

    fn pad(&mut self) -> &mut Self {
        while !self.structure.len().is_multiple_of(4) {
            self.structure.push(0);
        }
        self
    }

    /// The blob: header, reservation block, structure block (FDT_END is
    /// appended), strings block.
    pub fn finish(&mut self) -> Vec<u8> {
        self.word(9);
        let rsv_off = 40usize;
        let rsv_len = (self.memreserve.len() + 1) * 16;
        let struct_off = rsv_off + rsv_len;
        let strings_off = struct_off + self.structure.len();
        let total = strings_off + self.strings.len();
        let mut out = Vec::with_capacity(total);
        for w in [
            0xd00d_feed,
            total as u32,
            struct_off as u32,
            strings_off as u32,
            rsv_off as u32,
            17,
            16,
            0,
            self.strings.len() as u32,
            self.structure.len() as u32,
        ] {
            out.extend_from_slice(&u32::to_be_bytes(w));
        }
        for &(base, size) in self.memreserve.iter().chain([(0, 0)].iter()) {
            out.extend_from_slice(&base.to_be_bytes());
            out.extend_from_slice(&size.to_be_bytes());
        }
        out.extend_from_slice(&self.structure);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// A copy of `bytes` at an 8-byte aligned address.
pub(super) struct AlignedBuf {
    storage: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    /// Copies `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        let mut storage = alloc::vec![0u8; bytes.len() + 8];
        let off = storage.as_ptr().align_offset(8);
        storage[off..off + bytes.len()].copy_from_slice(bytes);
        Self {
            storage,
            off,
            len: bytes.len(),
        }
    }

    /// The aligned bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.storage[self.off..self.off + self.len]
    }

    /// The aligned bytes, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.off..self.off + self.len]
    }
}

/// A minimal valid tree: root cells 2/2, one memory node, one cpu.
pub(super) fn minimal(extra: impl FnOnce(&mut Builder)) -> Vec<u8> {
    let mut b = Builder::default();
    b.begin("")
        .cells("#address-cells", &[2])
        .cells("#size-cells", &[2]);
    b.begin("memory@40000000")
        .string("device_type", "memory")
        .cells("reg", &[0, 0x4000_0000, 0, 0x1000_0000])
        .end();
    b.begin("cpus")
        .cells("#address-cells", &[1])
        .cells("#size-cells", &[0]);
    b.begin("cpu@0")
        .string("device_type", "cpu")
        .cells("reg", &[0])
        .end();
    b.end();
    extra(&mut b);
    b.end();
    b.finish()
}
