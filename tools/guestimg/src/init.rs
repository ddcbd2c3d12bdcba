//! The `/init` shell script of the initramfs.

use std::fmt::Write;

/// Marker line printed when `/init` has finished setting up, just before
/// `extra_init` and the interactive shell.
pub const INIT_DONE: &str = "partita-guest: init done";

/// What `/init` should do.
pub(crate) struct InitPlan<'a> {
    /// Kernel release, for the modules directory.
    pub release: &'a str,
    /// Absolute paths (in the guest) of the modules to `insmod`, in order.
    pub modules: &'a [String],
    /// Requested modules that are built in (noted in a comment).
    pub builtin: &'a [String],
    /// Shell text run after the marker, before the shell.
    pub extra: &'a str,
}

/// Quotes `s` for sh.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script text.
pub(crate) fn script(plan: &InitPlan<'_>) -> String {
    let mut s = String::from(HEAD);
    let _ = writeln!(
        s,
        "echo \"partita-guest: kernel $(uname -r), loading {} module(s)\"",
        plan.modules.len()
    );
    if !plan.builtin.is_empty() {
        let _ = writeln!(
            s,
            "# Built into {}: {}",
            plan.release,
            plan.builtin.join(" ")
        );
    }
    for module in plan.modules {
        let _ = writeln!(s, "load {}", sh_quote(module));
    }
    let _ = writeln!(s, "echo '{INIT_DONE}'");
    if !plan.extra.is_empty() {
        s.push_str("\n# --- extra_init ---\n");
        s.push_str(plan.extra);
        if !plan.extra.ends_with('\n') {
            s.push('\n');
        }
        s.push_str("# --- end of extra_init ---\n");
    }
    s.push_str(TAIL);
    s
}

/// Mounts and helpers.
const HEAD: &str = r#"#!/bin/sh
# /init of a partita test guest, written by tools/guestimg.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
# "~ # " in /root (HOME, where the shell starts), the directory elsewhere.
export PS1='\w \$ '
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
load() {
	insmod "$1" || echo "partita-guest: insmod $1 failed"
}
"#;

/// The interactive shell, restarted if it exits (PID 1 must not end).
/// `setsid cttyhack` gives it the console as controlling terminal, so
/// job control and ^C work.
const TAIL: &str = r#"cd "$HOME"
while :; do
	setsid cttyhack sh
	echo "partita-guest: shell exited, starting another (poweroff -f / reboot -f to stop)"
done
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_shape() {
        let modules = [
            "/lib/modules/r/a.ko".to_owned(),
            "/lib/modules/r/b.ko".to_owned(),
        ];
        let text = script(&InitPlan {
            release: "r",
            modules: &modules,
            builtin: &["virtio_pci".to_owned()],
            extra: "echo hi",
        });
        assert!(text.starts_with("#!/bin/sh\n"));
        let pos = |needle: &str| text.find(needle).unwrap_or_else(|| panic!("{needle}"));
        assert!(pos("mount -t devtmpfs") < pos("load '/lib/modules/r/a.ko'"));
        assert!(pos("load '/lib/modules/r/a.ko'") < pos("load '/lib/modules/r/b.ko'"));
        assert!(pos("load '/lib/modules/r/b.ko'") < pos(INIT_DONE));
        assert!(pos(INIT_DONE) < pos("echo hi\n"));
        assert!(pos("echo hi\n") < pos("setsid cttyhack sh"));
        assert!(text.contains("# Built into r: virtio_pci"));
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
