//! Near-real-time: audit log entries (or Asset Inventory feed messages) pulled from Pub/Sub
//! trigger a re-read of the one workload, or the one policy, that changed.

pub mod message;
