//! The API end to end against a real SQLite file or a fresh PostgreSQL
//! database. What a request alone decides (routing, extractors, error shapes,
//! ETags and gzip, the attack matrix, the plugin lifecycle, the sandbox at the
//! boundary) runs in process (`Server::in_process`: `veneer::router(state)` called
//! with `tower::ServiceExt::oneshot`); what needs a socket or the job workers
//! (the edge's connection handling, rate limits by URL, email, jobs, Shopify,
//! HTTPS)
//! runs a listening server (`Server::start`).

mod archives;
mod attacks;
mod base_reload;
mod clerk;
mod console;
mod dkim;
mod domains;
mod edge;
mod email;
mod harness;
mod installations;
mod instance_copy;
mod jobs;
mod lifecycle;
mod limits;
mod metrics;
mod policies;
mod records;
mod sandbox;
mod shadow;
mod shopify;
mod shopify_install;
mod shopify_privacy;
mod tenant_lifecycle;
mod tls;
mod traffic;
mod wit_versions;
