//! binauthz-auditor: is every Cloud Run workload protected by Binary Authorization?
//!
//! Data flows one way: [`collect`] (Google APIs or a snapshot) -> [`inventory`] (plain data)
//! -> [`evaluate`] (pure rules) -> [`report`] / [`metrics`] (what people and Prometheus read).

pub mod audit;
pub mod collect;
pub mod config;
pub mod evaluate;
pub mod google;
pub mod inventory;
pub mod schedule;
pub mod state;
