//! Errors that stop the program (everything else is logged and survived).

use std::net::SocketAddr;

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The credentials file, the web config file, or anything else the config points at.
    #[error("{0}")]
    Setup(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("the HTTP server failed: {0}")]
    Serve(String),
}

impl AppError {
    /// The process exit status: sysexits' EX_CONFIG (78) for anything the operator fixes in
    /// the configuration or the files it names, so scripts and `systemctl status` tell it
    /// apart from an audit's own outcomes (1 violations, 2 incomplete) and from a crash.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) | AppError::Setup(_) => EXIT_CONFIG,
            AppError::Bind { .. } | AppError::Signals(_) | AppError::Serve(_) => 1,
        }
    }
}

/// sysexits.h EX_CONFIG.
pub const EXIT_CONFIG: u8 = 78;

/// An error and its causes on one line, each cause once (reqwest and gcp_auth nest the useful
/// part: "error sending request: connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out.replace('\n', " ")
}
