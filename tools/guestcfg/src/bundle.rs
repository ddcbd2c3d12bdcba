//! Building the payload bundle from a checked configuration file, with the
//! caller resolving each kernel and initrd [`Source`] to bytes.

use std::fmt::Display;

use hypervisor::config::Bundle;

use crate::{BuildError, ConfigFile, Source};

/// Builds the bundle for `file`: each guest's config, kernel and initrd, in
/// file order. `resolve` turns a [`Source`] into bytes (reading
/// [`Source::File`], fetching or building the `@` tokens); it is called
/// once per kernel and initrd, in order.
pub fn build_bundle<E: Display>(
    file: &ConfigFile,
    mut resolve: impl FnMut(&Source) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, BuildError> {
    let mut images = Vec::with_capacity(file.guests.len());
    for guest in &file.guests {
        let mut get = |part: &'static str, source: &Source| {
            resolve(source).map_err(|e| BuildError::Resolve {
                guest: guest.config.name.clone(),
                part,
                source_name: source.to_string(),
                message: e.to_string(),
            })
        };
        let kernel = get("kernel", &guest.kernel)?;
        let initrd = guest
            .initrd
            .as_ref()
            .map(|s| get("initrd", s))
            .transpose()?;
        images.push((kernel, initrd));
    }
    let parts: Vec<_> = file
        .guests
        .iter()
        .zip(&images)
        .map(|(guest, (kernel, initrd))| {
            (guest.config.clone(), kernel.as_slice(), initrd.as_deref())
        })
        .collect();
    Bundle::encode(&parts).map_err(BuildError::Bundle)
}
