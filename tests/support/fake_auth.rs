//! The fake Google's credential endpoints, each checking what Google checks and issuing tokens
//! that name their identity: the OAuth 2.0 token endpoint (JWT-bearer and refresh grants), STS
//! token exchange (with AWS SigV4 subject tokens verified by its own signer), IAM Credentials
//! `generateAccessToken` (the caller must be the source identity, every hop of the delegation
//! chain must hold Token Creator), a URL subject-token source, the GCE metadata server and AWS's
//! IMDSv2. Every token request is recorded for assertions.

// Handlers short-circuit with the `Response` Google would send (`Answer`); its size does not
// matter in a test fake.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine;
use ring::{digest, hmac};
use serde_json::{Value, json};

use super::fake_google::Shared;
use super::fake_google::shapes::{Answer, google_error, json};
use super::fake_google::world::World;

const TEST_PUBLIC_KEY_DER: &[u8] = include_bytes!("../fixtures/test-only-service-account-key.pub.der");

pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const IAM: &str = "https://www.googleapis.com/auth/iam";

/// A person the OAuth endpoint knows (what `gcloud auth application-default login` produced).
#[derive(Debug, Clone)]
pub struct FakeUser {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    pub email: String,
}

/// An EC2 instance's metadata service and the role's keys.
#[derive(Debug, Clone)]
pub struct FakeAws {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub role: String,
    pub zone: String,
    /// Who STS says a correctly signed request is.
    pub principal: String,
    /// Demand an IMDSv2 session token on metadata GETs.
    pub imdsv2: bool,
}

/// Who is who to the credential endpoints: people, service accounts and who may impersonate
/// whom, federated subjects, the metadata servers.
#[derive(Debug, Default)]
pub struct Credentials {
    pub users: Vec<FakeUser>,
    /// (caller, target): the caller holds roles/iam.serviceAccountTokenCreator on the target.
    pub token_creators: Vec<(String, String)>,
    /// Subject tokens STS accepts, and the federated principal each becomes.
    pub subjects: BTreeMap<String, String>,
    /// The audience STS expects.
    pub audience: Option<String>,
    /// Basic authentication STS demands (client_id, client_secret).
    pub sts_client: Option<(String, String)>,
    /// What `GET /subject/{text,json}` serves, and the header it demands.
    pub url_subject: Option<(String, (String, String))>,
    /// The metadata server's default service account; `None`: there is no metadata server.
    pub metadata_identity: Option<String>,
    pub aws: Option<FakeAws>,
}

#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// "oauth2", "sts", "iamcredentials", "subject", "metadata" or "imds".
    pub endpoint: &'static str,
    pub path: String,
    /// The form fields, or the JSON body.
    pub form: BTreeMap<String, String>,
    pub json: Value,
    pub headers: BTreeMap<String, String>,
    /// The identity of the bearer token it carried, if any.
    pub caller: Option<String>,
}

/// Paths the general bearer check leaves alone: they authenticate in their own way.
pub fn is_credential_path(path: &str) -> bool {
    path == "/token"
        || path == "/v1/token"
        || path.starts_with("/v1/projects/-/serviceAccounts/")
        || path.starts_with("/subject/")
        || path.starts_with("/computeMetadata/")
        || path.starts_with("/latest/")
}

pub fn routes(router: Router<Shared>) -> Router<Shared> {
    router
        .route("/token", post(oauth_token))
        .route("/v1/token", post(sts))
        .route("/v1/projects/-/serviceAccounts/{name}", post(generate_access_token))
        .route("/subject/{format}", get(url_subject))
        .route("/computeMetadata/v1/instance/service-accounts/default/{what}", get(metadata))
        .route("/latest/api/token", put(imds_session))
        .route("/latest/meta-data/placement/availability-zone", get(imds_zone))
        .route("/latest/meta-data/iam/security-credentials", get(imds_role))
        .route("/latest/meta-data/iam/security-credentials/{role}", get(imds_keys))
}

const RECORDED_HEADERS: [&str; 6] = [
    "authorization",
    "x-goog-user-project",
    "metadata-flavor",
    "x-aws-ec2-metadata-token",
    "x-aws-ec2-metadata-token-ttl-seconds",
    "content-type",
];

fn record(w: &mut World, endpoint: &'static str, path: &str, headers: &HeaderMap, body: &str) {
    let form: BTreeMap<String, String> = if headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
    {
        url::form_urlencoded::parse(body.as_bytes()).into_owned().collect()
    } else {
        BTreeMap::new()
    };
    let headers_kept: BTreeMap<String, String> = RECORDED_HEADERS
        .iter()
        .filter_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()).map(|v| (h.to_string(), v.to_owned())))
        .collect();
    let caller = bearer(headers).and_then(|t| w.seen.identity(&t));
    w.seen.token_requests.push(TokenRequest {
        endpoint,
        path: path.to_owned(),
        form,
        json: serde_json::from_str(body).unwrap_or(Value::Null),
        headers: headers_kept,
        caller,
    });
}

pub fn bearer(headers: &HeaderMap) -> Option<String> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::to_owned)
}

fn oauth_error(error: &str, description: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": error, "error_description": description}))).into_response()
}

/// A new token for `identity`, and its lifetime in seconds as the behaviour says.
fn issue(w: &mut World, identity: &str) -> (String, u64) {
    (w.issue(identity, None), w.behaviour.token_expires_in.unwrap_or(3599))
}

fn token_body(w: &mut World, identity: &str) -> Response {
    let (token, expires_in) = issue(w, identity);
    json(json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
}

/// `POST /token`: the JWT-bearer grant (checks the assertion's signature against the test key
/// and its claims) and the refresh grant (checks the client and refresh token).
async fn oauth_token(State(world): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut w = world.lock().unwrap();
    record(&mut w, "oauth2", "/token", &headers, &body);
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    if !is_form(&headers) {
        return oauth_error("invalid_request", "form-encoded body required");
    }
    match form.get("grant_type").map(String::as_str) {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let Some(assertion) = form.get("assertion") else { return oauth_error("invalid_request", "no assertion") };
            match verify_assertion(assertion) {
                Ok(issuer) => token_body(&mut w, &issuer),
                Err(why) => {
                    eprintln!("fake token endpoint refused an assertion: {why}");
                    oauth_error("invalid_grant", "Invalid JWT Signature.")
                }
            }
        }
        Some("refresh_token") => {
            let found = w
                .estate
                .credentials
                .users
                .iter()
                .find(|u| {
                    form.get("client_id") == Some(&u.client_id)
                        && form.get("client_secret") == Some(&u.client_secret)
                        && form.get("refresh_token") == Some(&u.refresh_token)
                })
                .map(|u| u.email.clone());
            match found {
                Some(email) => token_body(&mut w, &email),
                None => oauth_error("invalid_grant", "Token has been expired or revoked."),
            }
        }
        _ => oauth_error("unsupported_grant_type", "Invalid grant_type"),
    }
}

/// `POST /v1/token`: RFC 8693 token exchange as Google's STS does it.
async fn sts(State(world): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut w = world.lock().unwrap();
    record(&mut w, "sts", "/v1/token", &headers, &body);
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if !is_form(&headers)
        || field("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange"
        || field("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token"
        || !matches!(field("scope"), CLOUD_PLATFORM | IAM)
    {
        return oauth_error("invalid_request", "not a token exchange this STS accepts");
    }
    if w.estate.credentials.audience.as_deref().is_some_and(|a| a != field("audience")) {
        return oauth_error(
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        );
    }
    if let Some((id, secret)) = &w.estate.credentials.sts_client {
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")));
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return oauth_error("invalid_client", "The client is not authorized.");
        }
    }
    let principal = if field("subject_token_type") == "urn:ietf:params:aws:token-type:aws4_request" {
        match verify_aws(&w, field("subject_token"), field("audience")) {
            Ok(p) => p,
            Err(why) => {
                eprintln!("fake STS refused an AWS subject token: {why}");
                return oauth_error("invalid_grant", "The AWS request signature is invalid.");
            }
        }
    } else {
        match w.estate.credentials.subjects.get(field("subject_token")) {
            Some(p) => p.clone(),
            None => return oauth_error("invalid_grant", "The subject token is invalid."),
        }
    };
    let (token, expires_in) = issue(&mut w, &principal);
    json(json!({"access_token": token, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer", "expires_in": expires_in}))
}

/// `POST /v1/projects/-/serviceAccounts/{sa}:generateAccessToken`.
async fn generate_access_token(
    State(world): State<Shared>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut w = world.lock().unwrap();
    record(&mut w, "iamcredentials", &format!("/v1/projects/-/serviceAccounts/{name}"), &headers, &body);
    let Some(target) = name.strip_suffix(":generateAccessToken") else {
        return google_error(404, "NOT_FOUND", "no such method", None);
    };
    let caller = bearer(&headers).filter(|t| w.fresh(t)).and_then(|t| w.seen.identity(&t));
    let Some(caller) = caller else {
        return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", None);
    };
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.", None);
    };
    if request["scope"] != json!([CLOUD_PLATFORM]) {
        return google_error(400, "INVALID_ARGUMENT", "Scope must be cloud-platform in this fake.", None);
    }
    let lifetime = request["lifetime"].as_str().unwrap_or("");
    let valid_lifetime =
        lifetime.strip_suffix('s').and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| (1..=43200).contains(&n));
    if !request["lifetime"].is_null() && !valid_lifetime {
        return google_error(400, "INVALID_ARGUMENT", "Invalid value at 'lifetime'.", None);
    }
    let mut chain = vec![caller.clone()];
    for d in request["delegates"].as_array().cloned().unwrap_or_default() {
        // "The - wildcard character is required" (IAM Credentials reference).
        match d.as_str().and_then(|d| d.strip_prefix("projects/-/serviceAccounts/")) {
            Some(email) => chain.push(email.to_owned()),
            None => return google_error(400, "INVALID_ARGUMENT", "Invalid form of delegates.", None),
        }
    }
    chain.push(target.to_owned());
    for pair in chain.windows(2) {
        if !w.estate.credentials.token_creators.contains(&(pair[0].clone(), pair[1].clone())) {
            return google_error(
                403,
                "PERMISSION_DENIED",
                &format!(
                    "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist): {} on {}",
                    pair[0], pair[1]
                ),
                None,
            );
        }
    }
    let valid_for = w.behaviour.impersonated_valid_for;
    let token = w.issue(target, valid_for);
    let seconds = w.behaviour.impersonated_expires_in.or(w.behaviour.token_expires_in).unwrap_or(3600);
    let expire = chrono::Utc::now() + chrono::Duration::seconds(seconds as i64);
    axum::Json(json!({"accessToken": token, "expireTime": expire.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}))
        .into_response()
}

async fn url_subject(State(world): State<Shared>, UrlPath(format): UrlPath<String>, headers: HeaderMap) -> Response {
    let mut w = world.lock().unwrap();
    record(&mut w, "subject", &format!("/subject/{format}"), &headers, "");
    let Some((token, (name, value))) = w.estate.credentials.url_subject.clone() else {
        return (StatusCode::NOT_FOUND, "no URL subject source").into_response();
    };
    if headers.get(name.as_str()).and_then(|v| v.to_str().ok()) != Some(value.as_str()) {
        return (StatusCode::UNAUTHORIZED, "missing header").into_response();
    }
    match format.as_str() {
        "text" => token.into_response(),
        _ => axum::Json(json!({"id_token": token, "token_type": "Bearer"})).into_response(),
    }
}

async fn metadata(State(world): State<Shared>, UrlPath(what): UrlPath<String>, headers: HeaderMap) -> Response {
    let mut w = world.lock().unwrap();
    record(&mut w, "metadata", &format!("/computeMetadata/v1/instance/service-accounts/default/{what}"), &headers, "");
    let Some(identity) = w.estate.credentials.metadata_identity.clone() else {
        return (StatusCode::NOT_FOUND, "not on Google Cloud").into_response();
    };
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return (StatusCode::FORBIDDEN, "Missing Metadata-Flavor:Google header.").into_response();
    }
    let body = match what.as_str() {
        "token" => {
            let (token, expires_in) = issue(&mut w, &identity);
            json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}).to_string()
        }
        "email" => identity,
        _ => return (StatusCode::NOT_FOUND, "no such entry").into_response(),
    };
    ([("metadata-flavor", "Google")], body).into_response()
}

fn imds_check(w: &mut World, path: &str, headers: &HeaderMap) -> Result<FakeAws, Response> {
    record(w, "imds", path, headers, "");
    let aws = w.estate.credentials.aws.clone().ok_or_else(|| (StatusCode::NOT_FOUND, "no IMDS").into_response())?;
    let session = headers.get("x-aws-ec2-metadata-token").and_then(|v| v.to_str().ok());
    if aws.imdsv2 && session != Some("imds-session") {
        return Err((StatusCode::UNAUTHORIZED, "").into_response());
    }
    Ok(aws)
}

async fn imds_session(State(world): State<Shared>, headers: HeaderMap) -> Response {
    let mut w = world.lock().unwrap();
    record(&mut w, "imds", "/latest/api/token", &headers, "");
    if headers.get("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
        return (StatusCode::BAD_REQUEST, "").into_response();
    }
    "imds-session".into_response()
}

async fn imds_zone(State(world): State<Shared>, headers: HeaderMap) -> Answer {
    let mut w = world.lock().unwrap();
    Ok(imds_check(&mut w, "/latest/meta-data/placement/availability-zone", &headers)?.zone.into_response())
}

async fn imds_role(State(world): State<Shared>, headers: HeaderMap) -> Answer {
    let mut w = world.lock().unwrap();
    Ok(imds_check(&mut w, "/latest/meta-data/iam/security-credentials", &headers)?.role.into_response())
}

async fn imds_keys(State(world): State<Shared>, UrlPath(role): UrlPath<String>, headers: HeaderMap) -> Answer {
    let mut w = world.lock().unwrap();
    let aws = imds_check(&mut w, &format!("/latest/meta-data/iam/security-credentials/{role}"), &headers)?;
    if aws.role != role {
        return Err((StatusCode::NOT_FOUND, "").into_response());
    }
    Ok(json(json!({
        "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": aws.access_key_id,
        "SecretAccessKey": aws.secret_access_key, "Token": aws.session_token,
        "Expiration": "2100-01-01T00:00:00Z"})))
}

/// Checks an AWS subject token as Google's STS would before replaying it to AWS: a signed
/// `GetCallerIdentity` POST for the audience, its SigV4 signature recomputed here with the
/// secret key this fake knows (its own signer, written apart from the auditor's).
fn verify_aws(w: &World, subject: &str, audience: &str) -> Result<String, String> {
    let aws = w.estate.credentials.aws.as_ref().ok_or("no AWS account in this fake")?;
    let decoded = url::form_urlencoded::parse(format!("x={subject}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or("not URL-encoded")?;
    let request: Value = serde_json::from_str(&decoded).map_err(|e| format!("not JSON: {e}"))?;
    let headers: BTreeMap<String, String> = request["headers"]
        .as_array()
        .ok_or("no headers")?
        .iter()
        .map(|h| (h["key"].as_str().unwrap_or("").to_owned(), h["value"].as_str().unwrap_or("").to_owned()))
        .collect();
    if request["method"] != "POST" {
        return Err("not a POST".into());
    }
    let url = url::Url::parse(request["url"].as_str().ok_or("no url")?).map_err(|e| e.to_string())?;
    let zone_region = &aws.zone[..aws.zone.len() - 1];
    if url.host_str() != Some(&format!("sts.{zone_region}.amazonaws.com"))
        || url.query() != Some("Action=GetCallerIdentity&Version=2011-06-15")
    {
        return Err(format!("unexpected url {url}"));
    }
    if headers.get("x-goog-cloud-target-resource").map(String::as_str) != Some(audience) {
        return Err("the target resource is not the audience".into());
    }
    if headers.get("x-amz-security-token") != aws.session_token.as_ref() {
        return Err("wrong session token".into());
    }
    let auth = headers.get("Authorization").ok_or("no Authorization")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 Credential=").ok_or("not SigV4")?;
    let (credential, rest) = rest.split_once(", SignedHeaders=").ok_or("no SignedHeaders")?;
    let (signed, signature) = rest.split_once(", Signature=").ok_or("no Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope.as_slice() else { return Err("bad scope".into()) };
    if *key_id != aws.access_key_id || *region != zone_region || *service != "sts" {
        return Err("wrong key, region or service".into());
    }
    if !signed.split(';').any(|h| h == "x-goog-cloud-target-resource") {
        return Err("the target resource is not signed".into());
    }
    let amz_date = headers.get("x-amz-date").ok_or("no x-amz-date")?;
    let canonical_headers: String =
        signed.split(';').map(|h| format!("{h}:{}\n", headers.get(h).map(String::as_str).unwrap_or(""))).collect();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let canonical = format!(
        "POST\n/\nAction=GetCallerIdentity&Version=2011-06-15\n{canonical_headers}\n{signed}\n{}",
        hex(digest::digest(&digest::SHA256, b"").as_ref())
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/sts/aws4_request\n{}",
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let mac = |k: &[u8], d: &str| hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, k), d.as_bytes()).as_ref().to_vec();
    let mut key = format!("AWS4{}", aws.secret_access_key).into_bytes();
    for part in [*date, *region, "sts", "aws4_request"] {
        key = mac(&key, part);
    }
    if hex(&mac(&key, &to_sign)) != signature {
        return Err("signature mismatch".into());
    }
    Ok(aws.principal.clone())
}

/// Checks a JWT-bearer assertion's signature against the test key and its claims; returns its
/// issuer (the service account the key belongs to).
pub fn verify_assertion(jwt: &str) -> Result<String, String> {
    // gcp_auth pads its base64url segments; tolerate both forms.
    let decode = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|e| e.to_string())
    };
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else { return Err("not three segments".into()) };
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, TEST_PUBLIC_KEY_DER);
    key.verify(format!("{header}.{claims}").as_bytes(), &decode(signature)?)
        .map_err(|_| "bad signature".to_string())?;
    let claims: Value = serde_json::from_slice(&decode(claims)?).map_err(|e| e.to_string())?;
    let scope = claims["scope"].as_str().unwrap_or("");
    if !scope.split(' ').any(|s| s == "https://www.googleapis.com/auth/cloud-platform") {
        return Err(format!("unexpected scope {scope:?}"));
    }
    if !claims["aud"].as_str().is_some_and(|a| a.ends_with("/token")) {
        return Err(format!("unexpected audience {}", claims["aud"]));
    }
    let now = chrono::Utc::now().timestamp();
    if !(claims["iat"].as_i64().is_some_and(|t| (t - now).abs() < 300)
        && claims["exp"].as_i64().is_some_and(|t| t > now))
    {
        return Err("iat or exp out of range".into());
    }
    claims["iss"].as_str().filter(|i| i.contains('@')).map(str::to_owned).ok_or_else(|| "no issuer".to_string())
}
