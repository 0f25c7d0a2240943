//! The server end to end over HTTP: a real `veneer` server on loopback against a
//! real SQLite file or a fresh PostgreSQL database, driven with reqwest.

mod attacks;
mod edge;
mod email;
mod harness;
mod jobs;
mod lifecycle;
mod limits;
mod sandbox;
mod shopify;
mod traffic;
