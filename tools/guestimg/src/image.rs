//! Checking (and if need be gunzipping) an arm64 Linux `Image`.

use std::io::Read;

/// Offset of the magic in the arm64 Image header.
pub(crate) const MAGIC_OFFSET: usize = 0x38;
/// The arm64 Image magic, "ARM\x64".
pub(crate) const MAGIC: &[u8; 4] = b"ARM\x64";

/// Returns the uncompressed Image for `data`, which is either an Image or a
/// gzip'd one (`vmlinuz` on some distributions).
pub(crate) fn to_image(data: Vec<u8>) -> Result<Vec<u8>, String> {
    let image = if data.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(data.len() * 3);
        flate2::read::GzDecoder::new(&data[..])
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip: {e}"))?;
        out
    } else {
        data
    };
    if image.get(MAGIC_OFFSET..MAGIC_OFFSET + 4) != Some(&MAGIC[..]) {
        return Err(format!(
            "not an arm64 Image (no \"ARM\\x64\" at {MAGIC_OFFSET:#x})"
        ));
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn fake_image() -> Vec<u8> {
        let mut img = vec![0u8; 0x100];
        img[MAGIC_OFFSET..MAGIC_OFFSET + 4].copy_from_slice(MAGIC);
        img
    }

    #[test]
    fn plain_and_gzipped() {
        assert_eq!(to_image(fake_image()).unwrap(), fake_image());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&fake_image()).unwrap();
        assert_eq!(to_image(gz.finish().unwrap()).unwrap(), fake_image());
        assert!(to_image(vec![0; 0x100]).is_err());
        assert!(to_image(vec![0; 8]).is_err());
    }
}
