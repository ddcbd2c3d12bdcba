//! A writer for the cpio "newc" (SVR4, magic `070701`) format, the one the
//! Linux kernel unpacks as an initramfs.
//!
//! Each entry is a 110-byte ASCII header (the magic and thirteen 8-digit hex
//! fields), the NUL-terminated name padded to a multiple of 4 bytes (counting
//! the header), then the data padded to a multiple of 4. The archive ends
//! with an entry named `TRAILER!!!`. Entries are written in the order given:
//! the kernel does not create parent directories, so callers emit them first.

use std::io::{self, Write};

/// The newc magic.
pub const MAGIC: &[u8; 6] = b"070701";
/// The name of the last entry.
pub const TRAILER: &str = "TRAILER!!!";
/// Size of a newc header.
pub const HEADER_LEN: usize = 110;

/// File-type bits of `st_mode`.
pub mod mode {
    /// Regular file.
    pub const S_IFREG: u32 = 0o100000;
    /// Directory.
    pub const S_IFDIR: u32 = 0o040000;
    /// Symbolic link.
    pub const S_IFLNK: u32 = 0o120000;
    /// Character device.
    pub const S_IFCHR: u32 = 0o020000;
    /// Mask of the type bits.
    pub const S_IFMT: u32 = 0o170000;
}

/// Writes a newc archive to `W`. All entries belong to root (uid/gid 0)
/// and have mtime 0, so the same input gives the same bytes.
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
}

/// Header fields of one entry besides its name and data.
struct Meta {
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        Self { out, next_ino: 1 }
    }

    /// Adds a directory; `perm` is the permission bits (e.g. `0o755`).
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        let meta = Meta {
            mode: mode::S_IFDIR | (perm & 0o7777),
            nlink: 2,
            rdev: (0, 0),
        };
        self.entry(path, &meta, &[])
    }

    /// Adds a regular file with contents `data`.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        let meta = Meta {
            mode: mode::S_IFREG | (perm & 0o7777),
            nlink: 1,
            rdev: (0, 0),
        };
        self.entry(path, &meta, data)
    }

    /// Adds a symbolic link at `path` pointing to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let meta = Meta {
            mode: mode::S_IFLNK | 0o777,
            nlink: 1,
            rdev: (0, 0),
        };
        self.entry(path, &meta, target.as_bytes())
    }

    /// Adds a character device node `major:minor`.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        let meta = Meta {
            mode: mode::S_IFCHR | (perm & 0o7777),
            nlink: 1,
            rdev: (major, minor),
        };
        self.entry(path, &meta, &[])
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        let meta = Meta {
            mode: 0,
            nlink: 1,
            rdev: (0, 0),
        };
        self.next_ino = 0;
        self.write_entry(TRAILER, &meta, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Checks `path` and writes an entry for it under the next inode number.
    fn entry(&mut self, path: &str, meta: &Meta, data: &[u8]) -> io::Result<()> {
        let name = path.trim_start_matches('/');
        if name.is_empty() || name.contains('\0') || name == TRAILER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cpio entry name {path:?}"),
            ));
        }
        self.write_entry(name, meta, data)?;
        self.next_ino += 1;
        Ok(())
    }

    /// Writes header, name, data and padding.
    fn write_entry(&mut self, name: &str, meta: &Meta, data: &[u8]) -> io::Result<()> {
        let filesize = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "cpio entry over 4 GiB"))?;
        let namesize = name.len() + 1;
        let fields: [u32; 13] = [
            self.next_ino,
            meta.mode,
            0, // uid
            0, // gid
            meta.nlink,
            0, // mtime
            filesize,
            0, // devmajor
            0, // devminor
            meta.rdev.0,
            meta.rdev.1,
            namesize as u32,
            0, // check (only used by the "crc" format)
        ];
        let mut header = Vec::with_capacity(HEADER_LEN + namesize + 3);
        header.extend_from_slice(MAGIC);
        for field in fields {
            header.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        header.extend_from_slice(name.as_bytes());
        header.push(0);
        header.resize(header.len() + pad4(header.len()), 0);
        self.out.write_all(&header)?;
        self.out.write_all(data)?;
        self.out.write_all(&[0; 3][..pad4(data.len())])?;
        Ok(())
    }
}

/// Bytes needed to bring `len` to a multiple of 4.
fn pad4(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// A minimal newc reader, for checking archives in tests.
#[cfg(test)]
pub(crate) mod read {
    use super::{HEADER_LEN, MAGIC, TRAILER, pad4};

    /// One parsed entry.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct Entry {
        /// Offset of the header in the archive.
        pub offset: usize,
        /// Header fields after the magic, in order (ino ... check).
        pub fields: [u32; 13],
        /// Name without the NUL.
        pub name: String,
        /// File data (or symlink target).
        pub data: Vec<u8>,
    }

    impl Entry {
        /// `st_mode`.
        pub fn mode(&self) -> u32 {
            self.fields[1]
        }
        /// `(rdevmajor, rdevminor)`.
        pub fn rdev(&self) -> (u32, u32) {
            (self.fields[9], self.fields[10])
        }
    }

    /// Parses `buf` up to and including the trailer, checking magic and
    /// alignment; panics on malformed input.
    pub(crate) fn parse(buf: &[u8]) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut pos = 0;
        loop {
            assert_eq!(pos % 4, 0, "header at {pos} not 4-aligned");
            assert_eq!(&buf[pos..pos + 6], MAGIC, "bad magic at {pos}");
            let mut fields = [0u32; 13];
            for (i, f) in fields.iter_mut().enumerate() {
                let hex = std::str::from_utf8(&buf[pos + 6 + 8 * i..pos + 14 + 8 * i]).unwrap();
                *f = u32::from_str_radix(hex, 16).unwrap();
            }
            let namesize = fields[11] as usize;
            let name_end = pos + HEADER_LEN + namesize;
            assert_eq!(buf[name_end - 1], 0, "name not NUL-terminated");
            let name = String::from_utf8(buf[pos + HEADER_LEN..name_end - 1].to_vec()).unwrap();
            let data_start = name_end + pad4(HEADER_LEN + namesize);
            assert!(buf[name_end..data_start].iter().all(|&b| b == 0));
            let data_end = data_start + fields[6] as usize;
            let data = buf[data_start..data_end].to_vec();
            let next = data_end + pad4(fields[6] as usize);
            assert!(buf[data_end..next].iter().all(|&b| b == 0));
            let done = name == TRAILER;
            entries.push(Entry {
                offset: pos,
                fields,
                name,
                data,
            });
            pos = next;
            if done {
                assert_eq!(pos, buf.len(), "bytes after the trailer");
                return entries;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read::parse;
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("/dev", 0o755).unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        w.dir("bin", 0o755).unwrap();
        w.file("bin/hello", 0o755, b"hello!").unwrap(); // 6 bytes: padded
        w.file("bin/four", 0o644, b"1234").unwrap(); // no data padding
        w.file("empty", 0o644, b"").unwrap();
        w.symlink("bin/sh", "busybox").unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn round_trip() {
        let buf = sample();
        assert_eq!(buf.len() % 4, 0);
        let e = parse(&buf);
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "dev",
                "dev/console",
                "bin",
                "bin/hello",
                "bin/four",
                "empty",
                "bin/sh",
                TRAILER
            ]
        );
        // Distinct inode numbers from 1, trailer 0.
        let inos: Vec<u32> = e.iter().map(|e| e.fields[0]).collect();
        assert_eq!(inos, [1, 2, 3, 4, 5, 6, 7, 0]);
        assert_eq!(e[0].mode(), mode::S_IFDIR | 0o755);
        assert_eq!(e[0].fields[4], 2, "directory nlink");
        assert_eq!(e[3].data, b"hello!");
        assert_eq!(e[3].mode(), mode::S_IFREG | 0o755);
        assert_eq!(e[4].data, b"1234");
        assert!(e[5].data.is_empty());
        for entry in &e {
            assert_eq!(entry.fields[2..4], [0, 0], "uid/gid");
            assert_eq!(entry.fields[5], 0, "mtime");
            assert_eq!(entry.fields[12], 0, "check");
            assert_eq!(entry.fields[11] as usize, entry.name.len() + 1);
        }
    }

    #[test]
    fn device_node() {
        let e = parse(&sample());
        let console = &e[1];
        assert_eq!(console.mode() & mode::S_IFMT, mode::S_IFCHR);
        assert_eq!(console.mode() & 0o7777, 0o600);
        assert_eq!(console.rdev(), (5, 1));
        assert_eq!(console.fields[6], 0, "no data");
    }

    #[test]
    fn symlink_target_is_data() {
        let e = parse(&sample());
        let sh = &e[6];
        assert_eq!(sh.mode(), mode::S_IFLNK | 0o777);
        assert_eq!(sh.data, b"busybox");
        assert_eq!(sh.fields[6], 7);
    }

    #[test]
    fn exact_header_bytes() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("a", 0o644, b"x").unwrap();
        let buf = w.finish().unwrap();
        let expected = concat!(
            "070701", "00000001", "000081a4", "00000000", "00000000", "00000001", "00000000",
            "00000001", "00000000", "00000000", "00000000", "00000000", "00000002", "00000000",
            "a\0", // 110 + 2 = 112: already aligned
            "x\0\0\0",
        );
        assert_eq!(&buf[..expected.len()], expected.as_bytes());
        // Trailer: 110 + 11 = 121 -> 3 bytes of padding, no data.
        assert_eq!(buf.len(), expected.len() + 124);
    }

    #[test]
    fn rejects_bad_names() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.file("/", 0o644, b"").is_err());
        assert!(w.file("a\0b", 0o644, b"").is_err());
        assert!(w.file(TRAILER, 0o644, b"").is_err());
    }
}
