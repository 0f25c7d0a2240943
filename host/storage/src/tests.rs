//! Storage tests. Every behaviour test runs twice, against a real SQLite file in
//! a temporary directory and against a fresh PostgreSQL database that is dropped
//! afterwards (`crate::both_backends!`, `crate::testing::harness`). Tenant-boundary tests are written as
//! the attack.
//!
//! PostgreSQL comes from `VENEER_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, see `crate::testing`);
//! the user must be able to create databases.

mod archive;
mod availability;
mod clerk;
mod copy;
mod data;
mod email;
mod installations;
mod jobs;
mod lifecycle;
mod platform;
mod plugins;
mod rls;
mod shopify;
mod sqlite;
mod tls;
