//! End-to-end tests of Veneer: one binary, one module per area, a shared harness.
//! They run the real components built from `plugins/` by `host/build.rs`; what
//! they share with the other suites is `veneer::test_support`.

mod cli;
mod hostile;
mod js_plugins;
mod plugins;
mod runtime;
mod server;
mod traces;
mod util;
mod wit_versions;

use veneer::test_support::{fake_shopify, smtp_server};
mod warm;
