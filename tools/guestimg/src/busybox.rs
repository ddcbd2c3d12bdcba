//! Reading busybox's applet list out of the binary itself: an arm64 busybox
//! cannot run on an x86 host to print `--list`.
//!
//! Busybox keeps its applet names in one sorted run of NUL-terminated
//! strings ending with an empty string (`"[\0[[\0acpid\0...zcat\0\0"`), which
//! it binary-searches at run time. The longest such run that contains `sh`
//! is the table.

/// Applets the generated `/init` cannot do without.
pub(crate) const REQUIRED: &[&str] = &[
    "sh", "mount", "mkdir", "insmod", "echo", "setsid", "cttyhack", "poweroff", "reboot",
];

/// Applets worth having in a test guest; linked when busybox has them.
pub(crate) const WANTED: &[&str] = &[
    "ls",
    "cat",
    "sleep",
    "lspci",
    "devmem",
    "dd",
    "md5sum",
    "sha256sum",
    "grep",
    "dmesg",
    "uname",
    "cut",
    "head",
    "tail",
    "find",
    "seq",
    "sync",
    "hexdump",
    "modprobe",
];

/// Whether `name` looks like an applet name.
fn is_applet_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"[-_.".contains(&c))
}

/// Finds busybox's applet name table in `binary`; `None` if there is none.
pub(crate) fn applets(binary: &[u8]) -> Option<Vec<String>> {
    let mut best: Option<Vec<&[u8]>> = None;
    let mut run: Vec<&[u8]> = Vec::new();
    for token in binary.split(|&b| b == 0) {
        if token.is_empty() {
            // End of a table (double NUL)?
            let is_table = run.len() >= 2 && run.contains(&&b"sh"[..]);
            if is_table && best.as_ref().is_none_or(|b| run.len() > b.len()) {
                best = Some(std::mem::take(&mut run));
            }
            run.clear();
        } else if !is_applet_name(token) {
            run.clear();
        } else if run.last().is_some_and(|last| *last >= token) {
            // Not ascending: a table could start here.
            run.clear();
            run.push(token);
        } else {
            run.push(token);
        }
    }
    best.map(|names| {
        names
            .into_iter()
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_table_among_noise() {
        let mut buf = Vec::new();
        buf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0junk\0");
        // A short sorted run without "sh": not the table.
        buf.extend_from_slice(b"alpha\0beta\0\0");
        // Strings that are not applet names break runs.
        buf.extend_from_slice(b"Usage: %s\0/proc/self/exe\0\x82\x03\0");
        // The table; "zz" before it is a valid name but not below "[".
        buf.extend_from_slice(b"zz\0[\0[[\0ash\0cat\0insmod\0mount\0sh\0sha256sum\0zcat\0\0");
        buf.extend_from_slice(b"/var/log/wtmp\0-/bin/sh\0");
        // A later, shorter sorted run containing "sh": loses to the longer one.
        buf.extend_from_slice(b"bash\0sh\0\0");
        let names = applets(&buf).unwrap();
        assert_eq!(
            names,
            [
                "[",
                "[[",
                "ash",
                "cat",
                "insmod",
                "mount",
                "sh",
                "sha256sum",
                "zcat"
            ]
        );
    }

    #[test]
    fn no_table() {
        assert_eq!(applets(b"\0abc\0def\0\0"), None);
        assert_eq!(applets(b""), None);
        // Unsorted: no table.
        assert_eq!(applets(b"sh\0cat\0\0"), None);
    }
}
