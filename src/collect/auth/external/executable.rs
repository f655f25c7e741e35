//! Executable-sourced subject tokens (AIP-4117 `credential_source.executable`): a program run
//! without a shell, told about the exchange through `GOOGLE_EXTERNAL_ACCOUNT_*` variables,
//! killed after its timeout, whose JSON answer may be cached in `output_file`. Only allowed
//! with GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1 (checked at start, see `file`). Its output
//! and stderr never reach a message: only its exit status and its own `code` and `message`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::super::error::{AuthError, serde_message, shorten};
use super::super::secret::Secret;
use super::Exchange;

const MAX_OUTPUT_BYTES: u64 = 1 << 20;

pub struct Executable {
    /// The program (an absolute path) and its arguments, split on whitespace as Google's
    /// libraries do.
    pub argv: Vec<String>,
    pub timeout: Duration,
    pub output_file: Option<PathBuf>,
}

/// The executable's answer (AIP-4117 "Executable-sourced credentials").
#[derive(Deserialize)]
struct Response {
    version: Option<u64>,
    success: Option<bool>,
    token_type: Option<String>,
    id_token: Option<Secret>,
    saml_response: Option<Secret>,
    expiration_time: Option<i64>,
    code: Option<String>,
    message: Option<String>,
}

/// What an answer says.
enum Outcome {
    Token(Secret),
    /// A cached answer that is expired, unsuccessful or undated: run the program.
    Stale,
}

impl Executable {
    pub fn program(&self) -> &str {
        self.argv.first().map_or("", String::as_str)
    }

    pub async fn token(&self, exchange: &Exchange<'_>) -> Result<Secret, AuthError> {
        if let Some(path) = &self.output_file {
            match tokio::fs::read(path).await {
                Ok(bytes) if !bytes.is_empty() => {
                    let origin = format!("executable output file {}", path.display());
                    if let Outcome::Token(t) = read(&bytes, &origin, true, true)? {
                        return Ok(t);
                    }
                }
                // Missing or empty: nothing cached yet.
                _ => {}
            }
        }
        let origin = format!("executable {}", self.program());
        let output = self.run(exchange, &origin).await?;
        match read(&output, &origin, self.output_file.is_some(), false)? {
            Outcome::Token(t) => Ok(t),
            Outcome::Stale => Err(AuthError::permanent(format!("{origin}: the token it printed has expired"))),
        }
    }

    async fn run(&self, exchange: &Exchange<'_>, origin: &str) -> Result<Vec<u8>, AuthError> {
        let mut command = tokio::process::Command::new(self.program());
        command
            .args(self.argv.iter().skip(1))
            .env("GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE", exchange.audience)
            .env("GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE", exchange.subject_token_type)
            .env("GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE", "0")
            .env("GOOGLE_EXTERNAL_ACCOUNT_REVOKE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // What a helper says on stderr may hold anything, a token included: dropped.
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(email) = exchange.impersonated {
            command.env("GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL", email);
        }
        if let Some(path) = &self.output_file {
            command.env("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", path);
        }
        let mut child = command.spawn().map_err(|e| AuthError::permanent(format!("{origin}: cannot run it: {e}")))?;
        let stdout = child.stdout.take();
        let finished = tokio::time::timeout(self.timeout, async {
            let mut output = Vec::new();
            if let Some(stdout) = stdout {
                stdout.take(MAX_OUTPUT_BYTES).read_to_end(&mut output).await?;
            }
            child.wait().await.map(|status| (status, output))
        })
        .await;
        match finished {
            Err(_) => {
                let _ = child.start_kill();
                Err(AuthError::transient(format!("{origin}: no answer within {:?}; killed", self.timeout)))
            }
            Ok(Err(e)) => Err(AuthError::permanent(format!("{origin}: {e}"))),
            Ok(Ok((status, _))) if !status.success() => Err(AuthError::permanent(format!("{origin}: {status}"))),
            Ok(Ok((_, output))) => Ok(output),
        }
    }
}

/// Reads an answer. `needs_expiry`: an output file is in use, so the answer must say when it
/// expires. `cached`: read from the output file, where an unusable answer means "run again".
fn read(bytes: &[u8], origin: &str, needs_expiry: bool, cached: bool) -> Result<Outcome, AuthError> {
    let bad = |why: String| AuthError::permanent(format!("{origin}: {why}"));
    let r: Response =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a valid answer: {}", serde_message(&e))))?;
    match r.version {
        None => return Err(bad("the answer has no version".into())),
        Some(v) if v > 1 => return Err(bad(format!("answer version {v} is not supported (1 is)"))),
        _ => {}
    }
    let Some(success) = r.success else { return Err(bad("the answer has no success field".into())) };
    if !success {
        if cached {
            return Ok(Outcome::Stale);
        }
        return match (r.code, r.message) {
            (Some(code), Some(message)) => {
                Err(bad(format!("it reports failure {}: {}", shorten(&code), shorten(&message))))
            }
            _ => Err(bad("it reports failure without a code and message".into())),
        };
    }
    let token = match r.token_type.as_deref() {
        Some("urn:ietf:params:oauth:token-type:jwt" | "urn:ietf:params:oauth:token-type:id_token") => r.id_token,
        Some("urn:ietf:params:oauth:token-type:saml2") => r.saml_response,
        Some(other) => return Err(bad(format!("token_type {other:?} is not jwt, id_token or saml2"))),
        None => return Err(bad("the answer has no token_type".into())),
    };
    let Some(token) = token else { return Err(bad("the answer has no id_token or saml_response".into())) };
    match r.expiration_time {
        None if needs_expiry && cached => Ok(Outcome::Stale),
        None if needs_expiry => Err(bad("the answer has no expiration_time, which output_file needs".into())),
        Some(at) if at <= chrono::Utc::now().timestamp() => Ok(Outcome::Stale),
        _ => Ok(Outcome::Token(token)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(json: &str, needs_expiry: bool, cached: bool) -> Result<Option<String>, String> {
        match read(json.as_bytes(), "x", needs_expiry, cached) {
            Ok(Outcome::Token(t)) => Ok(Some(t.expose().to_owned())),
            Ok(Outcome::Stale) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn answers_are_read_as_aip_4117_says() {
        let later = chrono::Utc::now().timestamp() + 600;
        let ok = format!(
            r#"{{"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:id_token","id_token":"JWT","expiration_time":{later}}}"#
        );
        assert_eq!(outcome(&ok, true, false), Ok(Some("JWT".into())));
        let saml =
            r#"{"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:saml2","saml_response":"S"}"#;
        assert_eq!(outcome(saml, false, false), Ok(Some("S".into())));
        assert_eq!(outcome(saml, true, true), Ok(None), "a cached answer without expiry is run again");
        assert!(outcome(saml, true, false).unwrap_err().contains("no expiration_time"));
        let failed = r#"{"version":1,"success":false,"code":"401","message":"Caller not authorized."}"#;
        assert_eq!(outcome(failed, false, false).unwrap_err(), "x: it reports failure 401: Caller not authorized.");
        assert_eq!(outcome(failed, false, true), Ok(None));
        let expired = r#"{"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:jwt","id_token":"J","expiration_time":1}"#;
        assert_eq!(outcome(expired, false, true), Ok(None));
        assert!(outcome(r#"{"version":2,"success":true}"#, false, false).unwrap_err().contains("version 2"));
        assert!(outcome(r#"{"success":true}"#, false, false).unwrap_err().contains("no version"));
        let access = r#"{"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:access_token","id_token":"SECRET"}"#;
        assert!(!outcome(access, false, false).unwrap_err().contains("SECRET"));
        assert!(!outcome("SECRET-not-json", false, false).unwrap_err().contains("SECRET"));
    }
}
