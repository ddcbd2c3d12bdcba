//! The hypervisor console's input: bytes typed at the serial line (taken
//! by the hypervisor's UART interrupt on the boot CPU) go to the emulated
//! console of the guest with the focus, queued there and delivered by a
//! vCPU of that guest, which is kicked ([`Machine::console_input`]); the
//! escape keys of [`crate::console::keys`] switch the focus, list the
//! guests, print the counters and restart or stop a guest.

use super::guest::Guest;
use super::machine::Machine;
use super::psci::VcpuPower;
use super::vcpu::request;
use crate::console;
use crate::console::keys::{Command, HELP, Key, Power};
use crate::vgic::SPI_BASE;
use alloc::string::String;
use core::fmt::Write;
use core::sync::atomic::Ordering;

impl Machine {
    /// Guests with an emulated console, in configuration order.
    fn consoles(&self) -> impl Iterator<Item = &Guest> {
        self.guests.iter().filter(|g| g.console.is_some())
    }

    /// The guest with the focus, if it has an emulated console.
    fn focused(&self) -> Option<&Guest> {
        let f = console::focus();
        self.consoles().find(|g| g.index == usize::from(f))
    }

    /// Gives the focus to the first guest with an emulated console and
    /// tags guests' lines when several guests run (at [`Machine::new`]).
    pub(super) fn init_consoles(&self) {
        if let Some(g) = self.consoles().next() {
            console::set_focus(g.index as u16);
        }
        console::set_tags(self.guests.len() > 1);
    }

    /// Bytes typed at the hypervisor's console (interrupt context, any
    /// CPU): escape keys are carried out, the rest queued for the guest
    /// with the focus, whose vCPU is kicked to take them.
    pub fn console_input(&self, bytes: &[u8]) {
        let mut for_guest: heapless::Vec<u8, 64> = heapless::Vec::new();
        for &b in bytes {
            let key = self.keys.lock().feed(b);
            match key {
                Key::Guest(b) => {
                    if for_guest.push(b).is_err() {
                        self.send_to_focus(&for_guest);
                        for_guest.clear();
                        let _ = for_guest.push(b);
                    }
                }
                Key::Pending => {}
                Key::Command(c) => {
                    self.send_to_focus(&for_guest);
                    for_guest.clear();
                    self.console_command(c);
                }
            }
        }
        self.send_to_focus(&for_guest);
    }

    fn send_to_focus(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let Some(g) = self.focused() else { return };
        let Some(dev) = &g.console else { return };
        if dev.queue_input(bytes) > 0 {
            self.kick_a_vcpu(g);
        }
    }

    /// Kicks the CPU of the vCPU that takes the guest's console interrupt
    /// (or of any running one).
    fn kick_a_vcpu(&self, g: &Guest) {
        if let Some(v) = g.vcpus.iter().find(|v| v.power() == VcpuPower::On) {
            self.kick(v.pcpu);
        }
    }

    /// Hands typed input queued for guest `g` to its console (by a vCPU of
    /// `g`, at an interrupt exit).
    pub(super) fn deliver_console_input(&self, g: &Guest) {
        if let Some(dev) = &g.console {
            let effect = dev.deliver_input();
            self.apply_effect(g, effect);
        }
    }

    /// The physical GIC's state of every SPI `g` owns, as ` INTID:state`
    /// words (`p` pending, `a` active, `-` neither), for the counters. A
    /// level-triggered line its device holds high reads pending even while
    /// the guest has the interrupt active, so a storm on a line that reads
    /// `-` is the interrupt being signalled again after its line dropped,
    /// and one on a line that stays pending is the device's
    /// (docs/pci.md, "Known problem").
    pub(super) fn spi_states(&self, g: &Guest) -> String {
        let pcpu = g.vcpus.first().map_or(0, |v| v.pcpu);
        let mut out = String::new();
        for &intid in g.owned_intids.iter().filter(|&&i| i >= SPI_BASE) {
            let pending = self.gic.pending(intid, pcpu);
            let active = self.gic.active(intid, pcpu);
            let state = match (pending, active) {
                (false, false) => "-",
                (true, false) => "p",
                (false, true) => "a",
                (true, true) => "pa",
            };
            let _ = write!(out, " {intid}:{state}");
        }
        if out.is_empty() {
            out.push_str(" none");
        }
        out
    }

    fn say(&self, text: core::fmt::Arguments) {
        crate::println!("partita console: {text}");
    }

    fn console_command(&self, c: Command) {
        let names = || self.consoles().map(|g| (g.index, g.name()));
        match c {
            Command::Next => {
                let f = usize::from(console::focus());
                let next = names().find(|(i, _)| *i > f).or_else(|| names().next());
                if let Some((i, name)) = next {
                    console::set_focus(i as u16);
                    self.say(format_args!("focus on guest {i} '{name}'"));
                }
            }
            Command::Focus(n) => match names().find(|(i, _)| *i == usize::from(n)) {
                Some((i, name)) => {
                    console::set_focus(i as u16);
                    self.say(format_args!("focus on guest {i} '{name}'"));
                }
                None => self.say(format_args!("no guest {n} with a console")),
            },
            Command::List => {
                for g in &self.guests {
                    let on = g
                        .vcpus
                        .iter()
                        .filter(|v| v.power() == VcpuPower::On)
                        .count();
                    let state = if on > 0 { "running" } else { "stopped" };
                    let focus = if self.focused().is_some_and(|f| f.index == g.index) {
                        " (focus)"
                    } else {
                        ""
                    };
                    let console = if g.console.is_some() {
                        "emulated console"
                    } else {
                        "no emulated console"
                    };
                    self.say(format_args!(
                        "guest {} '{}': {state}, {on}/{} vcpus on, {console}{focus}",
                        g.index,
                        g.name(),
                        g.vcpus.len()
                    ));
                }
            }
            Command::Counters => {
                for g in &self.guests {
                    let dma = g.counters.dma_faults.load(Ordering::Relaxed);
                    let (tx, rx, dropped) = g.console.as_ref().map_or((0, 0, 0), |d| {
                        let c = d.counters();
                        (
                            c.tx_bytes.load(Ordering::Relaxed),
                            c.rx_bytes.load(Ordering::Relaxed),
                            c.rx_dropped.load(Ordering::Relaxed),
                        )
                    });
                    self.say(format_args!(
                        "guest '{}': {dma} DMA faults, {} DMA faults dropped, console {tx} bytes out, {rx} in, {dropped} input dropped, SPIs{}",
                        g.name(),
                        g.faults.dropped(),
                        self.spi_states(g),
                    ));
                }
            }
            Command::Help => self.say(format_args!("{HELP}")),
            Command::Ask(p) => match self.focused() {
                Some(g) => self.say(format_args!(
                    "{} guest '{}'? press y to confirm",
                    if p == Power::Restart {
                        "restart"
                    } else {
                        "stop"
                    },
                    g.name()
                )),
                None => self.say(format_args!("no guest has the focus")),
            },
            Command::Confirmed(p) => {
                let Some(g) = self.focused() else { return };
                let bit = match p {
                    Power::Restart => request::RESTART,
                    Power::Stop => request::POWER_OFF,
                };
                match g.vcpus.iter().find(|v| v.power() == VcpuPower::On) {
                    Some(v) => {
                        v.requests().fetch_or(bit, Ordering::AcqRel);
                        self.kick(v.pcpu);
                        self.say(format_args!(
                            "guest '{}': asked to {}",
                            g.name(),
                            if p == Power::Restart {
                                "restart"
                            } else {
                                "stop"
                            }
                        ));
                    }
                    None => self.say(format_args!("guest '{}' is not running", g.name())),
                }
            }
            Command::Cancelled => self.say(format_args!("cancelled")),
        }
    }
}
