//! The simple-signing payload an attestation signs (what `gcloud container binauthz
//! create-signature-payload` prints), and the image references it names. Signatures are over
//! the payload's exact bytes: it is parsed only after a signature verified, and never
//! re-serialised.

use serde::Deserialize;

/// `REPOSITORY@ALGORITHM:HEX`: an image by digest, as a revision records what it runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRef {
    pub repository: String,
    /// `sha256:...`.
    pub digest: String,
}

impl ImageRef {
    /// An image named by digest; `None` for a tag or anything else.
    pub fn parse(image: &str) -> Option<ImageRef> {
        let (repository, digest) = image.rsplit_once('@')?;
        let (algorithm, hex) = digest.split_once(':')?;
        let hex_ok = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
        let algorithm_ok = !algorithm.is_empty() && algorithm.bytes().all(|b| b.is_ascii_alphanumeric());
        (!repository.is_empty() && !repository.contains(char::is_whitespace) && hex_ok && algorithm_ok)
            .then(|| ImageRef { repository: repository.to_owned(), digest: digest.to_owned() })
    }

    /// `REPO` of `REPO:TAG`, `REPO@DIGEST` or a bare `REPO` (a registry port is not a tag).
    pub fn repository_of(image: &str) -> Option<&str> {
        let without_digest = image.split_once('@').map_or(image, |(repo, _)| repo);
        let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
        let repository = match without_digest[last_slash..].rfind(':') {
            Some(colon) => &without_digest[..last_slash + colon],
            None => without_digest,
        };
        (!repository.is_empty()).then_some(repository)
    }

    /// Occurrences name images with or without `https://` (gcloud strips it; the API
    /// documents it): both mean this image when the rest is equal.
    pub fn is_named_by(&self, resource_uri: &str) -> bool {
        let bare = resource_uri.strip_prefix("https://").unwrap_or(resource_uri);
        bare.strip_prefix(self.repository.as_str()).and_then(|rest| rest.strip_prefix('@')) == Some(&self.digest)
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.repository, self.digest)
    }
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: Image,
}

#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The `critical.image.docker-manifest-digest` a payload vouches for, or why it names none.
pub fn signed_digest(payload: &[u8]) -> Result<String, String> {
    serde_json::from_slice::<Payload>(payload)
        .map(|p| p.critical.image.docker_manifest_digest)
        .map_err(|e| format!("the signed payload is not a simple-signing payload ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e9cad8c3f185bc7ef07d976e8f260e94de0d954bf25f91a992f6445c8abc0940";

    #[test]
    fn gclouds_payload_names_its_digest() {
        // Byte for byte what gcloud 528 `create-signature-payload` printed (research evidence).
        let payload = format!(
            "{{\n  \"critical\": {{\n    \"identity\": {{\n      \"docker-reference\": \"us-docker.pkg.dev/example-proj/repo/app\"\n    }},\n    \"image\": {{\n      \"docker-manifest-digest\": \"{DIGEST}\"\n    }},\n    \"type\": \"Google cloud binauthz container signature\"\n  }}\n}}\n"
        );
        assert_eq!(signed_digest(payload.as_bytes()).unwrap(), DIGEST);
        assert!(signed_digest(b"{\"critical\":{}}").unwrap_err().contains("not a simple-signing payload"));
        assert!(signed_digest(b"\xff").is_err());
    }

    #[test]
    fn images_by_digest_match_occurrences_with_or_without_a_scheme() {
        let image = ImageRef::parse(&format!("us-docker.pkg.dev/p/r/app@{DIGEST}")).unwrap();
        assert_eq!(image.digest, DIGEST);
        assert!(image.is_named_by(&format!("us-docker.pkg.dev/p/r/app@{DIGEST}")));
        assert!(image.is_named_by(&format!("https://us-docker.pkg.dev/p/r/app@{DIGEST}")));
        assert!(!image.is_named_by(&format!("us-docker.pkg.dev/p/r/other@{DIGEST}")), "another repository");
        assert!(!image.is_named_by(&format!("us-docker.pkg.dev/p/r/ap@{DIGEST}")));
        assert!(!image.is_named_by(&format!("http://us-docker.pkg.dev/p/r/app@{DIGEST}")));
        assert_eq!(ImageRef::parse("us-docker.pkg.dev/p/r/app:v1"), None, "a tag is not a digest");
        assert_eq!(ImageRef::parse("app@sha256:xyz"), None);
        assert_eq!(ImageRef::parse("@sha256:ab"), None);
        assert_eq!(ImageRef::repository_of("localhost:5000/app:v1"), Some("localhost:5000/app"));
        assert_eq!(ImageRef::repository_of(&format!("gcr.io/p/app@{DIGEST}")), Some("gcr.io/p/app"));
        assert_eq!(ImageRef::repository_of("gcr.io/p/app"), Some("gcr.io/p/app"));
    }
}
