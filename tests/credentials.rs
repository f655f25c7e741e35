//! Credentials as Google Cloud operators have them, end to end against the real binary and the
//! fake Google: key files, a person's gcloud login, impersonation with delegates, gcloud's
//! impersonated ADC file, Workload Identity Federation (file, URL, executable, AWS), the
//! metadata server; the quota project on every API call; token requests through the same proxy
//! as API calls (metadata servers excepted); tokens refreshed mid-cycle; refusals at start; no
//! secret anywhere. Each binary runs with exactly the environment the test gives it.

pub mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use support::config::TestConfig;
use support::fake_auth::{CLOUD_PLATFORM, FakeAws, FakeUser, IAM};
use support::fake_google::world::{Behaviour, World};
use support::harness::Harness;
use support::proxy::Proxy;
use support::resources::*;
use support::run::{BIN, Daemon, free_port};
use tokio::process::Command;

const REGION: &str = "us-central1";
const PERSON: &str = "person@example.com";
const HOP: &str = "hop@p.iam.gserviceaccount.com";
const AUDITOR: &str = "auditor@host.iam.gserviceaccount.com";
const KEY_ACCOUNT: &str = "auditor@auditor-host.iam.gserviceaccount.com";
const WIF_ACCOUNT: &str = "wif@p.iam.gserviceaccount.com";
const VM_ACCOUNT: &str = "vm@p.iam.gserviceaccount.com";
const PRINCIPAL: &str =
    "principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/subject/ci";
const AUDIENCE: &str = "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/prov";
const CLIENT_SECRET: &str = "CSECRET-d0-not-print";
const REFRESH_TOKEN: &str = "1//RTOKEN-d0-not-print";
const SUBJECT: &str = "SUBJECT-JWT-d0-not-print";
const URL_HEADER_SECRET: &str = "HEADER-KEY-d0-not-print";
const AWS_SECRET: &str = "AWS-SECRET-d0-not-print";
const AWS_SESSION: &str = "AWS-SESSION-d0-not-print";

/// Everything that must never be printed.
const SECRETS: [&str; 8] =
    [CLIENT_SECRET, REFRESH_TOKEN, SUBJECT, URL_HEADER_SECRET, AWS_SECRET, AWS_SESSION, "ya29.", "PRIVATE KEY"];

fn world() -> World {
    let mut world = World::default();
    let p = world.project("p1");
    p.locations = vec![REGION.into()];
    p.policy = Some(policy_exempting_functions("p1", REGION));
    p.services = vec![service("p1", REGION, "web")];
    p.jobs = vec![job("p1", REGION, "etl")];
    p.functions = vec![function("p1", REGION, "hook")];
    let credentials = &mut world.estate.credentials;
    credentials.users.push(FakeUser {
        client_id: "764086051850-client.apps.googleusercontent.com".into(),
        client_secret: CLIENT_SECRET.into(),
        refresh_token: REFRESH_TOKEN.into(),
        email: PERSON.into(),
    });
    credentials.token_creators = vec![(PERSON.into(), HOP.into()), (HOP.into(), AUDITOR.into())];
    credentials.subjects.insert(SUBJECT.into(), PRINCIPAL.into());
    credentials.audience = Some(AUDIENCE.into());
    world
}

/// A harness plus the environment the binary gets: no credentials of the machine's, a home
/// and gcloud folder of the test's own, GCE_METADATA_HOST on the fake (so any fall-back to
/// the metadata server would be seen).
struct Setup {
    h: Harness,
    env: Vec<(String, String)>,
}

impl Setup {
    async fn new(world: World) -> Setup {
        let h = Harness::start(world).await;
        for sub in ["home", "gcloud"] {
            std::fs::create_dir_all(h.path(sub)).unwrap();
        }
        let env = vec![
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
            ("HOME".to_owned(), h.path("home").display().to_string()),
            ("CLOUDSDK_CONFIG".to_owned(), h.path("gcloud").display().to_string()),
            ("GCE_METADATA_HOST".to_owned(), h.fake.addr.to_string()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ];
        Setup { h, env }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.h.path(name)
    }

    fn set(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// Writes a credentials file readable by its owner only.
    fn file(&self, name: &str, value: &Value) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, serde_json::to_string_pretty(value).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        path
    }

    fn url(&self) -> &str {
        &self.h.fake.base_url
    }

    /// A config with every endpoint on the fake and no credentials of its own; `gcp` is added
    /// to its [gcp] table.
    fn config(&self, gcp: &str) -> PathBuf {
        let url = self.url();
        let config = TestConfig::on(&self.h.fake, &["p1"])
            .set("gcp.request_timeout", "5s")
            .set("gcp.token_timeout", "10s")
            .set("gcp.max_retries", 2)
            .set("gcp.endpoints.oauth2", url)
            .set("gcp.endpoints.iamcredentials", url)
            .set("server.listen", format!("127.0.0.1:{}", free_port()))
            .merge(&format!("[gcp]\n{gcp}"));
        self.h.write(&config, "config.toml")
    }

    async fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN).args(args).env_clear().envs(self.env.iter().cloned()).output().await.expect("run the binary")
    }

    /// `audit --format json`: (exit code, report, stderr).
    async fn audit(&self, config: &Path) -> (i32, Value, String) {
        let out = self.run(&["audit", "--config", config.to_str().unwrap(), "--format", "json"]).await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("no JSON ({e}); stderr: {stderr}"));
        (out.status.code().expect("exited"), report, stderr)
    }

    async fn check_config(&self, config: &Path) -> (i32, String, String) {
        let out = self.run(&["check-config", "--config", config.to_str().unwrap()]).await;
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code().expect("exited"), stdout.into_owned(), stderr.into_owned())
    }

    /// Asserts the audit was complete and every API request was made as `identity`, with
    /// `quota` as its x-goog-user-project; returns how many there were.
    async fn audit_as(&self, config: &Path, identity: &str, quota: Option<&str>) -> usize {
        let (_, report, stderr) = self.audit(config).await;
        assert_eq!(report["complete"], true, "{stderr}\n{report:#}");
        let api = self.h.fake.api_requests();
        assert!(api.len() >= 4, "{api:?}");
        for r in &api {
            assert_eq!(r.identity.as_deref(), Some(identity), "{} was made as {:?}", r.path, r.identity);
            assert_eq!(r.user_project.as_deref(), quota, "{}", r.path);
        }
        assert_no_secrets(&format!("{report}{stderr}"));
        api.len()
    }

    fn token_requests(&self, endpoint: &str) -> Vec<support::fake_auth::TokenRequest> {
        self.h.fake.token_requests(endpoint)
    }
}

fn assert_no_secrets(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret:?} leaked:\n{text}");
    }
}

fn person() -> Value {
    json!({"account": "", "client_id": "764086051850-client.apps.googleusercontent.com", "client_secret": CLIENT_SECRET,
           "quota_project_id": "from-file", "refresh_token": REFRESH_TOKEN, "type": "authorized_user",
           "universe_domain": "googleapis.com"})
}

/// Exactly what `gcloud auth application-default login --impersonate-service-account=HOP,AUDITOR` writes.
fn gcloud_impersonated() -> Value {
    let mut source = person();
    source.as_object_mut().unwrap().remove("quota_project_id");
    json!({"delegates": [HOP],
           "service_account_impersonation_url": format!("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{AUDITOR}:generateAccessToken"),
           "source_credentials": source, "type": "impersonated_service_account"})
}

fn federation(s: &Setup, source: Value) -> Value {
    json!({"type": "external_account", "audience": AUDIENCE,
           "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
           "token_url": format!("{}/v1/token", s.url()), "credential_source": source})
}

fn with_impersonation(mut file: Value, s: &Setup, lifetime: Option<u64>) -> Value {
    file["service_account_impersonation_url"] =
        json!(format!("{}/v1/projects/-/serviceAccounts/{WIF_ACCOUNT}:generateAccessToken", s.url()));
    if let Some(l) = lifetime {
        file["service_account_impersonation"] = json!({"token_lifetime_seconds": l});
    }
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_makes_every_call_as_its_account_with_the_configured_quota_project() {
    let s = Setup::new(world()).await;
    let key = s.h.fake.write_key_file(s.h.dir());
    let config = s.config(&format!("credentials_file = {key:?}\nquota_project = \"bill-1\""));
    s.audit_as(&config, KEY_ACCOUNT, Some("bill-1")).await;
    let grants = s.token_requests("oauth2");
    assert_eq!(grants.len(), 1, "one token for the whole cycle");
    assert_eq!(grants[0].form["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    assert!(!grants[0].headers.contains_key("x-goog-user-project"), "token requests carry no quota project");
    assert!(s.token_requests("metadata").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_gcloud_login_is_refreshed_and_its_quota_project_can_be_overridden() {
    let mut s = Setup::new(world()).await;
    // gcloud's well-known file, found through CLOUDSDK_CONFIG.
    s.file("gcloud/application_default_credentials.json", &person());
    let config = s.config("");
    s.audit_as(&config, PERSON, Some("from-file")).await;
    let grants = s.token_requests("oauth2");
    assert_eq!(grants.len(), 1);
    let form: Vec<(&str, &str)> = grants[0].form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        form,
        [
            ("client_id", "764086051850-client.apps.googleusercontent.com"),
            ("client_secret", CLIENT_SECRET),
            ("grant_type", "refresh_token"),
            ("refresh_token", REFRESH_TOKEN),
        ]
    );
    assert_eq!(grants[0].path, "/token");

    s.h.fake.forget_requests();
    s.set("GOOGLE_CLOUD_QUOTA_PROJECT", "from-env");
    s.audit_as(&config, PERSON, Some("from-env")).await;
    s.h.fake.forget_requests();
    let config = s.config("quota_project = \"from-config\"");
    s.audit_as(&config, PERSON, Some("from-config")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_through_a_delegate_makes_every_api_call_as_the_auditor_account() {
    let mut s = Setup::new(world()).await;
    let file = s.file("person.json", &person());
    s.set("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap());
    let config = s.config(&format!("impersonate_service_account = \"{AUDITOR}\"\ndelegates = [\"{HOP}\"]"));
    let calls = s.audit_as(&config, AUDITOR, Some("from-file")).await;

    let minted = s.token_requests("iamcredentials");
    assert_eq!(minted.len(), 1, "one impersonated token for {calls} calls");
    assert_eq!(minted[0].path, format!("/v1/projects/-/serviceAccounts/{AUDITOR}:generateAccessToken"));
    assert_eq!(minted[0].caller.as_deref(), Some(PERSON), "the source identity asks");
    assert_eq!(
        minted[0].json,
        json!({"delegates": [format!("projects/-/serviceAccounts/{HOP}")], "scope": [CLOUD_PLATFORM], "lifetime": "3600s"})
    );
    assert!(!minted[0].headers.contains_key("x-goog-user-project"), "the quota project is for API calls only");
    let source_tokens = s.h.fake.seen(|seen| seen.tokens.iter().filter(|t| t.identity == PERSON).count());
    assert_eq!(source_tokens, 1);
    assert!(s.h.fake.api_requests().iter().all(|r| r.identity.as_deref() != Some(PERSON)));

    // Without Token Creator on the hop's next link the fake refuses, and nothing is read as anyone else.
    s.h.fake.estate(|e| e.credentials.token_creators.retain(|(_, target)| target != AUDITOR));
    s.h.fake.forget_requests();
    let (code, report, stderr) = s.audit(&config).await;
    assert_eq!(code, 2, "{stderr}");
    let error = report["projects"][0]["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "POST {}/v1/projects/-/serviceAccounts/{AUDITOR}:generateAccessToken: HTTP 403: PERMISSION_DENIED",
            s.url()
        )),
        "{error}"
    );
    assert!(s.h.fake.api_requests().is_empty(), "no API call is made as the source identity");
    assert_no_secrets(&format!("{report}{stderr}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcloud_impersonated_adc_file_is_used_never_skipped_and_config_impersonation_adds_a_hop() {
    let mut world = world();
    world.estate.credentials.metadata_identity = Some(VM_ACCOUNT.into());
    world.estate.credentials.token_creators.push((AUDITOR.into(), WIF_ACCOUNT.into()));
    let s = Setup::new(world).await;
    let file = s.file("gcloud/application_default_credentials.json", &gcloud_impersonated());
    let config = s.config("");
    let (code, out, err) = s.check_config(&config).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "credentials: impersonated_service_account from {} (gcloud's ADC file, found through CLOUDSDK_CONFIG)",
            file.display()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("impersonates {AUDITOR} via {HOP} at {}", s.url())), "{out}");
    assert!(out.contains(&format!("API calls as: {AUDITOR}\n")), "{out}");
    s.audit_as(&config, AUDITOR, None).await;
    assert!(s.token_requests("metadata").is_empty(), "the VM's identity is never used instead");
    let minted = s.token_requests("iamcredentials");
    assert_eq!(minted[0].json["delegates"], json!([format!("projects/-/serviceAccounts/{HOP}")]));

    // gcp.impersonate_service_account on top: a second hop, printed, and the API sees its account.
    s.h.fake.forget_requests();
    let config = s.config(&format!("impersonate_service_account = \"{WIF_ACCOUNT}\""));
    let (_, out, _) = s.check_config(&config).await;
    assert!(
        out.contains(&format!("impersonation: {WIF_ACCOUNT} at {} (gcp.impersonate_service_account)", s.url())),
        "{out}"
    );
    assert!(out.contains(&format!("API calls as: {WIF_ACCOUNT}\n")), "{out}");
    s.audit_as(&config, WIF_ACCOUNT, None).await;
    let second = s.token_requests("iamcredentials").into_iter().find(|r| r.path.contains(WIF_ACCOUNT)).unwrap();
    assert_eq!(second.caller.as_deref(), Some(AUDITOR));
    assert!(second.json.get("delegates").is_none(), "a direct request names no delegates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_from_a_file_a_url_and_a_client_exchanges_the_subject_token_at_sts() {
    let mut world = world();
    world.estate.credentials.url_subject = Some((SUBJECT.into(), ("X-Api-Key".into(), URL_HEADER_SECRET.into())));
    world.estate.credentials.token_creators.push((PRINCIPAL.into(), WIF_ACCOUNT.into()));
    let mut s = Setup::new(world).await;
    std::fs::write(s.path("subject.jwt"), SUBJECT).unwrap();

    // A file source, the federated principal itself calling the APIs.
    let file = s.file("wif-file.json", &federation(&s, json!({"file": s.path("subject.jwt")})));
    s.set("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap());
    let config = s.config("");
    s.audit_as(&config, PRINCIPAL, None).await;
    let exchange = &s.token_requests("sts")[0];
    let form: Vec<(&str, &str)> = exchange.form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        form,
        [
            ("audience", AUDIENCE),
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("requested_token_type", "urn:ietf:params:oauth:token-type:access_token"),
            ("scope", CLOUD_PLATFORM),
            ("subject_token", SUBJECT),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ]
    );

    // A URL source (JSON, with a secret header), impersonating a service account for 2800 s.
    let mut wif = federation(
        &s,
        json!({"url": format!("{}/subject/json?tenant=t", s.url()),
        "headers": {"X-Api-Key": URL_HEADER_SECRET}, "format": {"type": "json", "subject_token_field_name": "id_token"}}),
    );
    wif["quota_project_id"] = json!("qp-from-file");
    let file = s.file("wif-url.json", &with_impersonation(wif, &s, Some(2800)));
    s.set("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap());
    s.h.fake.forget_requests();
    let (_, out, _) = s.check_config(&config).await;
    assert!(
        out.contains(&format!("subject token: URL {}/subject/json (JSON field id_token, headers X-Api-Key)", s.url())),
        "{out}"
    );
    assert!(out.contains(&format!("impersonates {WIF_ACCOUNT} at {}/v1/projects/-/serviceAccounts/{WIF_ACCOUNT}:generateAccessToken (lifetime 2800s)", s.url())), "{out}");
    assert_no_secrets(&out);
    s.audit_as(&config, WIF_ACCOUNT, Some("qp-from-file")).await;
    assert_eq!(s.token_requests("subject")[0].path, "/subject/json");
    assert_eq!(
        s.token_requests("sts")[0].form["scope"],
        IAM,
        "an STS token only used to impersonate gets the IAM scope"
    );
    let minted = &s.token_requests("iamcredentials")[0];
    assert_eq!(minted.caller.as_deref(), Some(PRINCIPAL));
    assert_eq!(minted.json, json!({"scope": [CLOUD_PLATFORM], "lifetime": "2800s"}));

    // A workforce pool with a client: Basic authentication, no userProject option then.
    s.h.fake.estate(|e| {
        e.credentials.sts_client = Some(("wf-client".into(), CLIENT_SECRET.into()));
        e.credentials.audience = None;
    });
    s.h.fake.forget_requests();
    let mut wf = federation(&s, json!({"file": s.path("subject.jwt")}));
    wf["audience"] = json!("//iam.googleapis.com/locations/global/workforcePools/wf/providers/p");
    wf["workforce_pool_user_project"] = json!("wf-proj");
    wf["client_id"] = json!("wf-client");
    wf["client_secret"] = json!(CLIENT_SECRET);
    let file = s.file("wf.json", &wf);
    s.set("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap());
    s.audit_as(&config, PRINCIPAL, None).await;
    assert!(!s.token_requests("sts")[0].form.contains_key("options"));

    // Without a client the workforce user project is sent as STS options.
    s.h.fake.estate(|e| e.credentials.sts_client = None);
    s.h.fake.forget_requests();
    wf.as_object_mut().unwrap().retain(|k, _| k != "client_id" && k != "client_secret");
    let file = s.file("wf.json", &wf);
    s.set("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap());
    s.audit_as(&config, PRINCIPAL, None).await;
    assert_eq!(s.token_requests("sts")[0].form["options"], r#"{"userProject":"wf-proj"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_from_an_executable_runs_it_as_aip_4117_says_and_caches_its_answer() {
    let mut world = world();
    world.estate.credentials.token_creators.push((PRINCIPAL.into(), WIF_ACCOUNT.into()));
    let mut s = Setup::new(world).await;
    let script = s.path("token-helper");
    let (env_file, runs, output) = (s.path("helper-env.txt"), s.path("helper-runs.txt"), s.path("helper-out.json"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nenv | grep ^GOOGLE_EXTERNAL_ACCOUNT_ | sort > {env}\necho \"$@\" >> {runs}\n\
             answer='{{\"version\":1,\"success\":true,\"token_type\":\"urn:ietf:params:oauth:token-type:id_token\",\"id_token\":\"{SUBJECT}\",\"expiration_time\":'$(($(date +%s) + 3600))'}}'\n\
             echo \"$answer\" > {out}\necho \"$answer\"\necho 'noise on stderr {SUBJECT}' >&2\n",
            env = env_file.display(),
            runs = runs.display(),
            out = output.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let wif = federation(
        &s,
        json!({"executable": {"command": format!("{} --flag=1", script.display()),
        "timeout_millis": 5000, "output_file": output}}),
    );
    let file = s.file("wif-exe.json", &with_impersonation(wif, &s, None));
    let config = s.config(&format!("credentials_file = {file:?}"));

    let (code, _, err) = s.check_config(&config).await;
    assert_eq!(code, 78);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(
            "type external_account: executable-sourced credentials need GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1"
        ),
        "{err}"
    );

    s.set("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1");
    s.audit_as(&config, WIF_ACCOUNT, None).await;
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert_eq!(
        env,
        format!(
            "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1\nGOOGLE_EXTERNAL_ACCOUNT_AUDIENCE={AUDIENCE}\n\
             GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL={WIF_ACCOUNT}\nGOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE=0\n\
             GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE={}\nGOOGLE_EXTERNAL_ACCOUNT_REVOKE=0\n\
             GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE=urn:ietf:params:oauth:token-type:jwt\n",
            output.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "--flag=1\n");
    // The next run finds the unexpired answer in output_file and does not run the helper.
    s.h.fake.forget_requests();
    s.audit_as(&config, WIF_ACCOUNT, None).await;
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "--flag=1\n", "the cached answer was used");

    // A helper that hangs is killed after its timeout and named in the error.
    std::fs::remove_file(&output).unwrap();
    std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
    let (code, report, stderr) = s.audit(&config).await;
    assert_eq!(code, 2, "{stderr}");
    let error = report["projects"][0]["error"].as_str().unwrap();
    assert!(error.contains(&format!("executable {}: no answer within 5s; killed", script.display())), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_from_aws_signs_get_caller_identity_with_env_keys_or_imdsv2() {
    let mut world = world();
    world.estate.credentials.aws = Some(FakeAws {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: AWS_SECRET.into(),
        session_token: Some(AWS_SESSION.into()),
        role: "auditor-role".into(),
        zone: "us-east-2b".into(),
        principal: "principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/aws/subject/arn:aws:sts::1:assumed-role/auditor-role/i-1".into(),
        imdsv2: true,
    });
    let principal = world.estate.credentials.aws.as_ref().unwrap().principal.clone();
    let mut s = Setup::new(world).await;
    let mut aws = federation(
        &s,
        json!({"environment_id": "aws1",
        "region_url": format!("{}/latest/meta-data/placement/availability-zone", s.url()),
        "url": format!("{}/latest/meta-data/iam/security-credentials", s.url()),
        "imdsv2_session_token_url": format!("{}/latest/api/token", s.url()),
        "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"}),
    );
    aws["subject_token_type"] = json!("urn:ietf:params:aws:token-type:aws4_request");
    let file = s.file("wif-aws.json", &aws);
    let config = s.config(&format!("credentials_file = {file:?}"));

    // On EC2: region and the role's keys from IMDSv2.
    s.audit_as(&config, &principal, None).await;
    let imds: Vec<String> = s.token_requests("imds").iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        imds,
        [
            "/latest/api/token",
            "/latest/meta-data/placement/availability-zone",
            "/latest/meta-data/iam/security-credentials",
            "/latest/meta-data/iam/security-credentials/auditor-role"
        ]
    );
    assert_eq!(s.token_requests("sts")[0].form["subject_token_type"], "urn:ietf:params:aws:token-type:aws4_request");

    // Anywhere else: keys and region from the environment, no metadata service at all.
    s.h.fake.forget_requests();
    s.h.fake.estate(|e| e.credentials.aws.as_mut().unwrap().imdsv2 = false);
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
        ("AWS_SESSION_TOKEN", AWS_SESSION),
        ("AWS_REGION", "us-east-2"),
    ] {
        s.set(k, v);
    }
    s.audit_as(&config, &principal, None).await;
    assert!(s.token_requests("imds").is_empty());

    // A wrong secret makes a signature STS refuses.
    s.set("AWS_SECRET_ACCESS_KEY", "wrong-secret-key");
    let (code, report, stderr) = s.audit(&config).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        report["projects"][0]["error"].as_str().unwrap().contains("/v1/token: HTTP 400: invalid_grant"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_server_is_reached_directly_while_everything_else_uses_the_proxy() {
    let mut world = world();
    world.estate.credentials.metadata_identity = Some(VM_ACCOUNT.into());
    let mut s = Setup::new(world).await;
    let proxy = Proxy::start().await;
    s.set("HTTP_PROXY", &proxy.url);
    let config = s.config("");
    let (_, out, _) = s.check_config(&config).await;
    assert!(
        out.contains(&format!("credentials: metadata server at http://{} (GCE_METADATA_HOST)", s.h.fake.addr)),
        "{out}"
    );
    let calls = s.audit_as(&config, VM_ACCOUNT, None).await;
    assert_eq!(s.token_requests("metadata").len(), 1);
    let seen = proxy.seen();
    assert!(seen.iter().all(|r| !r.contains("computeMetadata")), "{seen:?}");
    assert_eq!(seen.len(), calls, "every API call went through the proxy: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_requests_honour_the_proxy_variables_exactly_like_api_calls() {
    let mut s = Setup::new(world()).await;
    let proxy = Proxy::start().await;
    let file = s.file("person.json", &person());
    s.set("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap());
    let config = s.config(&format!("impersonate_service_account = \"{AUDITOR}\"\ndelegates = [\"{HOP}\"]"));

    s.set("HTTP_PROXY", &proxy.url);
    let calls = s.audit_as(&config, AUDITOR, Some("from-file")).await;
    let seen = proxy.seen();
    assert_eq!(seen[0], format!("POST {}/token", s.url()), "{seen:?}");
    assert_eq!(seen[1], format!("POST {}/v1/projects/-/serviceAccounts/{AUDITOR}:generateAccessToken", s.url()));
    assert_eq!(seen.len(), calls + 2, "{seen:?}");

    // NO_PROXY exempts them all alike.
    s.set("NO_PROXY", "127.0.0.1");
    s.h.fake.forget_requests();
    s.audit_as(&config, AUDITOR, Some("from-file")).await;
    assert_eq!(proxy.seen().len(), calls + 2, "nothing more went through the proxy");

    // HTTPS_PROXY carries an https token endpoint (the proxy refuses the tunnel here).
    std::fs::write(s.path("subject"), SUBJECT).unwrap();
    let mut sts = federation(&s, json!({"file": s.path("subject")}));
    sts["token_url"] = json!("https://sts.test/v1/token");
    let file = s.file("https-sts.json", &sts);
    s.set("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap());
    s.set("HTTPS_PROXY", &proxy.url);
    let config = s.config("");
    let (code, report, stderr) = s.audit(&config).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(proxy.seen().contains(&"CONNECT sts.test:443".to_owned()), "{:?}", proxy.seen());
    assert!(report["projects"][0]["error"].as_str().unwrap().contains("POST https://sts.test/v1/token"), "{report}");
    assert_no_secrets(&format!("{report}{stderr}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonated_tokens_expiring_mid_cycle_are_renewed_and_the_source_token_reused() {
    // Impersonated tokens live 31 s: usable for about 1 s before the 30 s margin; the fake
    // refuses them after 1.8 s, as if they had expired. The source token lasts an hour.
    let world = World {
        behaviour: Behaviour {
            latency: Duration::from_millis(400),
            impersonated_expires_in: Some(31),
            impersonated_valid_for: Some(Duration::from_millis(1800)),
            ..Behaviour::default()
        },
        ..world()
    };
    let mut s = Setup::new(world).await;
    let file = s.file("person.json", &person());
    s.set("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap());
    // One request at a time, so the cycle outlasts the first impersonated token.
    let config =
        s.config(&format!("impersonate_service_account = \"{AUDITOR}\"\ndelegates = [\"{HOP}\"]\nconcurrency = 1"));
    let (_, report, stderr) = s.audit(&config).await;
    assert_eq!(report["complete"], true, "{stderr}\n{report:#}");
    let minted = s.token_requests("iamcredentials");
    assert!(minted.len() >= 2, "renewed mid-cycle: {} impersonated tokens", minted.len());
    assert_eq!(s.token_requests("oauth2").len(), 1, "the still-fresh source token is reused for every renewal");
    assert!(s.h.fake.api_requests().iter().all(|r| r.identity.as_deref() == Some(AUDITOR)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_credentials_are_refused_at_start_in_one_line_naming_file_and_type() {
    let mut world = world();
    world.estate.credentials.metadata_identity = Some(VM_ACCOUNT.into());
    let mut s = Setup::new(world).await;
    let mut gdch_source = gcloud_impersonated();
    gdch_source["source_credentials"] = json!({"type": "gdch_service_account", "format_version": "1"});
    let exe = federation(&s, json!({"executable": {"command": "/usr/bin/helper"}}));
    let cases: Vec<(&str, String, String)> = vec![
        (
            "gcloud/application_default_credentials.json",
            gdch_source.to_string(),
            "type impersonated_service_account: source_credentials of type \"gdch_service_account\" is not supported"
                .into(),
        ),
        (
            "gcloud/application_default_credentials.json",
            "{\"type\": \"external_account_authorized_user\"}".into(),
            "type external_account_authorized_user: this type is not supported by binauthz-auditor".into(),
        ),
        (
            "gcloud/application_default_credentials.json",
            "{\"type\": \"authorized_user\", \"refresh_token\": ".into(),
            "type (unreadable): not JSON: EOF while parsing".into(),
        ),
        (
            "adc.json",
            json!({"type": "service_acount"}).to_string(),
            "type \"service_acount\": not a credential type".into(),
        ),
        (
            "adc.json",
            exe.to_string(),
            "type external_account: executable-sourced credentials need GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1"
                .into(),
        ),
    ];
    for (name, content, needle) in cases {
        let path = s.path(name);
        std::fs::write(&path, &content).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let origin = if name == "adc.json" {
            s.set("GOOGLE_APPLICATION_CREDENTIALS", path.to_str().unwrap());
            "GOOGLE_APPLICATION_CREDENTIALS"
        } else {
            s.env.retain(|(k, _)| k != "GOOGLE_APPLICATION_CREDENTIALS");
            "gcloud's ADC file, found through CLOUDSDK_CONFIG"
        };
        let config = s.config("");
        let expected = format!("credentials file {} ({origin}): {needle}", path.display());
        let (code, out, err) = s.check_config(&config).await;
        assert_eq!(code, 78, "{name}: {out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(&format!("error: {expected}")), "{err}\nexpected: {expected}");
        let out = s.run(&["audit", "--config", config.to_str().unwrap()]).await;
        assert_eq!(out.status.code(), Some(78));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with(&format!("error: {expected}")), "{err}");
        let out = s.run(&["run", "--config", config.to_str().unwrap(), "--log-format", "plain"]).await;
        assert_eq!(out.status.code(), Some(78));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&expected));
        std::fs::remove_file(&path).unwrap();
    }
    let missing = s.path("gone.json");
    s.set("GOOGLE_APPLICATION_CREDENTIALS", missing.to_str().unwrap());
    let (code, _, err) = s.check_config(&s.config("")).await;
    assert_eq!(code, 78);
    assert!(
        err.starts_with(&format!(
            "error: credentials file {} (GOOGLE_APPLICATION_CREDENTIALS): No such file",
            missing.display()
        )),
        "{err}"
    );
    assert!(
        s.h.fake.requests().is_empty(),
        "no request of any kind, the metadata server's included: {:?}",
        s.h.fake.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_metrics_the_report_or_errors() {
    let mut world = world();
    world.estate.credentials.url_subject = Some((SUBJECT.into(), ("X-Api-Key".into(), URL_HEADER_SECRET.into())));
    world.estate.credentials.token_creators.push((PRINCIPAL.into(), WIF_ACCOUNT.into()));
    let mut s = Setup::new(world).await;
    s.set("RUST_LOG", "trace");
    let person_file = s.file("person.json", &person());
    let wif = federation(
        &s,
        json!({"url": format!("{}/subject/text", s.url()), "headers": {"X-Api-Key": URL_HEADER_SECRET}}),
    );
    let wif_file = s.file("wif.json", &with_impersonation(wif, &s, None));
    let impersonation = format!("impersonate_service_account = \"{AUDITOR}\"\ndelegates = [\"{HOP}\"]");
    let mut everything = String::new();
    for (file, gcp) in [(&person_file, impersonation.as_str()), (&wif_file, "")] {
        s.set("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap());
        let config = s.config(gcp);
        let (_, out, err) = s.check_config(&config).await;
        everything.push_str(&out);
        everything.push_str(&err);
        let (_, report, stderr) = s.audit(&config).await;
        assert_eq!(report["complete"], true, "{stderr}");
        everything.push_str(&format!("{report}{stderr}"));
        // The daemon: its log at trace level, /metrics and /report.
        let log = s.path("daemon.log");
        let daemon = Daemon::start_with(&config, &s.env, &log).await;
        let metrics = daemon.wait_for_cycles(1).await;
        everything.push_str(&metrics);
        everything.push_str(&daemon.report().await.to_string());
        drop(daemon);
        everything.push_str(&std::fs::read_to_string(&log).unwrap());
    }
    // Failures too: a revoked refresh token, a URL source that refuses, an STS that refuses.
    s.h.fake.estate(|e| {
        e.credentials.users.clear();
        e.credentials.url_subject = Some((SUBJECT.into(), ("X-Api-Key".into(), "another".into())));
    });
    for (file, gcp) in [(&person_file, impersonation.as_str()), (&wif_file, "")] {
        s.set("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap());
        let (code, report, stderr) = s.audit(&s.config(gcp)).await;
        assert_eq!(code, 2, "{stderr}");
        everything.push_str(&format!("{report}{stderr}"));
    }
    // The daemon counts the token failures and reports them without a secret.
    s.set("GOOGLE_APPLICATION_CREDENTIALS", person_file.to_str().unwrap());
    let log = s.path("daemon-failing.log");
    let daemon = Daemon::start_with(&s.config(&impersonation), &s.env, &log).await;
    let metrics = daemon.wait_for_cycles(1).await;
    let failures = support::run::sample(&metrics, "binauthz_api_requests_total{api=\"token\",code=\"error\"}");
    assert!(failures.is_some_and(|n| n >= 1.0), "{metrics}");
    everything.push_str(&metrics);
    everything.push_str(&daemon.report().await.to_string());
    drop(daemon);
    everything.push_str(&std::fs::read_to_string(&log).unwrap());
    assert!(everything.contains("invalid_grant: Token has been expired or revoked."), "the errors say why");
    assert!(everything.contains("authenticated to Google"), "the log says who");
    assert_no_secrets(&everything);
}
