//! Shared test support: the fake Google server, resource builders, test configs, a harness,
//! and drivers for the real binary and the in-process daemon.
//!
//! Every test binary compiles all of it and uses a different part, so each declares it
//! `pub mod support;`: its public items are then an API, as a library's would be, and are not
//! reported unused in the binaries that do not call them (no `allow(dead_code)` needed),
//! while private items nothing calls still are.

pub mod attestation;
pub mod audit_log;
pub mod config;
pub mod daemon;
pub mod discovery;
pub mod fake_auth;
pub mod fake_google;
pub mod fake_pubsub;
pub mod gcloud;
pub mod gcloud_fake;
pub mod harness;
pub mod monitoring;
pub mod pki;
pub mod proxy;
pub mod pubsub;
pub mod resources;
pub mod run;
