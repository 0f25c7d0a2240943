//! The parts of WASI a plugin can wait on, implemented so that no call can hold
//! a host thread past the call's deadline or touch an async runtime.
//!
//! wasmtime-wasi's synchronous p2 bindings run each blocking operation with
//! `block_on` on a Tokio runtime: on a Tokio worker (a quote's in-place call)
//! that panics, and anywhere else it sleeps for as long as the guest asks,
//! which the epoch deadline cannot interrupt (epochs only act inside wasm). So
//! `wasi:io/poll`, `wasi:io/streams` and `wasi:clocks/monotonic-clock` are
//! provided here: every wait is driven by [`wait`] on the calling thread, parked
//! at most until the call's deadline, and a wait that cannot end before the
//! deadline ends the call at once as `deadline` instead of sleeping through it.
//! `wasi:random` is here too, so the bytes it allocates count against the
//! call's host-call budget. Everything else of the WASI subset (errors, wall
//! clock, cli) never waits and stays wasmtime-wasi's.
//!
//! The only pollables a plugin can get are clock timers (made here), and its
//! stdout, stderr (never blocking: `capture.rs`) and empty stdin, so every
//! pending wait has a known time to wake.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use rand::RngCore;
use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::bindings::random::{insecure, insecure_seed, random};
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, StreamError, StreamResult};
use wasmtime_wasi_io::bindings::wasi::io::poll as async_poll;
use wasmtime_wasi_io::bindings::wasi::io::streams as async_streams;

use super::state::HostState;

/// Raised (as a trap) when a host call would have to wait past the call's
/// deadline; the call ends as `deadline`.
#[derive(Debug, thiserror::Error)]
#[error("the plugin waited in a host call past its deadline (quota deadline_ms)")]
pub(crate) struct DeadlinePassed;

/// Raised when the plugin waits on something that can never become ready.
#[derive(Debug, thiserror::Error)]
#[error("the plugin waited on something that can never become ready")]
pub(crate) struct WaitsForever;

thread_local! {
    /// The earliest time a pending clock pollable asked to be polled again,
    /// noted while [`wait`] polls its future on this thread.
    static WAKE_AT: Cell<Option<Instant>> = const { Cell::new(None) };
}

fn note_wake_at(at: Instant) {
    WAKE_AT.with(|cell| {
        let earliest = cell.get().map_or(at, |known| known.min(at));
        cell.set(Some(earliest));
    });
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `future` to completion on this thread, parking between polls until
/// the earliest time a pending pollable asked for, never past `deadline`.
/// A future that cannot be ready before the deadline ends the wait at once.
pub(crate) fn wait<F: Future>(future: F, deadline: Option<Instant>) -> wasmtime::Result<F::Output> {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        WAKE_AT.with(|cell| cell.set(None));
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Ok(out);
        }
        let wake_at = WAKE_AT.with(Cell::get);
        match (wake_at, deadline) {
            (Some(at), Some(deadline)) if at >= deadline => return Err(DeadlinePassed.into()),
            (None, Some(_)) => return Err(DeadlinePassed.into()),
            (None, None) => return Err(WaitsForever.into()),
            (Some(at), _) => {
                std::thread::park_timeout(at.saturating_duration_since(Instant::now()))
            }
        }
    }
}

/// The monotonic clock's origin: `now` counts nanoseconds from the first use.
static ORIGIN: LazyLock<Instant> = LazyLock::new(Instant::now);

fn monotonic_now() -> u64 {
    u64::try_from(ORIGIN.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A timer pollable: ready once its instant has passed (`None`: never).
struct Timer(Option<Instant>);

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for Timer {
    async fn ready(&mut self) {
        let at = self.0;
        std::future::poll_fn(|_| match at {
            Some(at) if Instant::now() >= at => Poll::Ready(()),
            Some(at) => {
                note_wake_at(at);
                Poll::Pending
            }
            None => Poll::Pending,
        })
        .await;
    }
}

impl HostState {
    fn timer(&mut self, at: Option<Instant>) -> wasmtime::Result<Resource<DynPollable>> {
        let table = self.table();
        let timer = table.push(Timer(at))?;
        wasmtime_wasi::p2::subscribe(table, timer)
    }

    /// Charges the bytes a WASI call moves to the call's host-call budget.
    fn charge_stream(&mut self, bytes: u64) -> StreamResult<()> {
        self.charge(usize::try_from(bytes).unwrap_or(usize::MAX))
            .map_err(StreamError::Trap)
    }
}

impl monotonic_clock::Host for HostState {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(monotonic_now())
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1)
    }

    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.timer(ORIGIN.checked_add(Duration::from_nanos(when)))
    }

    fn subscribe_duration(&mut self, duration: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.timer(Instant::now().checked_add(Duration::from_nanos(duration)))
    }
}

impl poll::Host for HostState {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        let deadline = self.deadline;
        wait(async_poll::Host::poll(self.table(), pollables), deadline)?
    }
}

impl poll::HostPollable for HostState {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        // Polled once: never waits.
        wait(
            async_poll::HostPollable::ready(self.table(), pollable),
            None,
        )?
    }

    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        let deadline = self.deadline;
        wait(
            async_poll::HostPollable::block(self.table(), pollable),
            deadline,
        )?
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.table(), pollable)
    }
}

/// Runs one stream operation that may wait, under the call's deadline.
fn stream_wait<T>(
    deadline: Option<Instant>,
    future: impl Future<Output = StreamResult<T>>,
) -> StreamResult<T> {
    wait(future, deadline).map_err(StreamError::Trap)?
}

impl streams::Host for HostState {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        Ok(
            match async_streams::Host::convert_stream_error(self.table(), err)? {
                async_streams::StreamError::LastOperationFailed(e) => {
                    streams::StreamError::LastOperationFailed(e)
                }
                async_streams::StreamError::Closed => streams::StreamError::Closed,
            },
        )
    }
}

impl streams::HostOutputStream for HostState {
    fn drop(&mut self, stream: Resource<DynOutputStream>) -> wasmtime::Result<()> {
        let deadline = self.deadline;
        wait(
            async_streams::HostOutputStream::drop(self.table(), stream),
            deadline,
        )?
    }

    fn check_write(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<u64> {
        async_streams::HostOutputStream::check_write(self.table(), stream)
    }

    fn write(&mut self, stream: Resource<DynOutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        self.charge_stream(bytes.len() as u64)?;
        async_streams::HostOutputStream::write(self.table(), stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        self.charge_stream(bytes.len() as u64)?;
        let deadline = self.deadline;
        stream_wait(
            deadline,
            async_streams::HostOutputStream::blocking_write_and_flush(self.table(), stream, bytes),
        )
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<DynOutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        self.charge_stream(len)?;
        let deadline = self.deadline;
        stream_wait(
            deadline,
            async_streams::HostOutputStream::blocking_write_zeroes_and_flush(
                self.table(),
                stream,
                len,
            ),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        async_streams::HostOutputStream::subscribe(self.table(), stream)
    }

    fn write_zeroes(&mut self, stream: Resource<DynOutputStream>, len: u64) -> StreamResult<()> {
        self.charge_stream(len)?;
        async_streams::HostOutputStream::write_zeroes(self.table(), stream, len)
    }

    fn flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        async_streams::HostOutputStream::flush(self.table(), stream)
    }

    fn blocking_flush(&mut self, stream: Resource<DynOutputStream>) -> StreamResult<()> {
        let deadline = self.deadline;
        stream_wait(
            deadline,
            async_streams::HostOutputStream::blocking_flush(self.table(), stream),
        )
    }

    fn splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        self.charge_stream(len)?;
        async_streams::HostOutputStream::splice(self.table(), dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<DynOutputStream>,
        src: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        self.charge_stream(len)?;
        let deadline = self.deadline;
        stream_wait(
            deadline,
            async_streams::HostOutputStream::blocking_splice(self.table(), dst, src, len),
        )
    }
}

impl streams::HostInputStream for HostState {
    fn drop(&mut self, stream: Resource<DynInputStream>) -> wasmtime::Result<()> {
        let deadline = self.deadline;
        wait(
            async_streams::HostInputStream::drop(self.table(), stream),
            deadline,
        )?
    }

    fn read(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<Vec<u8>> {
        self.charge_stream(len)?;
        async_streams::HostInputStream::read(self.table(), stream, len)
    }

    fn blocking_read(
        &mut self,
        stream: Resource<DynInputStream>,
        len: u64,
    ) -> StreamResult<Vec<u8>> {
        self.charge_stream(len)?;
        let deadline = self.deadline;
        stream_wait(
            deadline,
            async_streams::HostInputStream::blocking_read(self.table(), stream, len),
        )
    }

    fn skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        async_streams::HostInputStream::skip(self.table(), stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<DynInputStream>, len: u64) -> StreamResult<u64> {
        let deadline = self.deadline;
        stream_wait(
            deadline,
            async_streams::HostInputStream::blocking_skip(self.table(), stream, len),
        )
    }

    fn subscribe(
        &mut self,
        stream: Resource<DynInputStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        async_streams::HostInputStream::subscribe(self.table(), stream)
    }
}

impl HostState {
    /// `len` random bytes, charged to the host-call budget before they are
    /// allocated (a guest may ask for up to 2^64 - 1).
    fn random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.charge(usize::try_from(len).unwrap_or(usize::MAX))?;
        let mut bytes = vec![0; usize::try_from(len)?];
        rand::rng().fill_bytes(&mut bytes);
        Ok(bytes)
    }
}

impl random::Host for HostState {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        // ThreadRng is a CSPRNG seeded from the operating system.
        self.random_bytes(len)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(rand::rng().next_u64())
    }
}

impl insecure::Host for HostState {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.random_bytes(len)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(rand::rng().next_u64())
    }
}

impl insecure_seed::Host for HostState {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        let mut rng = rand::rng();
        Ok((rng.next_u64(), rng.next_u64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_future_needs_no_deadline() {
        assert_eq!(wait(async { 7 }, None).unwrap(), 7);
    }

    #[test]
    fn a_timer_before_the_deadline_is_waited_for() {
        let started = Instant::now();
        let mut timer = Timer(Some(started + Duration::from_millis(20)));
        let deadline = Some(started + Duration::from_secs(5));
        wait(wasmtime_wasi::p2::Pollable::ready(&mut timer), deadline).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn a_timer_past_the_deadline_ends_the_wait_at_once() {
        let started = Instant::now();
        let mut timer = Timer(Some(started + Duration::from_secs(3600)));
        let deadline = Some(started + Duration::from_secs(60));
        let err = wait(wasmtime_wasi::p2::Pollable::ready(&mut timer), deadline).unwrap_err();
        assert!(err.downcast_ref::<DeadlinePassed>().is_some());
        // Not slept through: the wait gave up without parking for the hour.
        assert!(started.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn a_wait_for_never_fails_without_a_deadline_too() {
        let mut timer = Timer(None);
        let err = wait(wasmtime_wasi::p2::Pollable::ready(&mut timer), None).unwrap_err();
        assert!(err.downcast_ref::<WaitsForever>().is_some());
    }
}
