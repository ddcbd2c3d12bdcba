//! The QEMU command line of a test: a builder with the defaults of
//! `cargo xtask run`, the image and QEMU binary from the environment.

use std::env;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::error::HarnessError;
use crate::session::Session;

/// Environment variable with the path of the raw image (set by `cargo xtask test`).
pub const IMAGE_ENV: &str = "PARTITA_IMAGE";
/// Environment variable with the QEMU binary (default `qemu-system-aarch64`).
pub const QEMU_ENV: &str = "PARTITA_QEMU";
/// Default machine: EL2 entry, GICv3, SMMUv3 in front of PCIe.
pub const DEFAULT_MACHINE: &str = "virt,virtualization=on,gic-version=3,iommu=smmuv3";
/// Default CPU model (`pauth-impdef=on` halves boot time under TCG).
pub const DEFAULT_CPU: &str = "max,pauth-impdef=on";
/// Default number of CPUs.
pub const DEFAULT_SMP: u32 = 4;
/// Default RAM size.
pub const DEFAULT_MEMORY: &str = "1G";
/// Default overall timeout of a session: no wait lasts beyond it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A QEMU machine to boot the image on.
#[derive(Debug, Clone)]
pub struct Qemu {
    binary: Option<OsString>,
    image: Option<PathBuf>,
    machine: String,
    cpu: Option<String>,
    console_serial: usize,
    smp: u32,
    memory: String,
    append: Option<String>,
    extra: Vec<OsString>,
    timeout: Duration,
}

impl Default for Qemu {
    fn default() -> Self {
        Self {
            binary: None,
            image: None,
            machine: DEFAULT_MACHINE.into(),
            cpu: Some(DEFAULT_CPU.into()),
            console_serial: 0,
            smp: DEFAULT_SMP,
            memory: DEFAULT_MEMORY.into(),
            append: None,
            extra: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl Qemu {
    /// The default machine (see the `DEFAULT_*` constants).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the `-M` machine string.
    pub fn machine(mut self, machine: impl Into<String>) -> Self {
        self.machine = machine.into();
        self
    }

    /// Sets the `-cpu` model.
    pub fn cpu(mut self, cpu: impl Into<String>) -> Self {
        self.cpu = Some(cpu.into());
        self
    }

    /// Leaves out `-cpu`: for machines whose SoC fixes the CPU model
    /// (`imx8mp-evk`).
    pub fn machine_cpu(mut self) -> Self {
        self.cpu = None;
        self
    }

    /// Puts the console on the machine's serial port `n` (counting from 0):
    /// the ports before it are given `-serial null`. The i.MX 8M Plus EVK's
    /// console is its UART2, QEMU's second serial port (`n` = 1).
    pub fn console_serial(mut self, n: usize) -> Self {
        self.console_serial = n;
        self
    }

    /// Sets the number of CPUs (`-smp`).
    pub fn smp(mut self, cpus: u32) -> Self {
        self.smp = cpus;
        self
    }

    /// Sets the RAM size (`-m`, e.g. "1G").
    pub fn memory(mut self, memory: impl Into<String>) -> Self {
        self.memory = memory.into();
        self
    }

    /// Sets the hypervisor command line (`-append`).
    pub fn append(mut self, cmdline: impl Into<String>) -> Self {
        self.append = Some(cmdline.into());
        self
    }

    /// Adds one argument at the end of the command line.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// Adds arguments at the end of the command line.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// Uses this image instead of `PARTITA_IMAGE`.
    pub fn image(mut self, image: impl Into<PathBuf>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// Uses this QEMU binary instead of `PARTITA_QEMU`.
    pub fn binary(mut self, binary: impl Into<OsString>) -> Self {
        self.binary = Some(binary.into());
        self
    }

    /// Sets the session's overall timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The QEMU command: serial console on stdio, no display, no monitor.
    pub fn command(&self) -> Result<Command, HarnessError> {
        let image = match &self.image {
            Some(image) => image.clone(),
            None => image_from(env::var_os(IMAGE_ENV))?,
        };
        if !image.is_file() {
            return Err(HarnessError::ImageMissing(image));
        }
        let binary = self
            .binary
            .clone()
            .or_else(|| env::var_os(QEMU_ENV).filter(|b| !b.is_empty()))
            .unwrap_or_else(|| "qemu-system-aarch64".into());
        let mut cmd = Command::new(binary);
        cmd.args(["-M", &self.machine]);
        if let Some(cpu) = &self.cpu {
            cmd.args(["-cpu", cpu]);
        }
        cmd.args(["-smp", &self.smp.to_string(), "-m", &self.memory])
            .arg("-display")
            .arg("none");
        for _ in 0..self.console_serial {
            cmd.args(["-serial", "null"]);
        }
        cmd.args(["-serial", "stdio", "-monitor", "none"])
            .arg("-kernel")
            .arg(image);
        if let Some(append) = &self.append {
            cmd.args(["-append", append]);
        }
        cmd.args(&self.extra);
        Ok(cmd)
    }

    /// Starts QEMU; it is killed when the returned session is dropped.
    pub fn spawn(&self) -> Result<Session, HarnessError> {
        Session::spawn(self.command()?, self.timeout)
    }
}

/// The image path from the value of `PARTITA_IMAGE`.
fn image_from(value: Option<OsString>) -> Result<PathBuf, HarnessError> {
    value
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or(HarnessError::ImageNotSet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::display;

    #[test]
    fn command_line() {
        // Any existing file will do as the image.
        let image = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let cmd = Qemu::new()
            .binary("qemu-system-aarch64")
            .image(image)
            .machine("virt-9.1,virtualization=on,gic-version=3,iommu=smmuv3")
            .smp(1)
            .append("partita.idle=poweroff")
            .args(["-global", "arm-smmuv3.stage=2"])
            .command()
            .expect("valid command");
        assert_eq!(
            display(&cmd),
            format!(
                "qemu-system-aarch64 -M virt-9.1,virtualization=on,gic-version=3,iommu=smmuv3 \
                 -cpu max,pauth-impdef=on -smp 1 -m 1G -display none -serial stdio -monitor none \
                 -kernel {image} -append partita.idle=poweroff -global arm-smmuv3.stage=2"
            )
        );
    }

    #[test]
    fn console_on_a_later_serial_port_without_cpu_model() {
        let image = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let cmd = Qemu::new()
            .binary("qemu-system-aarch64")
            .image(image)
            .machine("imx8mp-evk")
            .machine_cpu()
            .console_serial(1)
            .smp(4)
            .memory("2G")
            .command()
            .expect("valid command");
        assert_eq!(
            display(&cmd),
            format!(
                "qemu-system-aarch64 -M imx8mp-evk -smp 4 -m 2G -display none -serial null -serial stdio \
                 -monitor none -kernel {image}"
            )
        );
    }

    #[test]
    fn missing_image_tells_what_to_run() {
        let err = image_from(None).expect_err("unset");
        assert!(err.to_string().contains("cargo xtask test"), "{err}");
        assert!(matches!(
            image_from(Some("".into())),
            Err(HarnessError::ImageNotSet)
        ));
        let err = Qemu::new()
            .image("/nonexistent/partita.bin")
            .command()
            .expect_err("no such file");
        assert!(matches!(err, HarnessError::ImageMissing(_)), "{err}");
    }
}
