//! Serial devices: opened without becoming the controlling terminal, set to
//! raw 8N1 at the board's baud rate with the modem lines ignored, and read
//! with a 100 ms inter-byte timer so the reader thread can notice the end.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;

use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
use rustix::termios::{
    ControlModes, OptionalActions, QueueSelector, SpecialCodeIndex, tcflush, tcgetattr, tcsetattr,
};

use super::StreamConsole;

/// Opens and configures a serial device.
pub fn open(path: &str, baud: u32) -> io::Result<StreamConsole> {
    // Non-blocking for the open itself: without CLOCAL set yet, opening a
    // tty can wait forever for a carrier the board never raises.
    let flags = (OFlags::NOCTTY | OFlags::NONBLOCK).bits();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags as i32)
        .open(path)?;
    configure(&file, baud).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
    let reader = file.try_clone()?;
    StreamConsole::new(vec![("tty", Box::new(reader))], Box::new(file), true, None)
}

/// Raw mode, `baud`, receiver on, modem lines ignored, reads that return
/// after 100 ms without data; stale input discarded; blocking again.
fn configure(file: &File, baud: u32) -> io::Result<()> {
    let mut t = tcgetattr(file)?;
    t.make_raw();
    t.set_speed(baud)?;
    t.control_modes |= ControlModes::CLOCAL | ControlModes::CREAD;
    t.control_modes -= ControlModes::CRTSCTS;
    t.special_codes[SpecialCodeIndex::VMIN] = 0;
    t.special_codes[SpecialCodeIndex::VTIME] = 1;
    tcsetattr(file, OptionalActions::Now, &t)?;
    tcflush(file, QueueSelector::IFlush)?;
    let flags = fcntl_getfl(file)?;
    fcntl_setfl(file, flags - OFlags::NONBLOCK)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_and_non_tty_are_errors() {
        assert!(open("/nonexistent/ttyUSB9", 115_200).is_err());
        // A regular file is not a terminal: tcgetattr refuses it, and the
        // message names the file.
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let path = file.path().to_str().expect("utf-8").to_owned();
        let err = open(&path, 115_200).err().expect("not a tty");
        assert!(err.to_string().contains(&path), "{err}");
    }
}
