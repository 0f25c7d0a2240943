//! Several `veneer serve` processes against one PostgreSQL: cache invalidation
//! across nodes, the shared job queue surviving a killed node, and a database
//! restart under load. Real processes (the `veneer` binary), real PostgreSQL,
//! a real SMTP server.
//!
//! These tests stop and restart the machine's PostgreSQL cluster, so they must
//! never overlap with another PostgreSQL test: cargo runs test binaries one
//! after another, and within this binary every test holds [`harness::serial`].

mod harness;
mod invalidation;
mod jobs;
mod rate;
mod restart;
#[path = "../e2e/smtp_server.rs"]
mod smtp_server;
