//! `http_server_config.headers`: exporter-toolkit lets a web config add a fixed set of
//! security headers to every response and refuses any other header, so that a config cannot
//! override what the server itself decides (content type, encoding, authentication). The
//! same list and the same allowed values here.

use std::collections::BTreeMap;

use axum::http::{HeaderName, HeaderValue};

/// exporter-toolkit's `extraHTTPHeaders`: the header, and its allowed values (empty: any).
const ALLOWED: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// The headers to set, in order, or why the configuration is refused.
pub fn check(configured: &BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut headers = Vec::new();
    for (name, value) in configured {
        // exporter-toolkit compares the names exactly, as written in its documentation.
        let Some((_, values)) = ALLOWED.iter().find(|(allowed, _)| allowed == name) else {
            let allowed: Vec<&str> = ALLOWED.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "http_server_config.headers: {name:?} can not be configured (only {})",
                allowed.join(", ")
            ));
        };
        if !values.is_empty() && !values.contains(&value.as_str()) {
            return Err(format!("http_server_config.headers.{name}: {value:?} is not one of {values:?}"));
        }
        // exporter-toolkit: "Unset if blank".
        if value.is_empty() {
            continue;
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("http_server_config.headers.{name}: {value:?} is not a valid header value"))?;
        headers.push((HeaderName::from_bytes(name.as_bytes()).expect("the allowed names are valid"), value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_one(name: &str, value: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
        check(&BTreeMap::from([(name.to_string(), value.to_string())]))
    }

    #[test]
    fn only_exporter_toolkits_security_headers_with_their_values() {
        let ok = check_one("Strict-Transport-Security", "max-age=31536000; includeSubDomains").unwrap();
        assert_eq!(ok[0].0, "strict-transport-security");
        assert_eq!(ok[0].1, "max-age=31536000; includeSubDomains");
        assert_eq!(check_one("X-Frame-Options", "sameorigin").unwrap().len(), 1);
        assert_eq!(check_one("Content-Security-Policy", "").unwrap().len(), 0, "blank: unset");
        for refused in ["Content-Type", "Content-Encoding", "WWW-Authenticate", "Set-Cookie", "x-frame-options"] {
            let err = check_one(refused, "x").unwrap_err();
            assert!(
                err.starts_with(&format!("http_server_config.headers: {refused:?} can not be configured")),
                "{err}"
            );
        }
        let err = check_one("X-Frame-Options", "allow-from x").unwrap_err();
        assert_eq!(
            err,
            r#"http_server_config.headers.X-Frame-Options: "allow-from x" is not one of ["deny", "sameorigin"]"#
        );
        assert!(check_one("X-Content-Type-Options", "sniff").is_err());
        assert!(check_one("X-XSS-Protection", "1\nSet-Cookie: x").unwrap_err().contains("not a valid header value"));
    }
}
