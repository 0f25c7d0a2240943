//! The first look at an untrusted token, before any key is chosen: shape,
//! base64url, JSON, and the algorithm allow-list. Everything here is decided
//! from the token alone, so a malformed token or a forbidden algorithm (`none`,
//! HS256 "signed" with our public key, RS512, ...) never reaches a key, and never
//! makes us fetch the JWKS.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::error::{AuthError, shown};

/// Tokens above this are refused unread; Clerk session tokens are 1–3 KiB even
/// with custom claims, and this bounds the work a hostile request can cause.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What the header says, once it has passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Inspected {
    pub(super) alg: Algorithm,
    pub(super) kid: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    // Only its presence matters; `jku`, `x5u` and an embedded `jwk` are
    // deliberately not read at all: keys come from configuration, never from
    // the token.
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

pub(super) fn inspect(token: &str) -> Result<Inspected, AuthError> {
    if token.trim().is_empty() {
        return Err(AuthError::MissingToken);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::malformed("it is longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::malformed(
            "a JWT has exactly three dot-separated parts",
        ));
    };

    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::malformed("its header is not base64url"))?;
    let header: RawHeader = serde_json::from_slice(&header)
        .map_err(|_| AuthError::malformed("its header is not a JSON object with a string `alg`"))?;
    let alg = match header.alg.as_str() {
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        other => {
            return Err(AuthError::AlgorithmNotAllowed { alg: shown(other) });
        }
    };
    if header.crit.is_some() {
        // RFC 7515 §4.1.11: a recipient that does not understand a critical
        // extension must reject the token.
        return Err(AuthError::malformed(
            "it has critical header extensions (`crit`), which are not supported",
        ));
    }

    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AuthError::malformed("its payload is not base64url"))?;
    if !matches!(
        serde_json::from_slice::<serde_json::Value>(&payload),
        Ok(serde_json::Value::Object(_))
    ) {
        return Err(AuthError::malformed("its payload is not a JSON object"));
    }
    if signature.is_empty() || URL_SAFE_NO_PAD.decode(signature).is_err() {
        return Err(AuthError::malformed(
            "its signature is missing or not base64url",
        ));
    }

    Ok(Inspected {
        alg,
        kid: header.kid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn with_header(header: &str) -> String {
        format!("{}.{}.{}", b64(header), b64(r#"{"sub":"u"}"#), b64("sig"))
    }

    #[test]
    fn accepts_rs256_and_es256_headers() {
        let t = with_header(r#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#);
        assert_eq!(
            inspect(&t).unwrap(),
            Inspected {
                alg: Algorithm::RS256,
                kid: Some("k1".into())
            }
        );
        let t = with_header(r#"{"alg":"ES256"}"#);
        assert_eq!(
            inspect(&t).unwrap(),
            Inspected {
                alg: Algorithm::ES256,
                kid: None
            }
        );
    }

    #[test]
    fn refuses_every_other_algorithm() {
        for alg in [
            "none", "None", "HS256", "HS512", "RS384", "RS512", "PS256", "ES384", "EdDSA", "rs256",
            "",
        ] {
            let t = with_header(&format!(r#"{{"alg":"{alg}","kid":"k1"}}"#));
            assert_eq!(
                inspect(&t).unwrap_err().code(),
                "algorithm_not_allowed",
                "{alg}"
            );
        }
    }

    #[test]
    fn refuses_malformed_shapes() {
        let cases = [
            "garbage".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            format!("{}.{}", b64(r#"{"alg":"RS256"}"#), b64("{}")),
            format!("!!!.{}.{}", b64("{}"), b64("s")),
            format!("{}.@@@.{}", b64(r#"{"alg":"RS256"}"#), b64("s")),
            format!("{}.{}.***", b64(r#"{"alg":"RS256"}"#), b64("{}")),
            format!("{}.{}.", b64(r#"{"alg":"RS256"}"#), b64("{}")),
            with_header("not json"),
            with_header(r#"{"kid":"k1"}"#),
            with_header(r#"{"alg":256}"#),
            with_header(r#"{"alg":"RS256","kid":7}"#),
            with_header(r#"{"alg":"RS256","crit":["exp"]}"#),
            format!(
                "{}.{}.{}",
                b64(r#"{"alg":"RS256"}"#),
                b64("[1,2]"),
                b64("s")
            ),
            "x".repeat(MAX_TOKEN_BYTES + 1),
        ];
        for t in cases {
            let err = inspect(&t).unwrap_err();
            assert_eq!(err.code(), "malformed_token", "{t:.60}: {err}");
        }
        assert_eq!(inspect("").unwrap_err().code(), "missing_token");
    }

    #[test]
    fn hostile_alg_is_shortened_in_the_message() {
        let t = with_header(&format!(r#"{{"alg":"x\ny{}"}}"#, "A".repeat(500)));
        let err = inspect(&t).unwrap_err();
        let AuthError::AlgorithmNotAllowed { alg } = &err else {
            panic!("{err:?}");
        };
        assert!(alg.chars().count() <= 65);
        assert!(!err.to_string().contains('\n'));
    }
}
