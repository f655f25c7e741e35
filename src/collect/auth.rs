//! Access tokens through gcp_auth, with the timeout gcp_auth lacks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gcp_auth::{CustomServiceAccount, TokenProvider};
use tokio::sync::OnceCell;

use super::error::ApiError;
use crate::error::error_chain;

const SCOPES: &[&str] = &["https://www.googleapis.com/auth/cloud-platform"];

/// Where tokens come from: a service-account key file, or Application Default Credentials
/// (resolved on first use, since that may probe the metadata server).
pub struct Tokens {
    key_file: Option<PathBuf>,
    provider: OnceCell<Arc<dyn TokenProvider>>,
    timeout: Duration,
}

impl Tokens {
    /// Reads and checks the key file now, so a bad one fails at start-up, naming the path.
    pub fn new(key_file: Option<&Path>, allow_world_readable: bool, timeout: Duration) -> Result<Tokens, String> {
        let provider = OnceCell::new();
        if let Some(path) = key_file {
            let account = load_key_file(path, allow_world_readable)?;
            provider.set(Arc::new(account) as Arc<dyn TokenProvider>).ok();
        }
        Ok(Tokens { key_file: key_file.map(Path::to_owned), provider, timeout })
    }

    pub async fn token(&self) -> Result<String, ApiError> {
        let provider = self
            .provider
            .get_or_try_init(|| async {
                tokio::time::timeout(self.timeout, gcp_auth::provider())
                    .await
                    .map_err(|_| ApiError::Auth(format!("no credentials found within {:?}", self.timeout)))?
                    .map_err(|e| ApiError::Auth(format!("no Application Default Credentials: {}", error_chain(&e))))
            })
            .await?;
        let token = tokio::time::timeout(self.timeout, provider.token(SCOPES))
            .await
            .map_err(|_| ApiError::Auth(format!("token endpoint did not answer within {:?}", self.timeout)))?
            .map_err(|e| {
                let source = self.key_file.as_ref().map(|p| format!(" (key {})", p.display())).unwrap_or_default();
                ApiError::Auth(format!("{}{source}", error_chain(&e)))
            })?;
        Ok(token.as_str().to_owned())
    }
}

/// Loads a service-account key, naming the file in any error. A key other users can read is
/// refused unless explicitly allowed: it is a long-lived secret.
pub fn load_key_file(path: &Path, allow_world_readable: bool) -> Result<CustomServiceAccount, String> {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        std::fs::metadata(path).map_err(|e| format!("credentials file {}: {e}", path.display()))?.permissions().mode();
    if mode & 0o004 != 0 && !allow_world_readable {
        return Err(format!(
            "credentials file {} is readable by every user (mode {:o}): chmod o-r it, or set gcp.allow_world_readable_credentials = true",
            path.display(),
            mode & 0o777
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("credentials file {}: {e}", path.display()))?;
    CustomServiceAccount::from_json(&text).map_err(|e| {
        format!("credentials file {}: not a usable service-account key: {}", path.display(), error_chain(&e))
    })
}
