//! Secrets (private keys, refresh tokens, client secrets, subject tokens, AWS keys, access
//! tokens) in a wrapper that cannot be printed, logged or serialised by accident: `Debug` says
//! `[redacted]`, there is no `Display` and no `Serialize`, and `expose` — used only where a
//! request is built — is the one way out.

use std::fmt;
use std::sync::Arc;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Arc::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// `text` with every non-empty secret in `secrets` replaced: a server that echoes what it was
/// sent must not get a secret into our error messages.
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.expose().len() >= 4 {
            out = out.replace(s.expose(), "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s: Secret = serde_json::from_str("\"1//refresh-me\"").unwrap();
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        assert_eq!(s.expose(), "1//refresh-me");
        assert_eq!(scrub("bad token 1//refresh-me here", &[&s]), "bad token [redacted] here");
    }
}
