//! One image, one attestor: which of the note's occurrences attest this image, and does one
//! of them carry a signature by a key the attestor lists today, over a payload that vouches
//! for this digest? An occurrence that merely exists proves nothing: gcloud creates one even
//! when `--validate` finds its signature bad.

use base64::Engine;

use super::payload::{ImageRef, signed_digest};
use super::{Attestor, Cause, Check, KeyCheck};
use crate::google::binauthz_v1::ValidateAttestationOccurrenceResponse;
use crate::google::containeranalysis_v1::{AttestationOccurrence, Occurrence};

/// What the occurrences came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Verified,
    Failed {
        cause: Cause,
        detail: String,
    },
    /// Signatures only Google can check (`validateAttestationOccurrence`); if it verifies none
    /// of them, `otherwise` stands.
    AskGoogle {
        occurrences: Vec<AskGoogle>,
        otherwise: (Cause, String),
    },
}

/// One attestation to send to Google as it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskGoogle {
    pub occurrence: String,
    pub resource_uri: String,
    pub attestation: AttestationOccurrence,
}

/// The best failure seen so far: the one closest to a valid attestation wins.
struct Worst(Option<(Cause, String)>);

impl Worst {
    fn saw(&mut self, cause: Cause, detail: String) {
        if self.0.as_ref().is_none_or(|(c, _)| cause.closeness() > c.closeness()) {
            self.0 = Some((cause, detail));
        }
    }
}

/// Judges `image` against the occurrences of `attestor`'s note that a digest lookup found.
pub fn judge(attestor: &Attestor, image: &ImageRef, occurrences: &[Occurrence]) -> Judgement {
    let mine: Vec<&Occurrence> = occurrences
        .iter()
        .filter(|o| o.kind == "ATTESTATION" && o.note_name == attestor.note && image.is_named_by(&o.resource_uri))
        .collect();
    if mine.is_empty() {
        let detail = format!("no attestation of {image} on {}", attestor.note);
        return Judgement::Failed { cause: Cause::Missing, detail };
    }
    let mut worst = Worst(None);
    let mut for_google = Vec::new();
    for occurrence in mine {
        let Some(attestation) = &occurrence.attestation else {
            worst.saw(Cause::BadSignature, format!("{} holds no attestation", occurrence.name));
            continue;
        };
        match judge_one(attestor, image, &occurrence.name, attestation) {
            One::Verified => return Judgement::Verified,
            One::Failed(cause, detail) => worst.saw(cause, detail),
            One::Google => for_google.push(AskGoogle {
                occurrence: occurrence.name.clone(),
                resource_uri: occurrence.resource_uri.clone(),
                attestation: attestation.clone(),
            }),
        }
    }
    let otherwise = worst.0.unwrap_or_else(|| {
        (Cause::BadSignature, format!("no signature {} could verify was confirmed by Google", attestor.name))
    });
    if for_google.is_empty() {
        Judgement::Failed { cause: otherwise.0, detail: otherwise.1 }
    } else {
        Judgement::AskGoogle { occurrences: for_google, otherwise }
    }
}

enum One {
    Verified,
    Failed(Cause, String),
    /// Holds a signature (or JWT) only Google can check, and nothing verified locally.
    Google,
}

fn judge_one(attestor: &Attestor, image: &ImageRef, name: &str, attestation: &AttestationOccurrence) -> One {
    let mut worst = Worst(None);
    let mut needs_google = !attestation.jwts.is_empty();
    let payload = decode(&attestation.serialized_payload);
    if attestation.signatures.is_empty() && !needs_google {
        return One::Failed(Cause::BadSignature, format!("{name} carries no signature"));
    }
    for signature in &attestation.signatures {
        let Some(key) = attestor.keys.iter().find(|k| k.id == signature.public_key_id) else {
            worst.saw(
                Cause::UnknownKey,
                format!("{name} is signed by {:?}, not a key of {}", signature.public_key_id, attestor.name),
            );
            continue;
        };
        let KeyCheck::Local(pkix) = &key.check else {
            needs_google = true;
            continue;
        };
        let (Some(payload), Some(bytes)) = (payload.as_deref(), decode(&signature.signature)) else {
            worst.saw(Cause::BadSignature, format!("{name}: the payload or signature is not base64"));
            continue;
        };
        if !pkix.verifies(payload, &bytes) {
            worst.saw(Cause::BadSignature, format!("{name}: the signature by {} does not verify", key.id));
            continue;
        }
        match digest_matches(image, payload) {
            Ok(()) => return One::Verified,
            Err(detail) => worst.saw(Cause::PayloadMismatch, format!("{name}: {detail}")),
        }
    }
    match worst.0 {
        // A payload validly signed for another digest will not become right on Google's side.
        Some((Cause::PayloadMismatch, detail)) => One::Failed(Cause::PayloadMismatch, detail),
        _ if needs_google => One::Google,
        Some((cause, detail)) => One::Failed(cause, detail),
        None => One::Failed(Cause::BadSignature, format!("{name} carries no signature")),
    }
}

/// Google's answer for one attestation, with the digest checked here as well (whether Google
/// compares the payload with the resource URI is not documented).
pub fn after_google(
    image: &ImageRef,
    ask: &AskGoogle,
    result: &str,
    denial_reason: &str,
) -> Result<(), (Cause, String)> {
    if result != "VERIFIED" {
        let why = if denial_reason.is_empty() { result } else { denial_reason };
        return Err((Cause::BadSignature, format!("{}: Google says {why}", ask.occurrence)));
    }
    let payload = decode(&ask.attestation.serialized_payload)
        .ok_or_else(|| (Cause::PayloadMismatch, format!("{}: the payload is not base64", ask.occurrence)))?;
    digest_matches(image, &payload).map_err(|detail| (Cause::PayloadMismatch, format!("{}: {detail}", ask.occurrence)))
}

/// The verdict once Google answered for each attestation it was asked about: one verified
/// is enough; otherwise a failed call leaves the image undecided, and refusals stand beside
/// `otherwise`, the closest failure reported.
pub fn with_google_answers(
    image: &ImageRef,
    otherwise: (Cause, String),
    answers: &[(AskGoogle, Result<ValidateAttestationOccurrenceResponse, String>)],
) -> Check {
    let mut worst = Worst(Some(otherwise));
    let mut unreadable = None;
    for (ask, answer) in answers {
        match answer {
            Ok(answer) => match after_google(image, ask, &answer.result, &answer.denial_reason) {
                Ok(()) => return Check::Verified,
                Err((cause, detail)) => worst.saw(cause, detail),
            },
            Err(e) => unreadable = unreadable.or(Some(e.clone())),
        }
    }
    match (unreadable, worst.0) {
        (Some(e), _) => Check::Unknown(e),
        (None, Some((cause, detail))) => Check::Failed { cause, detail },
        (None, None) => Check::Unknown("Google gave no answer".into()),
    }
}

fn digest_matches(image: &ImageRef, payload: &[u8]) -> Result<(), String> {
    let signed = signed_digest(payload)?;
    if signed == image.digest {
        Ok(())
    } else {
        Err(format!("the signed payload vouches for {signed}, not {}", image.digest))
    }
}

/// Protobuf `bytes` in JSON: standard base64, though URL-safe and unpadded forms are accepted.
fn decode(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(text).ok())
}

#[cfg(test)]
mod tests {
    use super::super::pkix::{PkixKey, tests::p256};
    use super::super::{Attestor, PublicKey};
    use super::*;
    use crate::google::containeranalysis_v1::Signature;

    const DIGEST: &str = "sha256:e9cad8c3f185bc7ef07d976e8f260e94de0d954bf25f91a992f6445c8abc0940";
    const OTHER: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const NOTE: &str = "projects/a/notes/ci";

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn payload(digest: &str) -> Vec<u8> {
        format!("{{\"critical\":{{\"identity\":{{\"docker-reference\":\"r\"}},\"image\":{{\"docker-manifest-digest\":\"{digest}\"}},\"type\":\"Google cloud binauthz container signature\"}}}}\n").into_bytes()
    }

    type Signer = Box<dyn Fn(&[u8]) -> Vec<u8>>;

    struct Fixture {
        attestor: Attestor,
        sign: Signer,
        image: ImageRef,
    }

    fn fixture() -> Fixture {
        let (pem, sign) = p256();
        let key = PkixKey::parse(&pem, "ECDSA_P256_SHA256").unwrap();
        Fixture {
            attestor: Attestor {
                name: "projects/a/attestors/ci".into(),
                note: NOTE.into(),
                keys: vec![PublicKey { id: "key-1".into(), check: KeyCheck::Local(key) }],
            },
            sign: Box::new(sign),
            image: ImageRef::parse(&format!("us-docker.pkg.dev/p/r/app@{DIGEST}")).unwrap(),
        }
    }

    fn occurrence(uri: &str, payload: &[u8], signature: &[u8], key_id: &str) -> Occurrence {
        Occurrence {
            name: "projects/x/occurrences/1".into(),
            resource_uri: uri.into(),
            note_name: NOTE.into(),
            kind: "ATTESTATION".into(),
            attestation: Some(AttestationOccurrence {
                serialized_payload: b64(payload),
                signatures: vec![Signature { signature: b64(signature), public_key_id: key_id.into() }],
                jwts: vec![],
            }),
        }
    }

    #[test]
    fn only_a_valid_signature_over_this_digest_by_a_listed_key_attests() {
        let f = fixture();
        let uri = f.image.to_string();
        let good = payload(DIGEST);
        let signed = (f.sign)(&good);
        let cases: Vec<(&str, Vec<Occurrence>, Result<(), Cause>)> = vec![
            ("valid", vec![occurrence(&uri, &good, &signed, "key-1")], Ok(())),
            ("https form", vec![occurrence(&format!("https://{uri}"), &good, &signed, "key-1")], Ok(())),
            ("none", vec![], Err(Cause::Missing)),
            (
                "other repository",
                vec![occurrence(&format!("gcr.io/x/app@{DIGEST}"), &good, &signed, "key-1")],
                Err(Cause::Missing),
            ),
            ("unknown key", vec![occurrence(&uri, &good, &signed, "key-9")], Err(Cause::UnknownKey)),
            (
                "corrupt signature",
                vec![occurrence(&uri, &good, &signed[..signed.len() - 2], "key-1")],
                Err(Cause::BadSignature),
            ),
            (
                "tampered payload",
                vec![occurrence(&uri, &payload(DIGEST)[1..], &signed, "key-1")],
                Err(Cause::BadSignature),
            ),
            (
                "other digest",
                vec![occurrence(&uri, &payload(OTHER), &(f.sign)(&payload(OTHER)), "key-1")],
                Err(Cause::PayloadMismatch),
            ),
            (
                "one good among bad ones",
                vec![occurrence(&uri, &good, &signed, "key-9"), occurrence(&uri, &good, &signed, "key-1")],
                Ok(()),
            ),
        ];
        for (case, occurrences, expected) in cases {
            let got = match judge(&f.attestor, &f.image, &occurrences) {
                Judgement::Verified => Ok(()),
                Judgement::Failed { cause, .. } => Err(cause),
                other => panic!("{case}: {other:?}"),
            };
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn other_kinds_and_notes_do_not_count() {
        let f = fixture();
        let good = payload(DIGEST);
        let mut vulnerability = occurrence(&f.image.to_string(), &good, &(f.sign)(&good), "key-1");
        vulnerability.kind = "VULNERABILITY".into();
        let mut elsewhere = vulnerability.clone();
        elsewhere.kind = "ATTESTATION".into();
        elsewhere.note_name = "projects/a/notes/other".into();
        let judged = judge(&f.attestor, &f.image, &[vulnerability, elsewhere]);
        assert!(matches!(judged, Judgement::Failed { cause: Cause::Missing, .. }), "{judged:?}");
    }

    #[test]
    fn the_closest_failure_is_the_one_reported() {
        let f = fixture();
        let uri = f.image.to_string();
        let good = payload(DIGEST);
        let mismatch = occurrence(&uri, &payload(OTHER), &(f.sign)(&payload(OTHER)), "key-1");
        let unknown = occurrence(&uri, &good, &(f.sign)(&good), "key-9");
        for order in [vec![mismatch.clone(), unknown.clone()], vec![unknown, mismatch]] {
            let judged = judge(&f.attestor, &f.image, &order);
            assert!(matches!(judged, Judgement::Failed { cause: Cause::PayloadMismatch, .. }), "{judged:?}");
        }
    }

    #[test]
    fn keys_only_google_can_check_are_sent_to_google_and_its_word_is_checked_too() {
        let mut f = fixture();
        f.attestor.keys.push(PublicKey { id: "pgp-1".into(), check: KeyCheck::Google("a PGP key".into()) });
        let good = payload(DIGEST);
        let pgp = occurrence(&f.image.to_string(), &good, b"armored", "pgp-1");
        let Judgement::AskGoogle { occurrences, otherwise } = judge(&f.attestor, &f.image, &[pgp]) else {
            panic!("a PGP signature goes to Google")
        };
        assert_eq!(occurrences.len(), 1);
        assert_eq!(otherwise.0, Cause::BadSignature);
        assert_eq!(after_google(&f.image, &occurrences[0], "VERIFIED", ""), Ok(()));
        let refused = after_google(&f.image, &occurrences[0], "ATTESTATION_NOT_VERIFIABLE", "no key verified it");
        assert!(
            matches!(refused, Err((Cause::BadSignature, ref d)) if d.contains("no key verified it")),
            "{refused:?}"
        );
        let ask = occurrences[0].clone();
        let answered = |answer: Result<(&str, &str), String>| {
            let answer = answer.map(|(result, denial_reason)| ValidateAttestationOccurrenceResponse {
                result: result.into(),
                denial_reason: denial_reason.into(),
            });
            with_google_answers(&f.image, otherwise.clone(), &[(ask.clone(), answer)])
        };
        assert_eq!(answered(Ok(("VERIFIED", ""))), Check::Verified);
        assert!(
            matches!(answered(Err("HTTP 403".into())), Check::Unknown(e) if e == "HTTP 403"),
            "a failed call decides nothing"
        );
        let refused = answered(Ok(("ATTESTATION_NOT_VERIFIABLE", "bad")));
        assert!(matches!(refused, Check::Failed { cause: Cause::BadSignature, .. }), "{refused:?}");
        let mut wrong = occurrences[0].clone();
        wrong.attestation.serialized_payload = b64(&payload(OTHER));
        assert!(matches!(after_google(&f.image, &wrong, "VERIFIED", ""), Err((Cause::PayloadMismatch, _))));
    }
}
