//! Console UARTs: one driver interface ([`Driver`]), drivers for the PL011
//! and SBSA UART, 8250/16550 (plain, DesignWare, TI K3), the NXP LPUART and
//! the i.MX UART, and the choice among them by the `compatible` strings of
//! the node `/chosen/stdout-path` names ([`select`]). A node no driver
//! claims is an error, so the caller never writes to a UART it does not
//! know.
//!
//! Every driver keeps the line settings the firmware chose (baud rate,
//! format); none waits forever: a transmitter that stays full for
//! [`SPIN_LIMIT`] polls loses the byte instead of hanging the caller.

mod imx;
mod lpuart;
mod ns16550;
mod pl011;
mod regs;

#[cfg(test)]
mod fake;

use core::fmt;

pub use imx::ImxUart;
pub use lpuart::Lpuart;
pub use ns16550::{IoWidth, Layout, Ns16550};
pub use pl011::Pl011;
pub use regs::{Mmio, Regs};

/// Status polls before a wait (room to transmit, transmission finished)
/// is abandoned: far above what a working UART needs at 9600 baud.
pub const SPIN_LIMIT: u32 = 1 << 20;

/// What every console UART driver does, over its registers.
pub trait Driver {
    /// Makes the UART usable for polled output and input, keeping the
    /// line settings the firmware chose.
    fn init(&self);
    /// Whether the transmitter takes a byte now.
    fn tx_ready(&self) -> bool;
    /// Hands one byte to the transmitter (after [`Driver::tx_ready`]).
    fn tx(&self, byte: u8);
    /// Whether everything handed over has left the UART.
    fn tx_idle(&self) -> bool;
    /// A received byte, if one is waiting.
    fn rx(&self) -> Option<u8>;
    /// Raises the UART's interrupt while received data waits; reading
    /// the data out ([`Driver::rx`] until `None`) ends it.
    fn enable_rx_interrupt(&self);
}

/// Which driver a UART needs, with what its node says about its registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PL011 (`arm,pl011`).
    Pl011,
    /// Arm SBSA generic UART (`arm,sbsa-uart`): a PL011 without its
    /// control register.
    SbsaUart,
    /// An 8250/16550 with this register layout.
    Ns16550(Layout),
    /// NXP LPUART, 32-bit registers (`fsl,imx7ulp-lpuart` family).
    Lpuart,
    /// The i.MX UART (`fsl,imx21-uart` family).
    Imx,
}

impl fmt::Display for UartKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UartKind::Pl011 => f.write_str("pl011"),
            UartKind::SbsaUart => f.write_str("sbsa-uart"),
            UartKind::Ns16550(l) => write!(
                f,
                "16550 (reg-shift {}, {}-bit access)",
                l.reg_shift,
                8 * l.io_width.bytes()
            ),
            UartKind::Lpuart => f.write_str("lpuart"),
            UartKind::Imx => f.write_str("imx-uart"),
        }
    }
}

/// Driver families of the compatibles table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Pl011,
    Sbsa,
    /// 16550 with the default `reg-shift` given.
    Ns16550 {
        default_shift: u8,
    },
    Lpuart,
    Imx,
}

/// The compatibles with a driver, most specific first within a family.
/// A node is matched on its first `compatible` string found here.
const COMPATIBLES: &[(&str, Family)] = &[
    ("arm,pl011", Family::Pl011),
    ("arm,sbsa-uart", Family::Sbsa),
    ("ns16550a", Family::Ns16550 { default_shift: 0 }),
    ("ns16550", Family::Ns16550 { default_shift: 0 }),
    ("snps,dw-apb-uart", Family::Ns16550 { default_shift: 0 }),
    // TI's K3 UARTs (am654, j721e) are 16550s four bytes apart; their
    // nodes give no reg-shift.
    ("ti,am654-uart", Family::Ns16550 { default_shift: 2 }),
    ("fsl,imx7ulp-lpuart", Family::Lpuart),
    ("fsl,imx8ulp-lpuart", Family::Lpuart),
    ("fsl,imx8qxp-lpuart", Family::Lpuart),
    ("fsl,imx93-lpuart", Family::Lpuart),
    ("fsl,imx95-lpuart", Family::Lpuart),
    ("fsl,imx21-uart", Family::Imx),
    ("fsl,imx53-uart", Family::Imx),
    ("fsl,imx6q-uart", Family::Imx),
];

/// Every `compatible` string a driver claims, for messages.
pub fn known_compatibles() -> impl Iterator<Item = &'static str> {
    COMPATIBLES.iter().map(|(c, _)| *c)
}

/// Why no driver can run a UART.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UartError {
    /// None of the node's `compatible` strings has a driver.
    NoDriver,
    /// `reg-shift` is not 0 to 3.
    BadRegShift(u32),
    /// `reg-io-width` is not 1 or 4.
    BadIoWidth(u32),
}

impl fmt::Display for UartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UartError::NoDriver => f.write_str("no driver for any of its compatibles"),
            UartError::BadRegShift(s) => write!(f, "reg-shift {s} is not 0 to 3"),
            UartError::BadIoWidth(w) => write!(f, "reg-io-width {w} is not 1 or 4"),
        }
    }
}

impl core::error::Error for UartError {}

/// The UART node's properties beyond `compatible` that a driver needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UartProps {
    /// `reg-shift`, if present.
    pub reg_shift: Option<u32>,
    /// `reg-io-width`, if present.
    pub reg_io_width: Option<u32>,
}

/// The driver for a node with these `compatible` strings (in the node's
/// order) and properties.
pub fn select<'a>(
    compatible: impl IntoIterator<Item = &'a str>,
    props: UartProps,
) -> Result<UartKind, UartError> {
    let family = compatible
        .into_iter()
        .find_map(|c| COMPATIBLES.iter().find(|(k, _)| *k == c).map(|(_, f)| *f))
        .ok_or(UartError::NoDriver)?;
    Ok(match family {
        Family::Pl011 => UartKind::Pl011,
        Family::Sbsa => UartKind::SbsaUart,
        Family::Lpuart => UartKind::Lpuart,
        Family::Imx => UartKind::Imx,
        Family::Ns16550 { default_shift } => {
            let reg_shift = match props.reg_shift {
                None => default_shift,
                Some(s @ 0..=3) => s as u8,
                Some(s) => return Err(UartError::BadRegShift(s)),
            };
            let io_width = match props.reg_io_width {
                None | Some(1) => IoWidth::Byte,
                Some(4) => IoWidth::Word,
                Some(w) => return Err(UartError::BadIoWidth(w)),
            };
            UartKind::Ns16550(Layout {
                reg_shift,
                io_width,
            })
        }
    })
}

/// A console UART of any supported kind over its registers.
#[derive(Debug)]
pub enum Uart<R> {
    /// PL011 or SBSA UART.
    Pl011(Pl011<R>),
    /// 8250/16550.
    Ns16550(Ns16550<R>),
    /// NXP LPUART.
    Lpuart(Lpuart<R>),
    /// i.MX UART.
    Imx(ImxUart<R>),
}

impl<R: Regs> Uart<R> {
    /// The driver for `kind` over `regs`.
    pub fn new(kind: UartKind, regs: R) -> Self {
        match kind {
            UartKind::Pl011 => Uart::Pl011(Pl011::new(regs, false)),
            UartKind::SbsaUart => Uart::Pl011(Pl011::new(regs, true)),
            UartKind::Ns16550(layout) => Uart::Ns16550(Ns16550::new(regs, layout)),
            UartKind::Lpuart => Uart::Lpuart(Lpuart::new(regs)),
            UartKind::Imx => Uart::Imx(ImxUart::new(regs)),
        }
    }

    fn driver(&self) -> &dyn Driver {
        match self {
            Uart::Pl011(d) => d,
            Uart::Ns16550(d) => d,
            Uart::Lpuart(d) => d,
            Uart::Imx(d) => d,
        }
    }

    /// The register access.
    pub fn regs(&self) -> &R {
        match self {
            Uart::Pl011(d) => d.regs(),
            Uart::Ns16550(d) => d.regs(),
            Uart::Lpuart(d) => d.regs(),
            Uart::Imx(d) => d.regs(),
        }
    }

    /// Makes the UART usable (see [`Driver::init`]).
    pub fn init(&self) {
        self.driver().init();
    }

    /// Sends one byte, waiting for room at most [`SPIN_LIMIT`] polls;
    /// `false` if the byte was dropped.
    pub fn put_byte(&self, byte: u8) -> bool {
        let d = self.driver();
        if !spin_until(|| d.tx_ready()) {
            return false;
        }
        d.tx(byte);
        true
    }

    /// Sends `bytes` as they are.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            self.put_byte(b);
        }
    }

    /// Sends `s`, each `\n` as `\r\n`.
    pub fn write_str(&self, s: &str) {
        for b in s.bytes() {
            if b == b'\n' {
                self.put_byte(b'\r');
            }
            self.put_byte(b);
        }
    }

    /// A received byte, if one is waiting.
    pub fn get_byte(&self) -> Option<u8> {
        self.driver().rx()
    }

    /// Waits (at most [`SPIN_LIMIT`] polls) until everything sent has left
    /// the UART; `false` if it had not.
    pub fn flush(&self) -> bool {
        let d = self.driver();
        spin_until(|| d.tx_idle())
    }

    /// See [`Driver::enable_rx_interrupt`].
    pub fn enable_rx_interrupt(&self) {
        self.driver().enable_rx_interrupt();
    }
}

impl<R: Regs> fmt::Write for Uart<R> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        Uart::write_str(self, s);
        Ok(())
    }
}

/// Polls `done` until it holds, at most [`SPIN_LIMIT`] times.
fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..SPIN_LIMIT {
        if done() {
            return true;
        }
        core::hint::spin_loop();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn sel(compat: &[&str], shift: Option<u32>, width: Option<u32>) -> Result<UartKind, UartError> {
        select(
            compat.iter().copied(),
            UartProps {
                reg_shift: shift,
                reg_io_width: width,
            },
        )
    }

    #[test]
    fn the_boards_console_nodes_get_their_drivers() {
        // QEMU virt, FVP Base RevC.
        assert_eq!(
            sel(&["arm,pl011", "arm,primecell"], None, None),
            Ok(UartKind::Pl011)
        );
        assert_eq!(sel(&["arm,sbsa-uart"], None, None), Ok(UartKind::SbsaUart));
        // RK3588 (ROCK 5B, Orange Pi 5 Plus).
        assert_eq!(
            sel(
                &["rockchip,rk3588-uart", "snps,dw-apb-uart"],
                Some(2),
                Some(4)
            ),
            Ok(UartKind::Ns16550(Layout {
                reg_shift: 2,
                io_width: IoWidth::Word
            }))
        );
        // TI J721E: no reg-shift in the node.
        assert_eq!(
            sel(&["ti,j721e-uart", "ti,am654-uart"], None, None),
            Ok(UartKind::Ns16550(Layout {
                reg_shift: 2,
                io_width: IoWidth::Byte
            }))
        );
        assert_eq!(
            sel(&["ns16550a"], None, None),
            Ok(UartKind::Ns16550(Layout {
                reg_shift: 0,
                io_width: IoWidth::Byte
            }))
        );
        // i.MX 95 and 93.
        assert_eq!(
            sel(
                &[
                    "fsl,imx95-lpuart",
                    "fsl,imx8ulp-lpuart",
                    "fsl,imx7ulp-lpuart"
                ],
                None,
                None
            ),
            Ok(UartKind::Lpuart)
        );
        assert_eq!(
            sel(&["fsl,imx8qxp-lpuart"], None, None),
            Ok(UartKind::Lpuart)
        );
        // i.MX 8M Plus.
        assert_eq!(
            sel(&["fsl,imx8mp-uart", "fsl,imx6q-uart"], None, None),
            Ok(UartKind::Imx)
        );
    }

    #[test]
    fn unknown_or_malformed_nodes_get_no_driver() {
        assert_eq!(
            sel(&["acme,mystery-uart"], None, None),
            Err(UartError::NoDriver)
        );
        assert_eq!(sel(&[], None, None), Err(UartError::NoDriver));
        // The big-endian and 8-bit LPUARTs have other layouts.
        assert_eq!(
            sel(&["fsl,ls1021a-lpuart"], None, None),
            Err(UartError::NoDriver)
        );
        assert_eq!(
            sel(&["fsl,vf610-lpuart"], None, None),
            Err(UartError::NoDriver)
        );
        assert_eq!(
            sel(&["ns16550a"], Some(7), None),
            Err(UartError::BadRegShift(7))
        );
        assert_eq!(
            sel(&["ns16550a"], None, Some(2)),
            Err(UartError::BadIoWidth(2))
        );
        // A 16550 property on a PL011 means nothing to it.
        assert_eq!(sel(&["arm,pl011"], Some(9), Some(3)), Ok(UartKind::Pl011));
        assert!(UartError::NoDriver.to_string().contains("no driver"));
    }

    #[test]
    fn kinds_have_names_for_the_summary() {
        let dw = UartKind::Ns16550(Layout {
            reg_shift: 2,
            io_width: IoWidth::Word,
        });
        assert_eq!(dw.to_string(), "16550 (reg-shift 2, 32-bit access)");
        assert_eq!(UartKind::Imx.to_string(), "imx-uart");
        assert!(known_compatibles().any(|c| c == "fsl,imx7ulp-lpuart"));
    }
}
