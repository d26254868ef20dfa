//! The kernel transports shmlane is compared with: pipes, Unix stream
//! sockets and TCP loopback, each blocking and spinning (`O_NONBLOCK` with a
//! busy retry on `EAGAIN`).

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use crate::error::{BenchError, Context, Result};
use crate::harness::{Endpoint, Kind, Mode, Prepared, Role, Transport};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Pipe,
    Unix,
    Tcp,
}

/// A transport over file descriptors: `pipe`, `unix` or `tcp`, blocking or spinning.
#[derive(Debug, Clone, Copy)]
pub struct FdTransport {
    flavor: Flavor,
    spin: bool,
}

impl FdTransport {
    /// `pipe` / `pipe-spin`: one pipe for streaming, two for round trips.
    pub fn pipe(spin: bool) -> Self {
        Self { flavor: Flavor::Pipe, spin }
    }

    /// `unix` / `unix-spin`: a Unix stream `socketpair`.
    pub fn unix(spin: bool) -> Self {
        Self { flavor: Flavor::Unix, spin }
    }

    /// `tcp` / `tcp-spin`: TCP over 127.0.0.1 with `TCP_NODELAY`.
    pub fn tcp(spin: bool) -> Self {
        Self { flavor: Flavor::Tcp, spin }
    }

    /// All six, blocking first.
    pub fn all() -> Vec<Self> {
        [false, true].into_iter().flat_map(|spin| [Self::pipe(spin), Self::unix(spin), Self::tcp(spin)]).collect()
    }
}

impl Transport for FdTransport {
    fn name(&self) -> &str {
        match (self.flavor, self.spin) {
            (Flavor::Pipe, false) => "pipe",
            (Flavor::Pipe, true) => "pipe-spin",
            (Flavor::Unix, false) => "unix",
            (Flavor::Unix, true) => "unix-spin",
            (Flavor::Tcp, false) => "tcp",
            (Flavor::Tcp, true) => "tcp-spin",
        }
    }

    fn kind(&self) -> Kind {
        if self.spin { Kind::Spinning } else { Kind::Blocking }
    }

    fn prepare(&self, mode: Mode, _size: usize) -> Result<Box<dyn Prepared>> {
        let mut p = FdPrepared { spin: self.spin, a_rx: None, a_tx: None, b_rx: None, b_tx: None, listener: None };
        match self.flavor {
            Flavor::Pipe => {
                let flags = if self.spin { OFlag::O_CLOEXEC | OFlag::O_NONBLOCK } else { OFlag::O_CLOEXEC };
                // Streaming: B (sender) -> A (receiver). Round trip: also A -> B.
                let (r, w) = pipe2(flags).context("pipe2")?;
                p.a_rx = Some(r);
                p.b_tx = Some(w);
                if mode == Mode::Rtt {
                    let (r, w) = pipe2(flags).context("pipe2")?;
                    p.b_rx = Some(r);
                    p.a_tx = Some(w);
                }
            }
            Flavor::Unix => {
                let (a, b) = UnixStream::pair().context("socketpair")?;
                a.set_nonblocking(self.spin).context("O_NONBLOCK")?;
                b.set_nonblocking(self.spin).context("O_NONBLOCK")?;
                p.a_rx = Some(OwnedFd::from(a.try_clone().context("dup")?));
                p.a_tx = Some(OwnedFd::from(a));
                p.b_rx = Some(OwnedFd::from(b.try_clone().context("dup")?));
                p.b_tx = Some(OwnedFd::from(b));
            }
            Flavor::Tcp => {
                p.listener = Some(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?);
            }
        }
        Ok(Box::new(p))
    }
}

/// File descriptors for side A (pinger / receiver, the parent) and side B
/// (ponger / sender, the child), or a listening TCP socket.
#[derive(Debug)]
struct FdPrepared {
    spin: bool,
    a_rx: Option<OwnedFd>,
    a_tx: Option<OwnedFd>,
    b_rx: Option<OwnedFd>,
    b_tx: Option<OwnedFd>,
    listener: Option<TcpListener>,
}

impl Prepared for FdPrepared {
    fn endpoint(self: Box<Self>, role: Role) -> Result<Box<dyn Endpoint>> {
        let side_a = matches!(role, Role::Pinger | Role::Receiver);
        let FdPrepared { spin, a_rx, a_tx, b_rx, b_tx, listener } = *self;
        // The other side's descriptors are dropped (closed in this process) here.
        let (mut rx, mut tx) = if side_a { (a_rx, a_tx) } else { (b_rx, b_tx) };
        if let Some(listener) = listener {
            let stream = if side_a {
                listener.accept().context("accept")?.0
            } else {
                let addr = listener.local_addr().context("local_addr")?;
                drop(listener);
                TcpStream::connect(addr).context("connect")?
            };
            stream.set_nodelay(true).context("TCP_NODELAY")?;
            stream.set_nonblocking(spin).context("O_NONBLOCK")?;
            rx = Some(OwnedFd::from(stream.try_clone().context("dup")?));
            tx = Some(OwnedFd::from(stream));
        }
        Ok(Box::new(FdEndpoint { rx: rx.map(File::from), tx: tx.map(File::from), spin, syscalls: 0 }))
    }
}

/// Reads and writes whole messages, looping over short reads and writes.
#[derive(Debug)]
struct FdEndpoint {
    rx: Option<File>,
    tx: Option<File>,
    spin: bool,
    syscalls: u64,
}

impl Endpoint for FdEndpoint {
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        let Self { tx, spin, syscalls, .. } = self;
        let tx = tx.as_mut().ok_or_else(|| BenchError::other("this side of the transport cannot send"))?;
        let mut done = 0;
        while done < msg.len() {
            *syscalls += 1;
            match tx.write(&msg[done..]) {
                Ok(0) => return Err(BenchError::io("write", ErrorKind::WriteZero.into())),
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock && *spin => std::hint::spin_loop(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(BenchError::io("write", e)),
            }
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<()> {
        let Self { rx, spin, syscalls, .. } = self;
        let rx = rx.as_mut().ok_or_else(|| BenchError::other("this side of the transport cannot receive"))?;
        let mut done = 0;
        while done < buf.len() {
            *syscalls += 1;
            match rx.read(&mut buf[done..]) {
                Ok(0) => return Err(BenchError::io("read", ErrorKind::UnexpectedEof.into())),
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock && *spin => std::hint::spin_loop(),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(BenchError::io("read", e)),
            }
        }
        Ok(())
    }

    fn syscalls(&self) -> Option<u64> {
        Some(self.syscalls)
    }
}
