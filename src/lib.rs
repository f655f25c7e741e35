//! binauthz-auditor: is every Cloud Run workload protected by Binary Authorization?
//!
//! Data flows one way: [`collect`] (Google APIs or a snapshot) -> [`inventory`] (plain data)
//! -> [`evaluate`] (pure rules) -> [`report`] / [`metrics`] (what people and Prometheus read).
//! [`daemon`] schedules cycles and serves the results; [`cli`] dispatches the commands.

pub mod alertmanager;
pub mod attest;
pub mod audit;
pub mod build_info;
pub mod cli;
pub mod clock;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod error;
pub mod evaluate;
pub mod events;
#[cfg(test)]
pub mod fixtures;
pub mod google;
pub mod inventory;
pub mod logging;
pub mod metrics;
pub mod policy_edit;
pub mod report;
pub mod schedule;
pub mod secret_file;
pub mod server;
pub mod signals;
pub mod state;
pub mod suppress;
mod wire;
