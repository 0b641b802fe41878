//! Access tokens: compact JWS (RFC 7515) signed with Ed25519 (`alg` `EdDSA`, RFC 8037),
//! and the JWKS that publishes the public halves.
//!
//! Written here over `ring` (already in the tree for TLS) rather than with a JWT crate:
//! one algorithm, four fields to check, and "now" comes from the feature's clock, so
//! tests control expiry. Verification accepts exactly one header shape (`alg` `EdDSA`
//! and a `kid` we know): no `none`, no algorithm chosen by the token.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};

/// The `kid` of a signing key: 22 characters of base64url (16 random bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Kid(String);

impl Kid {
    pub fn parse(s: &str) -> Result<Kid, &'static str> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Kid(s.to_owned()))
        } else {
            Err("a key id is 1 to 64 characters of base64url")
        }
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Kid {
        Kid(B64URL.encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Kid {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Kid, &'static str> {
        Kid::parse(&s)
    }
}

impl From<Kid> for String {
    fn from(k: Kid) -> String {
        k.0
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The JOSE header of every token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    kid: Kid,
}

/// The claims of an access token: `sub` (the user id), `exp` and `iat` (Unix seconds),
/// `jti` (unique per token), `scope` (space-separated, as OAuth writes it). A meeting
/// token (a join grant's `token`) adds `mid` (the meeting), `pid` (the participant the
/// grant names) and `name` (the display name), and its `sub` is `guest` for a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why a presented token was not accepted. The words are for logs and error bodies:
/// they never contain the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWT")]
    Malformed,
    #[error("the token is not signed with EdDSA")]
    WrongAlgorithm,
    #[error("the token is signed with a key this server does not publish")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token has been revoked")]
    Revoked,
    #[error("a meeting token is not an access token")]
    NotAnAccessToken,
    #[error("the token is not a meeting token")]
    NotAMeetingToken,
}

pub(crate) const ALG: &str = "EdDSA";

/// Signs `claims` with `pair`, naming it `kid`. The token is a bearer secret.
pub(crate) fn sign(kid: &Kid, pair: &Ed25519KeyPair, claims: &Claims) -> String {
    let header = Header {
        alg: ALG.to_owned(),
        typ: Some("JWT".to_owned()),
        kid: kid.clone(),
    };
    // Serialising these plain structs cannot fail; an empty object would only make a
    // token nobody accepts.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let claims = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = format!("{}.{}", B64URL.encode(header), B64URL.encode(claims));
    let signature = pair.sign(token.as_bytes());
    token.push('.');
    token.push_str(&B64URL.encode(signature.as_ref()));
    token
}

/// A token split and decoded, its signature not yet checked.
#[derive(Debug)]
pub(crate) struct Unverified<'a> {
    pub kid: Kid,
    signed: &'a str,
    signature: Vec<u8>,
    claims: &'a str,
}

/// Splits a compact JWS and reads its header. Refuses anything but `alg` `EdDSA` with a
/// `kid`.
pub(crate) fn split(token: &str) -> Result<Unverified<'_>, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = B64URL
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(TokenError::Malformed)?;
    if header.alg != ALG {
        return Err(TokenError::WrongAlgorithm);
    }
    let signature = B64URL
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let signed_len = token.len() - signature_len(token);
    Ok(Unverified {
        kid: header.kid,
        signed: &token[..signed_len],
        signature,
        claims,
    })
}

/// Bytes of `.signature` at the end of `token`.
fn signature_len(token: &str) -> usize {
    token.rfind('.').map_or(0, |dot| token.len() - dot)
}

impl Unverified<'_> {
    /// Checks the signature against `public` (32 bytes) and reads the claims; then the
    /// expiry against `now` (Unix seconds).
    pub fn verify(self, public: &[u8], now: i64) -> Result<Claims, TokenError> {
        signature::UnparsedPublicKey::new(&signature::ED25519, public)
            .verify(self.signed.as_bytes(), &self.signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = B64URL
            .decode(self.claims)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// One public key as a JWK (RFC 8037): `kty` `OKP`, `crv` `Ed25519`, `alg` `EdDSA`,
/// `use` `sig`, `kid`, `x` (the 32-byte public key, base64url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub kid: Kid,
    pub x: String,
}

impl Jwk {
    pub fn ed25519(kid: &Kid, public: &[u8]) -> Jwk {
        Jwk {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            alg: ALG.to_owned(),
            use_: "sig".to_owned(),
            kid: kid.clone(),
            x: B64URL.encode(public),
        }
    }

    /// The public key bytes, for a client verifying a token against the JWKS.
    pub fn public_key(&self) -> Option<Vec<u8>> {
        B64URL.decode(&self.x).ok()
    }
}

/// `GET /.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// Verifies `token` against a JWK set alone (what any client of the JWKS does): the
/// header's `kid` picks the key. For tests and for other services.
pub fn verify_with_jwks(token: &str, jwks: &Jwks, now: i64) -> Result<Claims, TokenError> {
    let unverified = split(token)?;
    let jwk = jwks
        .keys
        .iter()
        .find(|k| k.kid == unverified.kid && k.kty == "OKP" && k.crv == "Ed25519")
        .ok_or(TokenError::UnknownKey)?;
    let public = jwk.public_key().ok_or(TokenError::UnknownKey)?;
    unverified.verify(&public, now)
}

/// The public half of a key pair.
pub(crate) fn public_of(pair: &Ed25519KeyPair) -> Vec<u8> {
    pair.public_key().as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use ring::rand::SystemRandom;

    fn pair() -> Ed25519KeyPair {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(doc.as_ref()).unwrap()
    }

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "u1".into(),
            exp,
            iat: 100,
            jti: "j1".into(),
            scope: "meetings:read".into(),
            mid: None,
            pid: None,
            name: None,
        }
    }

    #[test]
    fn a_signed_token_verifies_with_its_jwk_until_it_expires() {
        let (kid, key) = (Kid::parse("k1").unwrap(), pair());
        let token = sign(&kid, &key, &claims(200));
        let header: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(token.split('.').next().unwrap()).unwrap())
                .unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["kid"], "k1");
        let jwks = Jwks {
            keys: vec![Jwk::ed25519(&kid, &public_of(&key))],
        };
        assert_eq!(verify_with_jwks(&token, &jwks, 199).unwrap(), claims(200));
        assert_eq!(
            verify_with_jwks(&token, &jwks, 200),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn tampered_foreign_and_unsigned_tokens_are_refused() {
        let (kid, key) = (Kid::parse("k1").unwrap(), pair());
        let jwks = Jwks {
            keys: vec![Jwk::ed25519(&kid, &public_of(&key))],
        };
        // Signed by another key under the same kid.
        let forged = sign(&kid, &pair(), &claims(200));
        assert_eq!(
            verify_with_jwks(&forged, &jwks, 0),
            Err(TokenError::BadSignature)
        );
        // Claims swapped after signing.
        let token = sign(&kid, &key, &claims(200));
        let mut parts: Vec<&str> = token.split('.').collect();
        let other = B64URL.encode(serde_json::to_vec(&claims(9_999)).unwrap());
        parts[1] = &other;
        assert_eq!(
            verify_with_jwks(&parts.join("."), &jwks, 0),
            Err(TokenError::BadSignature)
        );
        // `alg: none`.
        let none = format!(
            "{}.{}.",
            B64URL.encode(br#"{"alg":"none","kid":"k1"}"#),
            B64URL.encode(serde_json::to_vec(&claims(200)).unwrap())
        );
        assert_eq!(
            verify_with_jwks(&none, &jwks, 0),
            Err(TokenError::WrongAlgorithm)
        );
        let unknown = sign(&Kid::parse("k2").unwrap(), &key, &claims(200));
        assert_eq!(
            verify_with_jwks(&unknown, &jwks, 0),
            Err(TokenError::UnknownKey)
        );
        for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(verify_with_jwks(garbage, &jwks, 0).is_err(), "{garbage:?}");
        }
    }
}
