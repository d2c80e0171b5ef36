//! Verifying that a request really comes from Slack (v0 signatures).
//!
//! `X-Slack-Signature = "v0=" + hex(HMAC-SHA256(signing_secret, "v0:" + X-Slack-Request-Timestamp + ":" + raw body))`,
//! compared in constant time, and refused when the timestamp is more than the tolerance (5 minutes) away from
//! now. Runs before the body is parsed. Pure: the caller passes `now`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a request was refused (all answered with 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Slack-Signature or X-Slack-Request-Timestamp")]
    Missing,
    #[error("malformed signature headers")]
    Malformed,
    #[error("request timestamp outside the replay window")]
    Stale,
    #[error("signature mismatch")]
    Mismatch,
    #[error("no signing secret configured")]
    NoSecret,
}

/// Checks a Slack request. `timestamp` and `signature` are the raw header values.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_epoch_secs: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let headers = check_headers(secret, timestamp, signature, now_epoch_secs, tolerance_secs)?;
    verify_body(secret, &headers, body)
}

/// The signature headers of a request, checked for presence, form and freshness (not yet against a body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `X-Slack-Request-Timestamp`, Unix seconds.
    pub timestamp: i64,
    /// The MAC the signature carries (decoded from its hex).
    pub mac: Vec<u8>,
}

/// Everything [`verify`] checks before it needs the body: a secret is configured, both headers are present and
/// well formed, and the timestamp is inside the window. Lets the caller refuse a request before reading its body.
pub fn check_headers(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    now_epoch_secs: i64,
    tolerance_secs: i64,
) -> Result<SignatureHeaders, SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let (ts, sig) = match (timestamp, signature) {
        (Some(t), Some(s)) => (t.trim(), s.trim()),
        _ => return Err(SignatureError::Missing),
    };
    let ts_num: i64 = ts.parse().map_err(|_| SignatureError::Malformed)?;
    if (now_epoch_secs - ts_num).abs() > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    let hex_sig = sig.strip_prefix("v0=").ok_or(SignatureError::Malformed)?;
    let mac = hex::decode(hex_sig).map_err(|_| SignatureError::Malformed)?;
    Ok(SignatureHeaders {
        timestamp: ts_num,
        mac,
    })
}

/// Checks the body against headers [`check_headers`] accepted, in constant time.
pub fn verify_body(
    secret: &[u8],
    headers: &SignatureHeaders,
    body: &[u8],
) -> Result<(), SignatureError> {
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::NoSecret)?;
    mac.update(b"v0:");
    mac.update(headers.timestamp.to_string().as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&headers.mac)
        .map_err(|_| SignatureError::Mismatch)
}

/// A digest of a verified request's signature, by which a replay of it is recognised: SHA-256 of the timestamp
/// and the MAC, in hex. Neither the secret nor the body can be read back from it.
pub fn replay_key(headers: &SignatureHeaders) -> String {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(headers.timestamp.to_string().as_bytes());
    h.update(b":");
    h.update(&headers.mac);
    hex::encode(h.finalize())
}

/// Computes the `X-Slack-Signature` value for a body (used by tests, the demo and the bench to sign requests).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any size");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// `sha256=<hex>` HMAC of a body, as GitHub's `X-Hub-Signature-256`; verified in constant time.
pub fn verify_hub_signature(secret: &[u8], header: Option<&str>, body: &[u8]) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    !secret.is_empty() && mac.verify_slice(&expected).is_ok()
}

/// Constant-time equality of two tokens (bearer tokens, GitLab's `X-Gitlab-Token`).
pub fn tokens_match(expected: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    !expected.is_empty() && expected.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TS: i64 = 1531420618;
    const BODY: &str = include_str!("../../tests/fixtures/slack_slash_command_signed_body.txt");
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_published_example_verifies() {
        assert_eq!(
            verify(
                SECRET,
                Some("1531420618"),
                Some(SIG),
                BODY.as_bytes(),
                TS + 10,
                300
            ),
            Ok(())
        );
        assert_eq!(sign(SECRET, TS, BODY.as_bytes()), SIG);
    }

    #[test]
    fn a_changed_body_is_a_mismatch() {
        let mut body = BODY.to_string();
        body.push('x');
        assert_eq!(
            verify(
                SECRET,
                Some("1531420618"),
                Some(SIG),
                body.as_bytes(),
                TS,
                300
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_request_older_than_five_minutes_is_stale() {
        assert_eq!(
            verify(
                SECRET,
                Some("1531420618"),
                Some(SIG),
                BODY.as_bytes(),
                TS + 301,
                300
            ),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(
                SECRET,
                Some("1531420618"),
                Some(SIG),
                BODY.as_bytes(),
                TS - 301,
                300
            ),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn missing_or_garbled_headers_are_refused() {
        assert_eq!(
            verify(SECRET, None, Some(SIG), b"", TS, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(SECRET, Some("abc"), Some(SIG), b"", TS, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(SECRET, Some("1531420618"), Some("v1=00"), b"", TS, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"", Some("1531420618"), Some(SIG), b"", TS, 300),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn githubs_published_vector_verifies() {
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_hub_signature(
            b"It's a Secret to Everybody",
            Some(sig),
            b"Hello, World!"
        ));
        assert!(!verify_hub_signature(
            b"It's a Secret to Everybody",
            Some(sig),
            b"Hello, World?"
        ));
        assert!(!verify_hub_signature(b"", Some(sig), b"Hello, World!"));
    }

    #[test]
    fn token_comparison_needs_a_configured_token() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("", ""));
    }
}
