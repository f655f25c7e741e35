//! AWS-sourced subject tokens (AIP-4117 "Determining the subject token in AWS"): the region and
//! keys from the environment or EC2's metadata service (IMDSv2 when configured), then a SigV4-
//! signed `GetCallerIdentity` request, serialised as JSON and URL-encoded, which Google's STS
//! replays to AWS. The request is never sent by us.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::super::error::{AuthError, endpoint};
use super::super::http::{TokenHttp, Via, decode};
use super::super::secret::Secret;
use super::sigv4;

pub struct Aws {
    /// EC2 metadata: the availability zone (`us-east-2b`; the region drops the last letter).
    pub region_url: Option<Url>,
    /// EC2 metadata: the role name, and below it the role's keys.
    pub credentials_url: Option<Url>,
    /// `https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15`.
    pub verification_url: String,
    pub imdsv2_url: Option<Url>,
}

struct Keys {
    access_key_id: String,
    secret_access_key: Secret,
    session_token: Option<Secret>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleKeys {
    access_key_id: String,
    secret_access_key: Secret,
    token: Option<Secret>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Aws {
    pub async fn token(&self, http: &TokenHttp, audience: &str) -> Result<Secret, AuthError> {
        let env_region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"));
        let env_keys = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret)) => Some(Keys {
                access_key_id,
                secret_access_key: Secret::new(secret),
                session_token: env("AWS_SESSION_TOKEN").map(Secret::new),
            }),
            _ => None,
        };
        // IMDSv2's session token, only when the metadata service is actually needed.
        let session = match &self.imdsv2_url {
            Some(url) if env_region.is_none() || env_keys.is_none() => Some(self.session(http, url).await?),
            _ => None,
        };
        let region = match env_region {
            Some(r) => r,
            None => self.region(http, session.as_ref()).await?,
        };
        let keys = match env_keys {
            Some(k) => k,
            None => self.role_keys(http, session.as_ref()).await?,
        };
        let url_text = self.verification_url.replace("{region}", &region);
        let url = Url::parse(&url_text)
            .map_err(|e| AuthError::permanent(format!("regional_cred_verification_url with region {region:?}: {e}")))?;
        let headers = BTreeMap::from([("x-goog-cloud-target-resource".to_string(), audience.to_owned())]);
        let keys_ref = sigv4::Keys {
            access_key_id: &keys.access_key_id,
            secret_access_key: keys.secret_access_key.expose(),
            session_token: keys.session_token.as_ref().map(Secret::expose),
        };
        let signed = sigv4::sign("POST", &url, headers, b"", &region, &keys_ref, chrono::Utc::now())
            .map_err(|e| AuthError::permanent(format!("cannot sign the AWS request: {e}")))?;
        let request = serde_json::json!({
            "url": url.as_str(),
            "method": "POST",
            "headers": signed.iter().map(|(k, v)| serde_json::json!({"key": k, "value": v})).collect::<Vec<_>>(),
        });
        Ok(Secret::new(url::form_urlencoded::byte_serialize(request.to_string().as_bytes()).collect::<String>()))
    }

    async fn session(&self, http: &TokenHttp, url: &Url) -> Result<Secret, AuthError> {
        let answer = http
            .send(Method::PUT, url, Via::for_url(url), |r| r.header("X-aws-ec2-metadata-token-ttl-seconds", "300"), &[])
            .await?;
        text(url, answer.body).map(Secret::new)
    }

    async fn get(&self, http: &TokenHttp, url: &Url, session: Option<&Secret>) -> Result<Vec<u8>, AuthError> {
        let secrets: Vec<&Secret> = session.into_iter().collect();
        let answer = http
            .send(
                Method::GET,
                url,
                Via::for_url(url),
                |r| match session {
                    Some(s) => r.header("X-aws-ec2-metadata-token", s.expose()),
                    None => r,
                },
                &secrets,
            )
            .await?;
        Ok(answer.body)
    }

    async fn region(&self, http: &TokenHttp, session: Option<&Secret>) -> Result<String, AuthError> {
        let Some(url) = &self.region_url else {
            return Err(AuthError::permanent(
                "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION, or credential_source.region_url",
            ));
        };
        let zone = text(url, self.get(http, url, session).await?)?;
        let mut region = zone.trim().to_owned();
        region.pop();
        if region.is_empty() || !region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(AuthError::permanent(format!("{}: not an availability zone", endpoint("GET", url))));
        }
        Ok(region)
    }

    async fn role_keys(&self, http: &TokenHttp, session: Option<&Secret>) -> Result<Keys, AuthError> {
        let Some(url) = &self.credentials_url else {
            return Err(AuthError::permanent(
                "no AWS keys: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or credential_source.url",
            ));
        };
        let role = text(url, self.get(http, url, session).await?)?.trim().to_owned();
        if role.is_empty() || !role.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)) {
            return Err(AuthError::permanent(format!("{}: not an IAM role name", endpoint("GET", url))));
        }
        let role_url = Url::parse(&format!("{}/{role}", url.as_str().trim_end_matches('/')))
            .map_err(|e| AuthError::permanent(format!("{}: {e}", endpoint("GET", url))))?;
        let body = self.get(http, &role_url, session).await?;
        let keys: RoleKeys = decode(&endpoint("GET", &role_url), &body)?;
        Ok(Keys {
            access_key_id: keys.access_key_id,
            secret_access_key: keys.secret_access_key,
            session_token: keys.token,
        })
    }
}

fn text(url: &Url, body: Vec<u8>) -> Result<String, AuthError> {
    String::from_utf8(body)
        .map_err(|_| AuthError::permanent(format!("{}: the answer is not UTF-8", endpoint("GET", url))))
}
