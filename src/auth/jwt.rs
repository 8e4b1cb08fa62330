//! Access and refresh tokens: HS256 only, each kind with its own key and
//! audience so neither passes as the other, every claim required and typed.
//!
//! jsonwebtoken checks the signature, `exp`, `nbf`, `iss` and `aud`; the
//! claims type makes `jti`, `iat` and `fam` required too, and refuses
//! unknown claims and wrongly typed ones (a time given as a string or a
//! float fails to parse as an integer).

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 4096;

const ISSUER: &str = "chat";
const ACCESS_AUDIENCE: &str = "chat:access";
const REFRESH_AUDIENCE: &str = "chat:refresh";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub sub: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    pub jti: String,
    pub fam: String,
}

impl Claims {
    /// The user id in `sub`, written as we write it (`7`, not `+7` or
    /// `07`): one user, one spelling.
    pub fn user_id(&self) -> Option<i64> {
        let id: i64 = self.sub.parse().ok().filter(|id| *id > 0)?;
        (id.to_string() == self.sub).then_some(id)
    }
}

/// Why a token was refused: logged, never shown to the client, which only
/// ever sees one generic 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooLong,
    Malformed,
    Algorithm,
    HeaderKey,
    Signature,
    Expired,
    NotYetValid,
    Issuer,
    Audience,
    Claims,
    Revoked,
    FamilyRevoked,
    BeforeValidAfter,
    UnknownUser,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooLong => "too_long",
            Refusal::Malformed => "malformed",
            Refusal::Algorithm => "algorithm",
            Refusal::HeaderKey => "header_key",
            Refusal::Signature => "signature",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::Issuer => "issuer",
            Refusal::Audience => "audience",
            Refusal::Claims => "claims",
            Refusal::Revoked => "revoked",
            Refusal::FamilyRevoked => "family_revoked",
            Refusal::BeforeValidAfter => "before_valid_after",
            Refusal::UnknownUser => "unknown_user",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Access,
    Refresh,
}

/// One kind of token: its key, audience and lifetime.
#[derive(Clone)]
struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    audience: &'static str,
}

impl Signer {
    fn new(secret: &[u8], audience: &'static str, leeway: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            audience,
        }
    }
}

#[derive(Clone)]
pub struct Tokens {
    access: Signer,
    refresh: Signer,
}

/// A freshly signed token and its claims.
pub struct Signed {
    pub token: String,
    pub claims: Claims,
}

impl Tokens {
    pub fn new(access_secret: &[u8], refresh_secret: &[u8], leeway: Duration) -> Self {
        Self {
            access: Signer::new(access_secret, ACCESS_AUDIENCE, leeway),
            refresh: Signer::new(refresh_secret, REFRESH_AUDIENCE, leeway),
        }
    }

    fn signer(&self, kind: Kind) -> &Signer {
        match kind {
            Kind::Access => &self.access,
            Kind::Refresh => &self.refresh,
        }
    }

    /// Signs a token of `kind` for `user_id` in `family`, valid from now
    /// (Unix seconds) until `exp`.
    pub fn sign(
        &self,
        kind: Kind,
        user_id: i64,
        family: &str,
        now: i64,
        exp: i64,
    ) -> anyhow::Result<Signed> {
        let signer = self.signer(kind);
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            nbf: now,
            exp,
            iss: ISSUER.to_owned(),
            aud: signer.audience.to_owned(),
            jti: crate::util::random_token(16),
            fam: family.to_owned(),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &signer.encoding)?;
        Ok(Signed { token, claims })
    }

    /// Checks a token of `kind`: size, header, signature and claims.
    pub fn verify(&self, kind: Kind, token: &str) -> Result<Claims, Refusal> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::TooLong);
        }
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(Refusal::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        if header.alg != Algorithm::HS256 {
            return Err(Refusal::Algorithm);
        }
        // A key or key location in the header is an attempt to choose the
        // key; we only ever use our own.
        if header.jwk.is_some()
            || header.jku.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.kid.is_some()
            || header.crit.is_some()
        {
            return Err(Refusal::HeaderKey);
        }
        let signer = self.signer(kind);
        let data = jsonwebtoken::decode::<Claims>(token, &signer.decoding, &signer.validation)
            .map_err(|e| refusal(e.kind()))?;
        let claims = data.claims;
        if claims.user_id().is_none() || claims.jti.is_empty() || claims.fam.is_empty() {
            return Err(Refusal::Claims);
        }
        // Issued in the future: such a token would outlive a later "log out
        // everywhere", whose check compares issue times.
        let now = crate::store::now_ms() / 1000;
        let leeway = i64::try_from(signer.validation.leeway).unwrap_or(0);
        if claims.iat > now.saturating_add(leeway) {
            return Err(Refusal::NotYetValid);
        }
        Ok(claims)
    }
}

fn refusal(kind: &jsonwebtoken::errors::ErrorKind) -> Refusal {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => Refusal::Signature,
        K::ExpiredSignature => Refusal::Expired,
        K::ImmatureSignature => Refusal::NotYetValid,
        K::InvalidIssuer => Refusal::Issuer,
        K::InvalidAudience => Refusal::Audience,
        K::InvalidAlgorithm | K::InvalidAlgorithmName => Refusal::Algorithm,
        K::MissingRequiredClaim(_) | K::Json(_) => Refusal::Claims,
        _ => Refusal::Malformed,
    }
}

#[cfg(test)]
mod tests;
