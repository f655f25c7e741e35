//! Files that hold long-lived private keys (the endpoint's TLS key): refused when every user
//! of the machine can read them, with the rule and wording of the Google credentials file
//! (src/collect/auth/resolve.rs).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// `Err` when `path` is readable by others (mode & 0o004). `what` names the file in the
/// message ("tls_server_config.key_file"); `allow_key` is the setting that accepts such a
/// file anyway, when there is one.
pub fn refuse_world_readable(path: &Path, what: &str, allow_key: Option<&str>) -> Result<(), String> {
    let mode = std::fs::metadata(path).map_err(|e| format!("{what} {}: {e}", path.display()))?.permissions().mode();
    if mode & 0o004 == 0 {
        return Ok(());
    }
    let or_allow = allow_key.map(|key| format!(", or set {key} = true")).unwrap_or_default();
    Err(format!(
        "{what} {}: the file is readable by every user (mode {:o}) and holds a secret: chmod o-r it{or_allow}",
        path.display(),
        mode & 0o777
    ))
}
