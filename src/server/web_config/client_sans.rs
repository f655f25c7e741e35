//! `client_allowed_sans`: after the client certificate's chain is verified, one of its
//! Subject Alternative Names must equal an allowed entry, as exporter-toolkit compares them:
//! DNS names, e-mail addresses, IP addresses (in Go's text form) and URIs, exactly.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::extensions::GeneralName;

#[derive(Debug)]
pub struct AllowedSans {
    pub verifier: Arc<dyn ClientCertVerifier>,
    pub allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// Without a certificate there is no SAN to allow.
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.verifier.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.verifier.verify_client_cert(end_entity, intermediates, now)?;
        let sans =
            subject_alt_names(end_entity).ok_or(rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if sans.iter().any(|san| self.allowed.contains(san)) {
            Ok(verified)
        } else {
            tracing::debug!(?sans, "client certificate refused: none of its SANs is in client_allowed_sans");
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier.supported_verify_schemes()
    }
}

/// The certificate's SANs as strings; `None` if it cannot be parsed.
pub fn subject_alt_names(cert: &CertificateDer<'_>) -> Option<Vec<String>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let Some(extension) = parsed.subject_alternative_name().ok()? else {
        return Some(Vec::new());
    };
    let sans = extension.value.general_names.iter().filter_map(|name| match name {
        GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => Some((*s).to_owned()),
        GeneralName::IPAddress(bytes) => ip_text(bytes),
        _ => None,
    });
    Some(sans.collect())
}

/// Go's `net.IP.String()`: dotted quad for IPv4 (IPv4-mapped IPv6 included), RFC 5952 for IPv6.
fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => {
            let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(ip.to_string())
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair, SanType};

    use super::*;

    #[test]
    fn every_kind_of_san_is_read_as_go_prints_it() {
        let mut params = CertificateParams::new(vec!["prometheus.example.com".to_string()]).unwrap();
        params.subject_alt_names.extend([
            SanType::Rfc822Name("sre@example.com".try_into().unwrap()),
            SanType::URI("spiffe://example.com/ns/monitoring/sa/prometheus".try_into().unwrap()),
            SanType::IpAddress("10.0.0.7".parse().unwrap()),
            SanType::IpAddress("2001:db8::1".parse().unwrap()),
            SanType::IpAddress("::ffff:192.0.2.1".parse().unwrap()),
        ]);
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        assert_eq!(
            subject_alt_names(cert.der()).unwrap(),
            [
                "prometheus.example.com",
                "sre@example.com",
                "spiffe://example.com/ns/monitoring/sa/prometheus",
                "10.0.0.7",
                "2001:db8::1",
                "192.0.2.1"
            ]
        );
        assert_eq!(subject_alt_names(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])), None, "garbage");
    }
}
