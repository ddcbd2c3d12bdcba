//! A console over any byte streams: one reader thread per output stream
//! feeds a channel, so a receive can wait with a timeout whatever the
//! transport.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

use super::{Console, Recv};

/// How long a TCP connection attempt may take.
const TCP_CONNECT: Duration = Duration::from_secs(5);

/// What a reader thread reports.
enum Event {
    /// Output.
    Data(Vec<u8>),
    /// The stream ended, and why.
    End(String),
}

/// A console made of reader threads and a writer.
pub struct StreamConsole {
    rx: Receiver<Event>,
    writer: Box<dyn Write + Send>,
    open: usize,
    last_end: String,
    stop: Arc<AtomicBool>,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

impl StreamConsole {
    /// Starts one reader thread per stream. With `zero_is_idle` a read of 0
    /// bytes means "nothing yet" (a tty with VMIN = 0), not end of file.
    /// `on_drop` runs when the console is dropped (to unblock the readers).
    pub fn new(
        readers: Vec<(&'static str, Box<dyn Read + Send>)>,
        writer: Box<dyn Write + Send>,
        zero_is_idle: bool,
        on_drop: Option<Box<dyn FnOnce() + Send>>,
    ) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let open = readers.len();
        for (name, reader) in readers {
            let (tx, stop) = (tx.clone(), Arc::clone(&stop));
            thread::Builder::new()
                .name(format!("hil-console-{name}"))
                .spawn(move || pump(reader, &tx, &stop, zero_is_idle))?;
        }
        Ok(Self {
            rx,
            writer,
            open,
            last_end: "no output stream".into(),
            stop,
            on_drop,
        })
    }
}

/// Copies one stream into the channel until it ends or the console is dropped.
fn pump(
    mut reader: Box<dyn Read + Send>,
    tx: &Sender<Event>,
    stop: &AtomicBool,
    zero_is_idle: bool,
) {
    let mut buf = [0u8; 4096];
    let end = loop {
        if stop.load(Ordering::Relaxed) {
            break "console closed".to_owned();
        }
        match reader.read(&mut buf) {
            Ok(0) if zero_is_idle => continue,
            Ok(0) => break "end of file".to_owned(),
            Ok(n) => {
                if tx.send(Event::Data(buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => break e.to_string(),
        }
    };
    // The receiver may be gone already; nothing to tell then.
    let _ = tx.send(Event::End(end));
}

impl Console for StreamConsole {
    fn recv(&mut self, timeout: Duration) -> Recv {
        if self.open == 0 {
            return Recv::Closed(self.last_end.clone());
        }
        match self.rx.recv_timeout(timeout) {
            Ok(Event::Data(bytes)) => Recv::Data(bytes),
            Ok(Event::End(why)) => {
                self.open -= 1;
                self.last_end = why;
                if self.open == 0 {
                    Recv::Closed(self.last_end.clone())
                } else {
                    Recv::Idle
                }
            }
            Err(RecvTimeoutError::Timeout) => Recv::Idle,
            Err(RecvTimeoutError::Disconnected) => {
                self.open = 0;
                Recv::Closed(self.last_end.clone())
            }
        }
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.writer.write_all(bytes)?;
        self.writer.flush()
    }
}

impl Drop for StreamConsole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(on_drop) = self.on_drop.take() {
            on_drop();
        }
    }
}

/// Connects to a Unix socket console.
pub fn connect_unix(path: &str) -> io::Result<StreamConsole> {
    let stream = UnixStream::connect(path)?;
    let reader = stream.try_clone()?;
    let closer = stream.try_clone()?;
    StreamConsole::new(
        vec![("unix", Box::new(reader))],
        Box::new(stream),
        false,
        Some(Box::new(move || {
            // Unblocks the reader thread; an error means it is closed already.
            let _ = closer.shutdown(Shutdown::Both);
        })),
    )
}

/// Connects to a TCP console (`host:port`).
pub fn connect_tcp(addr: &str) -> io::Result<StreamConsole> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address"));
    for sockaddr in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&sockaddr, TCP_CONNECT) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                let reader = stream.try_clone()?;
                let closer = stream.try_clone()?;
                return StreamConsole::new(
                    vec![("tcp", Box::new(reader))],
                    Box::new(stream),
                    false,
                    Some(Box::new(move || {
                        // As for Unix sockets.
                        let _ = closer.shutdown(Shutdown::Both);
                    })),
                );
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::os::unix::net::UnixListener;
    use std::time::Instant;

    #[test]
    fn reads_until_end_of_every_stream() {
        let mut c = StreamConsole::new(
            vec![
                ("a", Box::new(Cursor::new(b"hello".to_vec()))),
                ("b", Box::new(Cursor::new(Vec::new()))),
            ],
            Box::new(io::sink()),
            false,
            None,
        )
        .expect("threads start");
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            match c.recv(Duration::from_millis(100)) {
                Recv::Data(d) => got.extend(d),
                Recv::Idle => assert!(Instant::now() < end, "never closed"),
                Recv::Closed(why) => {
                    assert_eq!(why, "end of file");
                    break;
                }
            }
        }
        assert_eq!(got, b"hello");
        assert!(matches!(c.recv(Duration::ZERO), Recv::Closed(_)));
    }

    #[test]
    fn unix_socket_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).expect("bind");
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 5];
            conn.read_exact(&mut buf).expect("read");
            conn.write_all(b"echo:").expect("write");
            conn.write_all(&buf).expect("write");
        });
        let mut c = connect_unix(path.to_str().expect("utf-8")).expect("connect");
        c.send(b"ping\n").expect("send");
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        while got.len() < 10 && Instant::now() < end {
            match c.recv(Duration::from_millis(100)) {
                Recv::Data(d) => got.extend(d),
                Recv::Idle => {}
                Recv::Closed(_) => break,
            }
        }
        assert_eq!(got, b"echo:ping\n");
        server.join().expect("server thread");
        assert!(connect_unix("/nonexistent/socket").is_err());
    }
}
