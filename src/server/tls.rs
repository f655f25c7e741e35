//! The TLS configuration a listener hands to each new handshake; replaced in place when a
//! reload rotates the certificate under the same client-certificate policy.

use std::sync::{Arc, RwLock};

pub struct TlsSwitch(RwLock<Arc<rustls::ServerConfig>>);

impl TlsSwitch {
    pub fn new(config: Arc<rustls::ServerConfig>) -> TlsSwitch {
        TlsSwitch(RwLock::new(config))
    }

    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// New handshakes use `config`; established connections keep the session they have.
    pub fn store(&self, config: Arc<rustls::ServerConfig>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = config;
    }
}
