//! File descriptors: inbound connections must never take the ones the audit needs for its own
//! requests to Google, its files and its Alertmanager pushes.

/// Descriptors kept out of the inbound budget: the runtime, logs, snapshot files and
/// Alertmanager pushes (the constant), plus one per concurrent Google request.
pub fn reserved(outbound_concurrency: usize) -> u64 {
    128 + outbound_concurrency as u64
}

/// Raises the soft RLIMIT_NOFILE to the hard limit (Go does the same at start) and returns
/// the soft limit now in force; `None` when it cannot be read.
pub fn raise_soft_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => Some(soft),
        Err(e) => {
            tracing::debug!(error = %e, "cannot raise the descriptor limit; keeping the one in force");
            rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
        }
    }
}

/// The connection cap in force: the configured one, lowered when the descriptor limit could
/// not hold it next to the reserve, so the cap and not the limit is what binds.
pub fn connection_cap(configured: usize, soft_limit: Option<u64>, reserved: u64) -> usize {
    match soft_limit {
        Some(soft) => configured.min(usize::try_from(soft.saturating_sub(reserved)).unwrap_or(usize::MAX)).max(1),
        None => configured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_the_reserve_free() {
        assert_eq!(connection_cap(1024, Some(65_536), reserved(16)), 1024);
        assert_eq!(connection_cap(1024, Some(256), reserved(16)), 112);
        assert_eq!(connection_cap(1024, Some(100), reserved(16)), 1, "always at least one");
        assert_eq!(connection_cap(1024, None, reserved(16)), 1024);
    }
}
