//! Shared test support: the fake Google server, resource builders and a driver for the real
//! binary. Each test crate uses a different part of it.
#![allow(dead_code)]

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
