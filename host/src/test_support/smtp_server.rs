//! A real SMTP server for tests, on loopback: it speaks enough RFC 5321 for a
//! real client (EHLO/HELO, MAIL FROM, RCPT TO, DATA with dot-unstuffing, RSET,
//! NOOP, QUIT; 8BITMIME and SIZE advertised), keeps what it receives for
//! assertions, can be told to refuse the next transactions with a given code,
//! and can be stopped and started again on the same port to play "relay down,
//! then back".
//!
//! Part of [`crate::test_support`]: the e2e and multinode suites and the
//! host's unit tests of `email::send` use this one copy.
#![allow(dead_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::{JoinHandle, JoinSet};

/// Largest message accepted (also advertised as SIZE).
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// Longest command or text line read (RFC 5321 says 1000; be lenient).
const MAX_LINE_BYTES: usize = 64 * 1024;

/// One message the server accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The client's EHLO/HELO name.
    pub helo: String,
    /// MAIL FROM, without angle brackets (empty for the null sender).
    pub from: String,
    /// RCPT TO addresses, without angle brackets, in order.
    pub to: Vec<String>,
    /// The message as sent, dot-unstuffed, CRLF line ends, without the final
    /// `.` line.
    pub data: Vec<u8>,
}

impl ReceivedMail {
    /// The message as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Debug, Clone)]
struct Failure {
    remaining: usize,
    code: u16,
    text: String,
}

#[derive(Debug, Default)]
struct Shared {
    messages: Mutex<Vec<ReceivedMail>>,
    failure: Mutex<Option<Failure>>,
    arrived: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock must not hide the data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// The failure for the transaction starting now, if one is pending.
    fn take_failure(&self) -> Option<(u16, String)> {
        let mut failure = lock(&self.failure);
        let current = failure.as_mut()?;
        let answer = (current.code, current.text.clone());
        current.remaining -= 1;
        if current.remaining == 0 {
            *failure = None;
        }
        Some(answer)
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A running (or stopped) test SMTP server. Received messages and pending
/// failures survive [`stop`](Self::stop) and [`restart`](Self::restart).
pub struct SmtpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
}

impl SmtpServer {
    /// Starts on 127.0.0.1 and a free port.
    pub async fn start() -> SmtpServer {
        match Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await {
            Ok(server) => server,
            Err(e) => panic!("cannot start the test SMTP server on loopback: {e}"),
        }
    }

    /// Starts on `addr` (e.g. the address of a server stopped earlier).
    pub async fn start_on(addr: SocketAddr) -> io::Result<SmtpServer> {
        let shared = Arc::new(Shared::default());
        let (running, addr) = listen(addr, shared.clone())?;
        Ok(SmtpServer {
            addr,
            shared,
            running: Mutex::new(Some(running)),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        lock(&self.shared.messages).clone()
    }

    /// Waits until at least `n` messages were accepted, or `timeout` passes;
    /// returns the messages either way.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.messages();
            }
        }
    }

    /// Refuses the next `n` transactions: MAIL FROM is answered with `code`
    /// and `text` (e.g. 451 or 421 for a temporary failure, 550 for a
    /// permanent one). With 421 the server also closes the connection, as
    /// RFC 5321 has it.
    pub fn fail_next(&self, n: usize, code: u16, text: &str) {
        *lock(&self.shared.failure) = (n > 0).then(|| Failure {
            remaining: n,
            code,
            text: text.to_owned(),
        });
    }

    /// Stops listening and drops every open connection. Idempotent.
    pub async fn stop(&self) {
        let running = lock(&self.running).take();
        if let Some(running) = running {
            let _ = running.stop.send(true);
            let _ = running.task.await;
        }
    }

    /// Listens again on the same address after [`stop`](Self::stop).
    pub async fn restart(&self) -> io::Result<()> {
        self.stop().await;
        let (running, _) = listen(self.addr, self.shared.clone())?;
        *lock(&self.running) = Some(running);
        Ok(())
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(running) = lock(&self.running).take() {
            let _ = running.stop.send(true);
            running.task.abort();
        }
    }
}

/// Binds (with SO_REUSEADDR, so a restart can take the port back while old
/// connections sit in TIME_WAIT) and spawns the accept loop.
fn listen(addr: SocketAddr, shared: Arc<Shared>) -> io::Result<(Running, SocketAddr)> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(64)?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(session(stream, shared.clone()));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        connections.shutdown().await;
    });
    Ok((Running { stop, task }, addr))
}

/// Reads one line (up to LF) into `line`, without its line end. None at end
/// of stream; an over-long line is an error.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
) -> io::Result<Option<()>> {
    line.clear();
    let mut limited = (&mut *reader).take(MAX_LINE_BYTES as u64 + 2);
    let n = limited.read_until(b'\n', line).await?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "line too long or cut",
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(()))
}

/// The address inside `FROM:<addr> PARAMS` / `TO:<addr>`.
fn path_argument(rest: &str, keyword: &str) -> Option<String> {
    let rest = rest.trim_start();
    if rest.len() < keyword.len() || !rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_owned())
}

async fn session(stream: TcpStream, shared: Arc<Shared>) {
    let _ = converse(stream, &shared).await;
}

async fn converse(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    let mut helo: Option<String> = None;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();

    write.write_all(b"220 smtp.test ESMTP ready\r\n").await?;
    while read_line(&mut reader, &mut line).await?.is_some() {
        let text = String::from_utf8_lossy(&line).into_owned();
        let (verb, rest) = text.split_once(' ').unwrap_or((text.as_str(), ""));
        let reply: String = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                helo = Some(rest.trim().to_owned());
                from = None;
                to.clear();
                format!(
                    "250-smtp.test greets {}\r\n250-8BITMIME\r\n250-SIZE {MAX_MESSAGE_BYTES}\r\n\
                     250 ENHANCEDSTATUSCODES\r\n",
                    rest.trim()
                )
            }
            "HELO" => {
                helo = Some(rest.trim().to_owned());
                from = None;
                to.clear();
                "250 smtp.test\r\n".into()
            }
            "MAIL" => {
                if helo.is_none() {
                    "503 5.5.1 Send EHLO or HELO first\r\n".into()
                } else if from.is_some() {
                    "503 5.5.1 Nested MAIL command\r\n".into()
                } else if let Some((code, message)) = shared.take_failure() {
                    let reply = format!("{code} {message}\r\n");
                    if code == 421 {
                        write.write_all(reply.as_bytes()).await?;
                        return Ok(());
                    }
                    reply
                } else {
                    match path_argument(rest, "FROM:") {
                        Some(address) => {
                            from = Some(address);
                            "250 2.1.0 Ok\r\n".into()
                        }
                        None => "501 5.5.4 Syntax: MAIL FROM:<address>\r\n".into(),
                    }
                }
            }
            "RCPT" => {
                if from.is_none() {
                    "503 5.5.1 Need MAIL before RCPT\r\n".into()
                } else {
                    match path_argument(rest, "TO:") {
                        Some(address) if !address.is_empty() => {
                            to.push(address);
                            "250 2.1.5 Ok\r\n".into()
                        }
                        _ => "501 5.5.4 Syntax: RCPT TO:<address>\r\n".into(),
                    }
                }
            }
            "DATA" => {
                if from.is_none() || to.is_empty() {
                    "503 5.5.1 Need RCPT before DATA\r\n".into()
                } else {
                    write
                        .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        .await?;
                    let mut data = Vec::new();
                    let mut too_big = false;
                    loop {
                        if read_line(&mut reader, &mut line).await?.is_none() {
                            return Ok(());
                        }
                        if line == b"." {
                            break;
                        }
                        let content = line.strip_prefix(b".").unwrap_or(&line);
                        if data.len() + content.len() + 2 > MAX_MESSAGE_BYTES {
                            too_big = true;
                        } else if !too_big {
                            data.extend_from_slice(content);
                            data.extend_from_slice(b"\r\n");
                        }
                    }
                    let envelope_from = from.take().unwrap_or_default();
                    let recipients = std::mem::take(&mut to);
                    if too_big {
                        "552 5.3.4 Message too big\r\n".into()
                    } else {
                        let mut messages = lock(&shared.messages);
                        messages.push(ReceivedMail {
                            helo: helo.clone().unwrap_or_default(),
                            from: envelope_from,
                            to: recipients,
                            data,
                        });
                        let number = messages.len();
                        drop(messages);
                        shared.arrived.notify_waiters();
                        format!("250 2.0.0 Ok: queued as TEST{number}\r\n")
                    }
                }
            }
            "RSET" => {
                from = None;
                to.clear();
                "250 2.0.0 Ok\r\n".into()
            }
            "NOOP" => "250 2.0.0 Ok\r\n".into(),
            "VRFY" => "252 2.0.0 Cannot VRFY user\r\n".into(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 Command not recognized\r\n".into(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
    Ok(())
}
