//! Workload Identity Federation (`external_account`, AIP-4117): a subject token from outside
//! Google (a file, a URL, an executable, or AWS) exchanged at the file's `token_url` for a
//! Google token (RFC 8693 token exchange). The optional service-account impersonation that
//! follows is an `Impersonate` hop built on top of this one.

pub mod aws;
pub mod executable;
pub mod sigv4;
pub mod subject;

use async_trait::async_trait;
use base64::Engine;
use reqwest::Method;
use url::Url;

use super::cache::{Mint, Minted};
use super::error::{AuthError, endpoint};
use super::http::{OAuthToken, TokenHttp, Via};
use super::secret::Secret;

pub const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";

/// Where the subject token comes from.
pub enum Subject {
    File(subject::FileSource),
    Url(subject::UrlSource),
    Executable(executable::Executable),
    Aws(aws::Aws),
}

/// What a subject-token source may need to know about the exchange.
pub struct Exchange<'a> {
    pub audience: &'a str,
    pub subject_token_type: &'a str,
    /// The service account the STS token will impersonate, if any (executables are told).
    pub impersonated: Option<&'a str>,
}

impl Subject {
    pub async fn token(&self, http: &TokenHttp, exchange: &Exchange<'_>) -> Result<Secret, AuthError> {
        let token = match self {
            Subject::File(s) => s.token().await,
            Subject::Url(s) => s.token(http).await,
            Subject::Executable(s) => s.token(exchange).await,
            Subject::Aws(s) => s.token(http, exchange.audience).await,
        }?;
        if token.is_empty() {
            return Err(AuthError::permanent(format!("{}: the subject token is empty", self.what())));
        }
        Ok(token)
    }

    pub fn what(&self) -> String {
        match self {
            Subject::File(s) => format!("subject token file {}", s.path.display()),
            Subject::Url(s) => format!("subject token URL {}", super::error::without_query(&s.url)),
            Subject::Executable(s) => format!("executable {}", s.program()),
            Subject::Aws(_) => "AWS credentials".into(),
        }
    }
}

pub struct Sts {
    pub token_url: Url,
    pub audience: String,
    pub subject_token_type: String,
    /// IAM when the token is only used to impersonate a service account, else cloud-platform
    /// (as Google's libraries do).
    pub scope: &'static str,
    /// client_id and client_secret: sent as HTTP Basic authentication.
    pub client: Option<(String, Option<Secret>)>,
    /// Workforce pools without a client: the project billed for the exchange.
    pub workforce_user_project: Option<String>,
    pub impersonated: Option<String>,
    pub subject: Subject,
}

#[async_trait]
impl Mint for Sts {
    async fn mint(&self, http: &TokenHttp) -> Result<Minted, AuthError> {
        let exchange = Exchange {
            audience: &self.audience,
            subject_token_type: &self.subject_token_type,
            impersonated: self.impersonated.as_deref(),
        };
        let subject = self.subject.token(http, &exchange).await?;
        let mut form = vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange".to_owned()),
            ("audience", self.audience.clone()),
            ("scope", self.scope.to_owned()),
            ("requested_token_type", "urn:ietf:params:oauth:token-type:access_token".to_owned()),
            ("subject_token", subject.expose().to_owned()),
            ("subject_token_type", self.subject_token_type.clone()),
        ];
        if let (Some(project), None) = (&self.workforce_user_project, &self.client) {
            // The JSON itself, form-encoded once (STS reference: "a serialized JSON object").
            form.push(("options", serde_json::json!({"userProject": project}).to_string()));
        }
        let basic = self.client.as_ref().map(|(id, secret)| {
            let pair = format!("{id}:{}", secret.as_ref().map_or("", Secret::expose));
            Secret::new(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
        });
        let mut secrets = vec![&subject];
        if let Some((_, Some(s))) = &self.client {
            secrets.push(s);
        }
        let answer: OAuthToken = http
            .json(
                Method::POST,
                &self.token_url,
                Via::for_url(&self.token_url),
                |r| {
                    let r = r.form(&form);
                    match &basic {
                        Some(b) => r.header(reqwest::header::AUTHORIZATION, b.expose()),
                        None => r,
                    }
                },
                &secrets,
            )
            .await?;
        answer.minted(&self.what())
    }

    fn what(&self) -> String {
        endpoint("POST", &self.token_url)
    }
}
