//! File- and URL-sourced subject tokens (AIP-4117 `credential_source.file` / `.url`), as plain
//! text or a field of a JSON object. Read again for every exchange: the file rotates (a
//! Kubernetes projected token, say). Errors name the file or URL, never its content.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::super::error::{AuthError, endpoint};
use super::super::http::{TokenHttp, Via};
use super::super::secret::Secret;

/// A subject token that lasts longer than this would be odd; a bigger file is not read whole.
const MAX_SUBJECT_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Text,
    Json { field: String },
}

impl Format {
    /// The token in `content`, read from `origin` (for messages).
    pub fn extract(&self, content: &str, origin: &str) -> Result<Secret, AuthError> {
        match self {
            Format::Text => Ok(Secret::new(content)),
            Format::Json { field } => {
                let value: Value = serde_json::from_str(content)
                    .map_err(|_| AuthError::permanent(format!("{origin}: not JSON (format type json)")))?;
                match value.get(field) {
                    Some(Value::String(token)) => Ok(Secret::new(token.as_str())),
                    _ => Err(AuthError::permanent(format!("{origin}: no string field {field:?} in the JSON"))),
                }
            }
        }
    }
}

pub struct FileSource {
    pub path: PathBuf,
    pub format: Format,
}

impl FileSource {
    pub async fn token(&self) -> Result<Secret, AuthError> {
        let origin = format!("subject token file {}", self.path.display());
        let file =
            tokio::fs::File::open(&self.path).await.map_err(|e| AuthError::permanent(format!("{origin}: {e}")))?;
        let mut content = String::new();
        tokio::io::AsyncReadExt::read_to_string(
            &mut tokio::io::AsyncReadExt::take(file, MAX_SUBJECT_BYTES),
            &mut content,
        )
        .await
        .map_err(|e| AuthError::permanent(format!("{origin}: {e}")))?;
        self.format.extract(&content, &origin)
    }
}

pub struct UrlSource {
    pub url: Url,
    /// Header values may be secrets (an API key, say).
    pub headers: Vec<(String, Secret)>,
    pub format: Format,
}

impl UrlSource {
    pub async fn token(&self, http: &TokenHttp) -> Result<Secret, AuthError> {
        let what = endpoint("GET", &self.url);
        let secrets: Vec<&Secret> = self.headers.iter().map(|(_, v)| v).collect();
        let answer = http
            .send(
                Method::GET,
                &self.url,
                Via::for_url(&self.url),
                |mut r| {
                    for (name, value) in &self.headers {
                        r = r.header(name.as_str(), value.expose());
                    }
                    r
                },
                &secrets,
            )
            .await?;
        let content = String::from_utf8(answer.body)
            .map_err(|_| AuthError::permanent(format!("{what}: the answer is not UTF-8")))?;
        self.format.extract(&content, &what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_taken_as_is_and_json_by_field() {
        assert_eq!(Format::Text.extract("abc", "f").unwrap().expose(), "abc");
        let json = Format::Json { field: "id_token".into() };
        assert_eq!(json.extract(r#"{"id_token":"jwt"}"#, "f").unwrap().expose(), "jwt");
        let e = json.extract(r#"{"access_token":"SECRET"}"#, "u").unwrap_err().to_string();
        assert_eq!(e, "u: no string field \"id_token\" in the JSON");
        let e = json.extract("SECRET", "u").unwrap_err().to_string();
        assert!(!e.contains("SECRET"), "{e}");
    }
}
