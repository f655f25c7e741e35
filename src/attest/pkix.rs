//! PKIX public keys as attestors hold them (PEM `SubjectPublicKeyInfo` plus Google's
//! `signatureAlgorithm`), checked locally with ring. ring takes the key inside the SPKI (the EC
//! point, or PKCS#1 `RSAPublicKey`), so the SPKI's one DER structure is unwrapped here:
//! `SEQUENCE { SEQUENCE { OID algorithm, parameters }, BIT STRING subjectPublicKey }`.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

/// What ring can verify locally; everything else goes to Google's
/// `validateAttestationOccurrence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalAlgorithm {
    EcdsaP256Sha256,
    EcdsaP384Sha384,
    RsaPkcs1Sha256,
    RsaPkcs1Sha512,
    RsaPssSha256,
    RsaPssSha512,
}

impl LocalAlgorithm {
    /// Google's `PkixPublicKey.signatureAlgorithm` (both spellings of each); `None` for what
    /// ring cannot check (P-521, ML-DSA-65, unspecified).
    pub fn from_google(name: &str) -> Option<LocalAlgorithm> {
        Some(match name {
            "ECDSA_P256_SHA256" | "EC_SIGN_P256_SHA256" => LocalAlgorithm::EcdsaP256Sha256,
            "ECDSA_P384_SHA384" | "EC_SIGN_P384_SHA384" => LocalAlgorithm::EcdsaP384Sha384,
            "RSA_SIGN_PKCS1_2048_SHA256" | "RSA_SIGN_PKCS1_3072_SHA256" | "RSA_SIGN_PKCS1_4096_SHA256" => {
                LocalAlgorithm::RsaPkcs1Sha256
            }
            "RSA_SIGN_PKCS1_4096_SHA512" => LocalAlgorithm::RsaPkcs1Sha512,
            "RSA_PSS_2048_SHA256"
            | "RSA_SIGN_PSS_2048_SHA256"
            | "RSA_PSS_3072_SHA256"
            | "RSA_SIGN_PSS_3072_SHA256"
            | "RSA_PSS_4096_SHA256"
            | "RSA_SIGN_PSS_4096_SHA256" => LocalAlgorithm::RsaPssSha256,
            "RSA_PSS_4096_SHA512" | "RSA_SIGN_PSS_4096_SHA512" => LocalAlgorithm::RsaPssSha512,
            _ => return None,
        })
    }

    fn ring(self) -> &'static dyn VerificationAlgorithm {
        match self {
            LocalAlgorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
            LocalAlgorithm::EcdsaP384Sha384 => &signature::ECDSA_P384_SHA384_ASN1,
            LocalAlgorithm::RsaPkcs1Sha256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            LocalAlgorithm::RsaPkcs1Sha512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            LocalAlgorithm::RsaPssSha256 => &signature::RSA_PSS_2048_8192_SHA256,
            LocalAlgorithm::RsaPssSha512 => &signature::RSA_PSS_2048_8192_SHA512,
        }
    }
}

/// A key ready to verify: the algorithm and the key bytes ring takes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PkixKey {
    algorithm: LocalAlgorithm,
    key: Vec<u8>,
}

impl PkixKey {
    /// From the attestor's PEM and algorithm name; `Err` says why the key cannot be used
    /// locally (then Google's server-side check is the way).
    pub fn parse(pem: &str, algorithm: &str) -> Result<PkixKey, String> {
        let algorithm =
            LocalAlgorithm::from_google(algorithm).ok_or_else(|| format!("{algorithm} is not verified locally"))?;
        let der = pem_body(pem).ok_or("the public key is not a PEM PUBLIC KEY block")?;
        let key = subject_public_key(&der).ok_or("the public key is not a DER SubjectPublicKeyInfo")?;
        Ok(PkixKey { algorithm, key: key.to_vec() })
    }

    /// Does `signature` (as Google stores it: ASN.1 DER for ECDSA) sign exactly `payload`?
    pub fn verifies(&self, payload: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(self.algorithm.ring(), &self.key).verify(payload, signature).is_ok()
    }
}

fn pem_body(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body = pem.trim().strip_prefix("-----BEGIN PUBLIC KEY-----")?.strip_suffix("-----END PUBLIC KEY-----")?;
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact).ok()
}

/// Reads one DER element at the start of `input`: (tag, contents, rest).
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        n if n < 0x80 => (usize::from(n), rest),
        0x81 => (usize::from(*rest.first()?), &rest[1..]),
        0x82 => (usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])), rest.get(2..)?),
        _ => return None,
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The subjectPublicKey bits of a SubjectPublicKeyInfo.
fn subject_public_key(der: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const BIT_STRING: u8 = 0x03;
    let (tag, spki, rest) = element(der)?;
    if tag != SEQUENCE || !rest.is_empty() {
        return None;
    }
    let (tag, _algorithm, spki) = element(spki)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, bits, rest) = element(spki)?;
    // The first content byte counts the unused bits of the last byte: 0 for keys.
    (tag == BIT_STRING && rest.is_empty() && bits.first() == Some(&0)).then(|| &bits[1..])
}

#[cfg(test)]
pub(crate) mod tests {
    use base64::Engine;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    use super::*;

    /// A fresh P-256 key: (PEM public key, signer).
    pub(crate) fn p256() -> (String, impl Fn(&[u8]) -> Vec<u8>) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING point }
        let mut spki = hex("3059301306072a8648ce3d020106082a8648ce3d030107034200");
        spki.extend_from_slice(pair.public_key().as_ref());
        let body = base64::engine::general_purpose::STANDARD.encode(spki);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n");
        (pem, move |msg: &[u8]| pair.sign(&SystemRandom::new(), msg).unwrap().as_ref().to_vec())
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn an_ecdsa_signature_verifies_over_its_payload_only() {
        let (pem, sign) = p256();
        let key = PkixKey::parse(&pem, "ECDSA_P256_SHA256").unwrap();
        let signature = sign(b"payload");
        assert!(key.verifies(b"payload", &signature));
        assert!(!key.verifies(b"payload ", &signature));
        assert!(!key.verifies(b"payload", &signature[..signature.len() - 1]));
        let (other, _) = p256();
        assert!(!PkixKey::parse(&other, "EC_SIGN_P256_SHA256").unwrap().verifies(b"payload", &signature));
    }

    #[test]
    fn what_ring_cannot_check_or_read_is_said_not_guessed() {
        let (pem, _) = p256();
        assert!(PkixKey::parse(&pem, "ECDSA_P521_SHA512").unwrap_err().contains("not verified locally"));
        assert!(PkixKey::parse(&pem, "ML_DSA_65").is_err());
        assert!(
            PkixKey::parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "ECDSA_P256_SHA256").is_err()
        );
        assert!(PkixKey::parse("not pem", "ECDSA_P256_SHA256").is_err());
        assert_eq!(subject_public_key(&[0x30, 0x82, 0xff]), None, "a length past the end is refused");
    }
}
