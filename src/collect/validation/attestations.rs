//! The attestors a policy requires (read once a cycle) and the attestations of each serving
//! image (looked up once a cycle per note and digest, and not at all while an earlier pass is
//! fresh). Signatures ring cannot check go to Google's `validateAttestationOccurrence`.

use std::collections::{BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures_util::future::join_all;

use super::{Cycle, Validator};
use crate::attest::{self, Attestor, Check, ImageRef, Judgement};
use crate::collect::client::ApiClient;
use crate::config::Endpoints;
use crate::google::binauthz_v1::{self, ValidateAttestationOccurrenceRequest, ValidateAttestationOccurrenceResponse};
use crate::google::containeranalysis_v1::{ListNoteOccurrencesResponse, Occurrence};
use crate::inventory::{Api, Evidence};

pub type AttestorRead = Result<Arc<Attestor>, String>;
pub type Lookup = Result<Arc<Vec<Occurrence>>, String>;

/// (attestor, image) that passed: when, and under which of the attestor's keys.
#[derive(Default)]
pub struct Passed(Mutex<HashMap<(String, String), (Instant, u64)>>);

impl Passed {
    fn fresh(&self, key: &(String, String), keys: u64, now: Instant, validator: &Validator) -> bool {
        let passed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        passed.get(key).is_some_and(|(at, under)| *under == keys && now.duration_since(*at) < validator.recheck)
    }

    fn record(&self, key: (String, String), at: Instant, keys: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(key, (at, keys));
    }

    pub fn forget_before(&self, cutoff: Option<Instant>) {
        if let Some(cutoff) = cutoff {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, (at, _)| *at >= cutoff);
        }
    }
}

/// Checks every (attestor, image) of `needed` into `evidence`.
pub async fn check(v: &Validator, cycle: &Cycle, needed: BTreeSet<(&str, ImageRef)>, evidence: &mut Evidence) {
    let names: BTreeSet<&str> = needed.iter().map(|(a, _)| *a).collect();
    let attestors: HashMap<&str, AttestorRead> = join_all(names.into_iter().map(|name| async move {
        let read = cycle.attestors.get_or_init(name.to_owned(), || read_attestor(&v.client, &v.endpoints, name)).await;
        (name, read)
    }))
    .await
    .into_iter()
    .collect();
    for (name, read) in &attestors {
        if let Ok(attestor) = read {
            evidence.kms_keys.insert((*name).to_owned(), attestor.kms_key_versions());
        }
    }
    let checks = join_all(needed.iter().map(|(name, image)| {
        let attestor = &attestors[name];
        async move { ((name.to_string(), image.to_string()), check_one(v, cycle, attestor, image).await) }
    }))
    .await;
    for (key, check) in checks {
        if let (Check::Unknown(why), None) = (&check, &evidence.failure) {
            evidence.failure = Some(why.clone());
        }
        evidence.attestations.insert(key, check);
    }
}

async fn check_one(v: &Validator, cycle: &Cycle, attestor: &AttestorRead, image: &ImageRef) -> Check {
    let attestor = match attestor {
        Ok(a) => a,
        Err(e) => return Check::Unknown(e.clone()),
    };
    let key = (attestor.name.clone(), image.to_string());
    let keys = fingerprint(attestor);
    if v.passed.fresh(&key, keys, cycle.started, v) {
        return Check::Verified;
    }
    let lookup = (attestor.note.clone(), image.digest.clone());
    let found =
        cycle.lookups.get_or_init(lookup, || occurrences(&v.client, &v.endpoints, &attestor.note, &image.digest)).await;
    let occurrences = match found {
        Ok(o) => o,
        Err(e) => return Check::Unknown(e),
    };
    let check = match attest::judge(attestor, image, &occurrences) {
        Judgement::Verified => Check::Verified,
        Judgement::Failed { cause, detail } => Check::Failed { cause, detail },
        Judgement::AskGoogle { occurrences, otherwise } => {
            let answers = join_all(occurrences.into_iter().map(|ask| async {
                let answer = validate(&v.client, &v.endpoints, attestor, &ask).await;
                (ask, answer)
            }))
            .await;
            attest::with_google_answers(image, otherwise, &answers)
        }
    };
    if check == Check::Verified {
        v.passed.record(key, cycle.started, keys);
    }
    check
}

/// An attestor's note and keys as they are now: a pass under other keys is no pass.
fn fingerprint(attestor: &Attestor) -> u64 {
    let mut hasher = DefaultHasher::new();
    attestor.hash(&mut hasher);
    hasher.finish()
}

/// `projects/P/attestors/A` or `projects/P/notes/N`, nothing that could leave its URL path.
fn resource_name(name: &str, collection: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:~".contains(&b));
    matches!(parts.as_slice(), ["projects", p, c, n] if *c == collection && plain(p) && plain(n) && *n != ".." && *p != "..")
}

async fn read_attestor(client: &ApiClient, endpoints: &Endpoints, name: &str) -> AttestorRead {
    if !resource_name(name, "attestors") {
        return Err(format!("the policy requires attestor {name:?}, which is not projects/P/attestors/A"));
    }
    let url = format!("{}/v1/{name}", endpoints.binaryauthorization);
    let attestor: binauthz_v1::Attestor =
        client.get(Api::Binaryauthorization, &url, &[]).await.map_err(|e| e.to_string())?;
    let attestor = Attestor::from_api(attestor).map_err(|e| format!("GET {url}: {e}"))?;
    if !resource_name(&attestor.note, "notes") {
        return Err(format!("GET {url}: its note {:?} is not projects/P/notes/N", attestor.note));
    }
    Ok(Arc::new(attestor))
}

/// The occurrences of `note` for any image with this digest (the filter gcloud uses); which
/// of them name this very image, and are attestations, is decided by `attest::judge`.
async fn occurrences(client: &ApiClient, endpoints: &Endpoints, note: &str, digest: &str) -> Lookup {
    let url = format!("{}/v1/{note}/occurrences", endpoints.containeranalysis);
    let filter = format!("has_suffix(resourceUrl, \"{digest}\")");
    let listing = client
        .list::<ListNoteOccurrencesResponse>(Api::Containeranalysis, &url, &[("filter", &filter), ("pageSize", "100")])
        .await
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(listing.items))
}

async fn validate(
    client: &ApiClient,
    endpoints: &Endpoints,
    attestor: &Attestor,
    ask: &attest::AskGoogle,
) -> Result<ValidateAttestationOccurrenceResponse, String> {
    let url = format!("{}/v1/{}:validateAttestationOccurrence", endpoints.binaryauthorization, attestor.name);
    let request = ValidateAttestationOccurrenceRequest {
        attestation: &ask.attestation,
        occurrence_note: &attestor.note,
        occurrence_resource_uri: &ask.resource_uri,
    };
    client.post(Api::Binaryauthorization, &url, &request, None).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_policies_and_attestors_stay_in_their_url_path() {
        assert!(resource_name("projects/sec-1/attestors/built-by-ci", "attestors"));
        assert!(resource_name("projects/sec-1/notes/built_by.ci", "notes"));
        for bad in [
            "projects/sec-1/attestors/a/b",
            "projects/../attestors/a",
            "projects/p/notes/a",
            "projects/p/attestors/a?x=1",
            "projects/p/attestors/",
            "attestors/a",
        ] {
            assert!(!resource_name(bad, "attestors"), "{bad}");
        }
    }
}
