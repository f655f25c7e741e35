//! AWS Signature Version 4 on ring's HMAC-SHA256 and SHA-256: all an AWS subject token needs
//! (a signed `GetCallerIdentity` request that Google's STS replays). Pure: no I/O, no clock.

use std::collections::BTreeMap;

use ring::{digest, hmac};
use url::Url;

pub struct Keys<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// Signs `method url` with `headers` (lower-case names) and `payload`, returning every header
/// the request must carry: those given, `host`, `x-amz-date` (unless a `date` is given),
/// `x-amz-security-token` with a session token, and `Authorization`.
pub fn sign(
    method: &str,
    url: &Url,
    mut headers: BTreeMap<String, String>,
    payload: &[u8],
    region: &str,
    keys: &Keys<'_>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<BTreeMap<String, String>, String> {
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return Err(format!("{url} has no host")),
    };
    // The service is the host's first label: `sts` for sts.us-east-1.amazonaws.com.
    let service = host.split(['.', ':']).next().unwrap_or_default().to_owned();
    let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
    let date_stamp = now.format("%Y%m%d").to_string();
    if let Some(t) = keys.session_token {
        headers.insert("x-amz-security-token".into(), t.into());
    }
    headers.insert("host".into(), host);
    if !headers.contains_key("date") {
        headers.insert("x-amz-date".into(), amz_date.clone());
    }
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
    let signed_headers = headers.keys().cloned().collect::<Vec<_>>().join(";");
    let path = if url.path().is_empty() { "/" } else { url.path() };
    let canonical_request = format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        canonical_query(url.query().unwrap_or("")),
        sha256_hex(payload)
    );
    let scope = format!("{date_stamp}/{region}/{service}/aws4_request");
    let string_to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical_request.as_bytes()));
    let key = [date_stamp.as_str(), region, &service, "aws4_request"]
        .iter()
        .fold(format!("AWS4{}", keys.secret_access_key).into_bytes(), |k, part| hmac256(&k, part.as_bytes()));
    let signature = hex(&hmac256(&key, string_to_sign.as_bytes()));
    headers.insert(
        "Authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            keys.access_key_id
        ),
    );
    Ok(headers)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data).as_ref().to_vec()
}

/// SigV4's UriEncode: RFC 3986 unreserved characters stay, everything else is %XX.
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (uri_encode(&k), uri_encode(&v))).collect();
    pairs.sort();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn signature(headers: &BTreeMap<String, String>) -> &str {
        headers["Authorization"].rsplit("Signature=").next().unwrap()
    }

    /// botocore's aws4 test suite, as google-auth-library-python's tests/test_aws.py uses it.
    #[test]
    fn the_get_vanilla_vectors_match() {
        let t = chrono::Utc.with_ymd_and_hms(2011, 9, 9, 23, 36, 0).unwrap();
        let date = BTreeMap::from([("date".to_string(), "Mon, 09 Sep 2011 23:36:00 GMT".to_string())]);
        let keys = Keys { access_key_id: "AKIDEXAMPLE", secret_access_key: SECRET, session_token: None };
        let url = Url::parse("https://host.foo.com").unwrap();
        let h = sign("GET", &url, date.clone(), b"", "us-east-1", &keys, t).unwrap();
        assert_eq!(signature(&h), "b27ccfbfa7df52a200ff74193ca6e32d4b48b8856fab7ebf1c595d0670a7e470");
        assert_eq!(
            h["Authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20110909/us-east-1/host/aws4_request, SignedHeaders=date;host, Signature=b27ccfbfa7df52a200ff74193ca6e32d4b48b8856fab7ebf1c595d0670a7e470"
        );
        let url = Url::parse("https://host.foo.com/?foo=Zoo&foo=aha").unwrap();
        let h = sign("GET", &url, date, b"", "us-east-1", &keys, t).unwrap();
        assert_eq!(signature(&h), "be7148d34ebccdc6423b19085378aa0bee970bdc61d144bd1a8c48c33079ab09");
    }

    /// A POST with a session token and x-amz-date (google-auth-library-python tests/test_aws.py).
    #[test]
    fn the_session_token_post_vector_matches() {
        let token = "AQoEXAMPLEH4aoAH0gNCAPyJxz4BlCFFxWNE1OPTgk5TthT+FvwqnKwRcOIfrRh3c/LTo6UDdyJwOOvEVPvLXCrrrUtdnniCEXAMPLE/IvU1dYUg2RVAJBanLiHb4IgRmpRV3zrkuWJOgQs8IZZaIv2BXIa2R4OlgkBN9bkUDNCJiBeb/AXlzBBko7b15fjrBs2+cTQtpZ3CYWFXG8C5zqx37wnOE49mRl/+OtkIKGO7fAE";
        let body = r#"{"KeySchema":[{"KeyType":"HASH","AttributeName":"Id"}],"TableName":"TestTable","AttributeDefinitions":[{"AttributeName":"Id","AttributeType":"S"}],"ProvisionedThroughput":{"WriteCapacityUnits":5,"ReadCapacityUnits":5}}"#;
        let t = chrono::Utc.with_ymd_and_hms(2020, 8, 11, 6, 55, 22).unwrap();
        let headers = BTreeMap::from([
            ("content-type".to_string(), "application/x-amz-json-1.0".to_string()),
            ("x-amz-target".to_string(), "DynamoDB_20120810.CreateTable".to_string()),
        ]);
        let keys = Keys {
            access_key_id: "AKIAIOSFODNN7EXAMPLE",
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            session_token: Some(token),
        };
        let url = Url::parse("https://dynamodb.us-east-2.amazonaws.com/").unwrap();
        let h = sign("POST", &url, headers, body.as_bytes(), "us-east-2", &keys, t).unwrap();
        assert_eq!(signature(&h), "eb8bce0e63654bba672d4a8acb07e72d69210c1797d56ce024dbbc31beb2a2c7");
        assert_eq!(h["x-amz-date"], "20200811T065522Z");
        assert_eq!(h["x-amz-security-token"], token);
    }

    #[test]
    fn query_encoding_is_rfc_3986() {
        assert_eq!(canonical_query("b=2&a=x y&c=%2F"), "a=x%20y&b=2&c=%2F");
        assert_eq!(uri_encode("a~b-c_d.e/f"), "a~b-c_d.e%2Ff");
    }
}
