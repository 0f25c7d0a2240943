//! End-to-end tests of Veneer: one binary, one module per area, a shared harness.
//! They run the real components built from `plugins/` by `host/build.rs`.

mod cli;
mod fake_shopify;
mod hostile;
mod plugins;
mod runtime;
mod server;
mod smtp_server;
mod util;
mod warm;
