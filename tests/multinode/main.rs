//! Several `veneer serve` processes against one PostgreSQL: cache invalidation
//! across nodes, the shared job queue surviving a killed node, and a database
//! restart under load. Real processes (the `veneer` binary), real PostgreSQL,
//! a real SMTP server.
//!
//! They never touch the machine's PostgreSQL cluster beyond creating and
//! dropping databases of their own; the restart test bounces a private cluster
//! (`harness::PrivateCluster`). Every test holds [`harness::serial`]: they
//! spawn several processes each. Shared support: `veneer::test_support`.

mod base;
mod harness;
mod invalidation;
mod jobs;
mod rate;
mod restart;
mod rollout;

use veneer::test_support::smtp_server;
