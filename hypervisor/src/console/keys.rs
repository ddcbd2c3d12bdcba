//! The console's escape keys: what the person at the serial line types is
//! the focused guest's input, except after [`ESCAPE`] (Ctrl-]), whose next
//! key is a command to the hypervisor:
//!
//! | keys | does |
//! |---|---|
//! | Ctrl-] `n` | focus on the next guest |
//! | Ctrl-] `0`..`9` | focus on guest N (its position in the configuration) |
//! | Ctrl-] `l` | list the guests with their state |
//! | Ctrl-] `c` | the hypervisor's counters |
//! | Ctrl-] `r`, then `y` | restart the focused guest (any other key cancels) |
//! | Ctrl-] `s`, then `y` | stop the focused guest (any other key cancels) |
//! | Ctrl-] Ctrl-] | a Ctrl-] for the guest |
//! | Ctrl-] anything else | help |
//!
//! Ctrl-] passes through QEMU's `-nographic` console (whose own escape is
//! Ctrl-A) and most terminal programs. [`Keys`] is the parser: pure state,
//! fed one byte at a time.

/// The escape key, Ctrl-].
pub const ESCAPE: u8 = 0x1d;

/// What a guest's power command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    /// Restart the guest.
    Restart,
    /// Stop the guest.
    Stop,
}

/// A command to the hypervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Focus on the next guest.
    Next,
    /// Focus on guest N.
    Focus(u8),
    /// List the guests.
    List,
    /// Print the counters.
    Counters,
    /// Print the keys.
    Help,
    /// Ask for confirmation of a power command.
    Ask(Power),
    /// The power command, confirmed.
    Confirmed(Power),
    /// The power command, not confirmed.
    Cancelled,
}

/// What one typed byte means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A byte for the focused guest.
    Guest(u8),
    /// A command.
    Command(Command),
    /// Nothing yet (the escape key, waiting for the next one).
    Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Normal,
    Escaped,
    Confirm(Power),
}

/// The escape-key parser.
#[derive(Debug, Default)]
pub struct Keys {
    state: State,
}

impl Keys {
    /// A parser outside any escape.
    pub const fn new() -> Self {
        Keys {
            state: State::Normal,
        }
    }

    /// What `byte` means.
    pub fn feed(&mut self, byte: u8) -> Key {
        match self.state {
            State::Normal if byte == ESCAPE => {
                self.state = State::Escaped;
                Key::Pending
            }
            State::Normal => Key::Guest(byte),
            State::Escaped => {
                self.state = State::Normal;
                Key::Command(match byte {
                    ESCAPE => return Key::Guest(ESCAPE),
                    b'n' => Command::Next,
                    b'0'..=b'9' => Command::Focus(byte - b'0'),
                    b'l' => Command::List,
                    b'c' => Command::Counters,
                    b'r' | b's' => {
                        let p = if byte == b'r' {
                            Power::Restart
                        } else {
                            Power::Stop
                        };
                        self.state = State::Confirm(p);
                        Command::Ask(p)
                    }
                    _ => Command::Help,
                })
            }
            State::Confirm(p) => {
                self.state = State::Normal;
                Key::Command(if byte == b'y' || byte == b'Y' {
                    Command::Confirmed(p)
                } else {
                    Command::Cancelled
                })
            }
        }
    }
}

/// The help text.
pub const HELP: &str = "console keys: Ctrl-] then n: next guest, 0-9: guest N, l: list guests, \
c: counters, r: restart the focused guest, s: stop it (both ask y/N), Ctrl-]: send Ctrl-]";

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(keys: &mut Keys, bytes: &[u8]) -> alloc::vec::Vec<Key> {
        bytes.iter().map(|&b| keys.feed(b)).collect()
    }

    #[test]
    fn bytes_pass_and_escapes_are_commands() {
        let mut k = Keys::new();
        use Key::*;
        assert_eq!(feed(&mut k, b"ab"), [Guest(b'a'), Guest(b'b')]);
        assert_eq!(
            feed(&mut k, b"\x1dn\x1d1\x1dl\x1dc\x1d\x1d\x1d?x"),
            [
                Pending,
                Command(super::Command::Next),
                Pending,
                Command(super::Command::Focus(1)),
                Pending,
                Command(super::Command::List),
                Pending,
                Command(super::Command::Counters),
                Pending,
                Guest(ESCAPE),
                Pending,
                Command(super::Command::Help),
                Guest(b'x'),
            ]
        );
        assert_eq!(
            feed(&mut k, b"\x1dry\x1dsn\x1dr\x1d"),
            [
                Pending,
                Command(super::Command::Ask(Power::Restart)),
                Command(super::Command::Confirmed(Power::Restart)),
                Pending,
                Command(super::Command::Ask(Power::Stop)),
                Command(super::Command::Cancelled),
                Pending,
                Command(super::Command::Ask(Power::Restart)),
                Command(super::Command::Cancelled),
            ]
        );
    }

    #[test]
    fn any_byte_stream_is_parsed_without_panic() {
        let mut k = Keys::new();
        for i in 0..100_000u32 {
            let _ = k.feed((i.wrapping_mul(2_654_435_761) >> 24) as u8);
        }
    }
}
