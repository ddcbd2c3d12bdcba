//! Two Linux guests, each with its own emulated PL011 console
//! (`guest-configs/qemu-virt-two-linux.toml`): both reach a shell, their
//! lines are tagged, typed input goes to the guest with the focus only
//! (Ctrl-] n switches, and [`Session::focus`] by name), the guest list
//! shows both, and a restart of one from the console (Ctrl-] `r`, asked
//! and confirmed with `y`) leaves the other's shell working. The scenario
//! `tests/scenarios/two-linux.toml` covers `reboot -f`, the counters and
//! Ctrl-] `s`.

use std::time::Duration;

use hv_tests::guest::{INIT_DONE, bundle};
use hv_tests::{HarnessError, Qemu, Session};

/// Time for the hypervisor and both Linux guests to reach their shells.
const BOOT: Duration = Duration::from_secs(120);
/// Time for one shell command.
const CMD: Duration = Duration::from_secs(20);

fn two_linux() -> Result<Session, HarnessError> {
    Qemu::new()
        .smp(4)
        .memory("1G")
        .timeout(Duration::from_secs(300))
        .arg("-initrd")
        .arg(bundle("qemu-virt-two-linux")?)
        .spawn()
}

#[test]
fn two_guests_each_with_its_own_console() -> Result<(), HarnessError> {
    let mut vm = two_linux()?;
    let start = vm.cursor();
    // beta (no focus) prints whole lines only; alpha has the focus, so a
    // line of beta's may cut one of alpha's boot lines in two: alpha is
    // asked instead, again until it answers (input typed before its /init
    // opened the console is lost).
    vm.expect_all(
        &[
            &format!("[beta] {INIT_DONE}"),
            "[beta] Enter 'help' for a list",
        ],
        BOOT,
    )?;
    vm.set_cursor(start);
    vm.expect("console input goes to the guest with the focus", BOOT)?;
    vm.ask_from(
        "alpha",
        "echo al$((1+1))ive",
        "al2ive",
        Duration::from_secs(10),
        BOOT,
    )?;

    // alpha has the focus first: a file written there is alpha's only.
    vm.send("echo one > /tmp/mark; echo A-$(cat /tmp/mark)-A\n")?;
    vm.expect_from("alpha", "A-one-A", CMD)?;
    vm.send("\x1dn")?;
    vm.expect("partita console: focus on guest 1 'beta'", CMD)?;
    vm.send("echo B-$(cat /tmp/mark 2>/dev/null || echo none)-B\n")?;
    vm.expect_from("beta", "B-none-B", CMD)?;
    vm.expect_not_seen("[alpha] B-")?;

    // The list shows both.
    vm.send("\x1dl")?;
    vm.expect_all(
        &[
            "partita console: guest 0 'alpha': running",
            "partita console: guest 1 'beta': running, 2/2 vcpus on, emulated console (focus)",
        ],
        CMD,
    )?;

    // Restarting beta from the console asks first; anything but y cancels.
    vm.send("\x1dr")?;
    vm.expect(
        "partita console: restart guest 'beta'? press y to confirm",
        CMD,
    )?;
    vm.send("x")?;
    vm.expect("partita console: cancelled", CMD)?;
    vm.send("\x1dr")?;
    vm.expect(
        "partita console: restart guest 'beta'? press y to confirm",
        CMD,
    )?;
    vm.send("y")?;
    vm.expect("partita console: guest 'beta': asked to restart", CMD)?;
    vm.expect("guest 'beta' reset: restarting", CMD)?;
    // alpha keeps working meanwhile.
    vm.focus("alpha", CMD)?;
    vm.send("echo still-$(cat /tmp/mark)-here\n")?;
    vm.expect_from("alpha", "still-one-here", CMD)?;
    vm.expect_from("beta", INIT_DONE, BOOT)?;
    vm.focus("beta", CMD)?;
    vm.send("echo back-$(cat /tmp/mark 2>/dev/null || echo none)\n")?;
    vm.expect_from("beta", "back-none", CMD)?;
    vm.kill();
    Ok(())
}
