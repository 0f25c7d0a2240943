//! The bounded log of one call: structured `log.write` lines plus the plugin's
//! stdout and stderr, cut at the quota's byte cap. A plugin that floods its output
//! fills the cap, the rest is dropped and the log is marked truncated; the plugin
//! itself never sees a write error, so a flood cannot crash it into a trap.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use super::outcome::{LogLine, LogSource};

/// A call's log, shared between the store's state and its stdout/stderr streams.
#[derive(Debug, Clone)]
pub(crate) struct LogSink(Arc<Mutex<LogBuf>>);

#[derive(Debug, Default)]
struct LogBuf {
    cap: usize,
    used: usize,
    truncated: bool,
    lines: Vec<LogLine>,
    partial_stdout: Vec<u8>,
    partial_stderr: Vec<u8>,
}

impl LogSink {
    pub(crate) fn new(cap: u64) -> Self {
        Self(Arc::new(Mutex::new(LogBuf {
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            ..LogBuf::default()
        })))
    }

    fn lock(&self) -> MutexGuard<'_, LogBuf> {
        // A poisoned lock only means another writer panicked mid-push; the
        // buffer is still a valid (bounded) log.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends a structured line.
    pub(crate) fn line(&self, source: LogSource, message: &str) {
        let mut buf = self.lock();
        let room = buf.cap.saturating_sub(buf.used);
        if room == 0 {
            buf.truncated = true;
            return;
        }
        let message = if message.len() > room {
            buf.truncated = true;
            truncate_at_char(message, room)
        } else {
            message
        };
        buf.used += message.len();
        buf.lines.push(LogLine {
            source,
            message: message.to_owned(),
        });
    }

    fn write_stream(&self, source: LogSource, bytes: &[u8]) {
        let mut buf = self.lock();
        let room = buf.cap.saturating_sub(buf.used);
        let take = bytes.len().min(room);
        if take < bytes.len() {
            buf.truncated = true;
        }
        buf.used += take;
        let LogBuf {
            lines,
            partial_stdout,
            partial_stderr,
            ..
        } = &mut *buf;
        let partial = if source == LogSource::Stdout {
            partial_stdout
        } else {
            partial_stderr
        };
        partial.extend_from_slice(&bytes[..take]);
        while let Some(end) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=end).collect();
            lines.push(LogLine {
                source,
                message: String::from_utf8_lossy(&line[..end]).into_owned(),
            });
        }
    }

    /// Flushes unterminated output and returns the lines and the truncation flag.
    pub(crate) fn finish(&self) -> (Vec<LogLine>, bool) {
        let mut buf = self.lock();
        for source in [LogSource::Stdout, LogSource::Stderr] {
            let partial = if source == LogSource::Stdout {
                std::mem::take(&mut buf.partial_stdout)
            } else {
                std::mem::take(&mut buf.partial_stderr)
            };
            if !partial.is_empty() {
                buf.lines.push(LogLine {
                    source,
                    message: String::from_utf8_lossy(&partial).into_owned(),
                });
            }
        }
        (std::mem::take(&mut buf.lines), buf.truncated)
    }

    /// Empties the log for the next call of a warm instance.
    pub(crate) fn reset(&self) {
        let mut buf = self.lock();
        let cap = buf.cap;
        *buf = LogBuf {
            cap,
            ..LogBuf::default()
        };
    }

    /// A WASI stdout/stderr that writes into this log.
    pub(crate) fn stream(&self, source: LogSource) -> CaptureStream {
        CaptureStream {
            sink: self.clone(),
            source,
        }
    }
}

fn truncate_at_char(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The plugin's stdout or stderr.
#[derive(Debug, Clone)]
pub(crate) struct CaptureStream {
    sink: LogSink,
    source: LogSource,
}

impl IsTerminal for CaptureStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CaptureStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CaptureStream {
    async fn ready(&mut self) {}
}

impl OutputStream for CaptureStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.sink.write_stream(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accept: excess is dropped at the cap rather than refused, so a
        // flooding plugin neither blocks nor traps on a write error.
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for CaptureStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.sink.write_stream(self.source, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_keeps_partial_output() {
        let sink = LogSink::new(1024);
        sink.write_stream(LogSource::Stdout, b"one\ntw");
        sink.write_stream(LogSource::Stdout, b"o\nthree");
        sink.line(LogSource::Info, "structured");
        let (lines, truncated) = sink.finish();
        let text: Vec<_> = lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(text, ["one", "two", "structured", "three"]);
        assert!(!truncated);
    }

    #[test]
    fn stops_at_the_cap_and_marks_truncation() {
        let sink = LogSink::new(10);
        sink.write_stream(LogSource::Stderr, b"0123456789abcdef\n");
        sink.line(LogSource::Warn, "dropped");
        let (lines, truncated) = sink.finish();
        assert!(truncated);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].message, "0123456789");
    }

    #[test]
    fn truncates_structured_lines_on_a_char_boundary() {
        let sink = LogSink::new(5);
        sink.line(LogSource::Info, "ééé");
        let (lines, truncated) = sink.finish();
        assert!(truncated);
        assert_eq!(lines[0].message, "éé");
    }
}
