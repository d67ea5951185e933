//! AWS Signature Version 4 for Bedrock requests, with `aws-sigv4`.

use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use gtl_core::ProviderError;
use gtl_proto::ErrorCode;

use crate::config::AwsCredentials;

/// The SigV4 signing name of the Bedrock runtime.
pub(crate) const SERVICE: &str = "bedrock";

/// Signs a request and returns the headers to add: `authorization`,
/// `x-amz-date` and, with a session token, `x-amz-security-token`.
///
/// `url` is the full request URL as sent (path already percent-encoded);
/// `headers` are the other headers sent, which get signed too. The
/// signature covers the body's SHA-256. SigV4's canonical URI encodes each
/// path segment twice (every service but S3), which the crate's default
/// settings do.
pub(crate) fn sign_request(
    credentials: &AwsCredentials,
    region: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, ProviderError> {
    sign_with(
        credentials,
        region,
        SERVICE,
        method,
        url,
        headers,
        body,
        time,
    )
}

/// [`sign_request`] for any signing name (the known-answer tests use
/// AWS's test-suite service, `service`).
#[allow(clippy::too_many_arguments, reason = "the parts of a SigV4 signature")]
fn sign_with(
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> Result<Vec<(&'static str, String)>, ProviderError> {
    let failed = |e: &dyn fmt::Display| {
        ProviderError::new(ErrorCode::Internal, format!("sigv4 signing failed: {e}"))
    };
    let identity = Credentials::new(
        &credentials.access_key_id,
        credentials.secret_access_key.expose(),
        credentials
            .session_token
            .as_ref()
            .map(|t| t.expose().to_owned()),
        None,
        "gtl",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| failed(&e))?;
    let (instructions, _signature) = sign(request, &params).map_err(|e| failed(&e))?.into_parts();
    let (headers, _params) = instructions.into_parts();
    Ok(headers
        .into_iter()
        .map(|h| (h.name(), h.value().to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use hmac::{Hmac, Mac as _};
    use sha2::{Digest as _, Sha256};

    use super::*;

    /// 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn suite_credentials(token: Option<&str>) -> AwsCredentials {
        let credentials =
            AwsCredentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
        match token {
            Some(token) => credentials.with_session_token(token),
            None => credentials,
        }
    }

    fn header<'a>(headers: &'a [(&str, String)], name: &str) -> &'a str {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
    }

    /// AWS SigV4 test suite, `post-vanilla` (`header-signed-request.txt`).
    #[test]
    fn aws_test_suite_post_vanilla() {
        let headers = sign_with(
            &suite_credentials(None),
            "us-east-1",
            "service",
            "POST",
            "https://example.amazonaws.com/",
            &[],
            b"",
            suite_time(),
        )
        .unwrap();
        assert_eq!(header(&headers, "x-amz-date"), "20150830T123600Z");
        assert_eq!(
            header(&headers, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    /// AWS SigV4 test suite, `get-vanilla-with-session-token`.
    #[test]
    fn aws_test_suite_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let headers = sign_with(
            &suite_credentials(Some(token)),
            "us-east-1",
            "service",
            "GET",
            "https://example.amazonaws.com/",
            &[],
            b"",
            suite_time(),
        )
        .unwrap();
        assert_eq!(header(&headers, "x-amz-security-token"), token);
        assert_eq!(
            header(&headers, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
        );
    }

    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A Bedrock request signed by `sign_request`, checked against the
    /// signature computed here step by step from the SigV4 documentation
    /// ("Create a signed AWS API request"), with `hmac` and `sha2` alone.
    #[test]
    fn bedrock_request_matches_a_hand_computed_signature() {
        let credentials = suite_credentials(None);
        let body = br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#;
        let url = "https://bedrock-runtime.us-west-2.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream";
        let headers = [
            ("content-type", "application/json"),
            ("accept", "application/vnd.amazon.eventstream"),
        ];
        let signed = sign_request(
            &credentials,
            "us-west-2",
            "POST",
            url,
            &headers,
            body,
            suite_time(),
        )
        .unwrap();

        // Step 1: the canonical request. Each path segment is URI-encoded
        // twice: the `%3A` sent on the wire becomes `%253A`. Headers are
        // lowercased, sorted, and the host comes from the URL.
        let canonical_request = format!(
            "POST\n\
             /model/anthropic.claude-3-haiku-20240307-v1%253A0/converse-stream\n\
             \n\
             accept:application/vnd.amazon.eventstream\n\
             content-type:application/json\n\
             host:bedrock-runtime.us-west-2.amazonaws.com\n\
             x-amz-date:20150830T123600Z\n\
             \n\
             accept;content-type;host;x-amz-date\n\
             {}",
            hex(&Sha256::digest(body))
        );
        // Step 2: the string to sign.
        let scope = "20150830/us-west-2/bedrock/aws4_request";
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n20150830T123600Z\n{scope}\n{}",
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        // Step 3: the signing key, then the signature.
        let key = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830");
        let key = hmac(&key, "us-west-2");
        let key = hmac(&key, "bedrock");
        let key = hmac(&key, "aws4_request");
        let signature = hex(&hmac(&key, &string_to_sign));

        assert_eq!(
            header(&signed, "authorization"),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, \
                 SignedHeaders=accept;content-type;host;x-amz-date, Signature={signature}"
            )
        );
        assert_eq!(header(&signed, "x-amz-date"), "20150830T123600Z");
        assert!(signed.iter().all(|(n, _)| *n != "x-amz-security-token"));
    }
}
