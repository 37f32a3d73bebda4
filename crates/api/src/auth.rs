//! Passwords (Argon2id) and the authenticated-caller extractor. Tokens themselves
//! are minted and verified by `guildhall_runtime::tokens`, shared with the gateway.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use guildhall_domain::entity::User;
use guildhall_model::error_code;
use guildhall_model::id::UserId;
#[cfg(test)]
use guildhall_runtime::Directory;
use guildhall_runtime::Error;
pub use guildhall_runtime::tokens::Tokens;

use crate::AppState;
use crate::error::ApiError;

/// Argon2id cost; configurable so tests and benchmarks stay fast.
#[derive(Clone, Debug)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        // OWASP's second Argon2id recommendation: 19 MiB, 2 iterations.
        PasswordCost { memory_kib: 19 * 1024, iterations: 2 }
    }
}

fn argon(cost: &PasswordCost) -> Argon2<'static> {
    let params =
        Params::new(cost.memory_kib.max(8), cost.iterations.max(1), 1, None).expect("cost parameters are in range");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password on a blocking thread (Argon2 is deliberately slow).
pub async fn hash_password(password: String, cost: PasswordCost) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|_| Error::internal())?;
        let salt = SaltString::encode_b64(&salt).map_err(|_| Error::internal())?;
        argon(&cost).hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|_| Error::internal())
    })
    .await
    .map_err(|_| Error::internal())?
}

/// Verifies a password on a blocking thread.
pub async fn verify_password(password: String, hash: String, cost: PasswordCost) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| argon(&cost).verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// Random bytes for secrets and codes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random source is available");
    b
}

/// The authenticated caller. Extracting it answers 401 (code 0, "401:
/// Unauthorized") when the header is missing or the token does not verify.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: Arc<User>,
}

impl Caller {
    pub fn id(&self) -> UserId {
        self.user.id
    }
    pub fn is_bot(&self) -> bool {
        self.user.bot
    }
    /// 20001 for routes bots may not use.
    pub fn require_user_account(&self) -> Result<(), Error> {
        if self.user.bot {
            return Err(Error::new(
                guildhall_runtime::ErrorKind::Forbidden,
                error_code::BOTS_CANNOT_USE,
                "Bots cannot use this endpoint",
            ));
        }
        Ok(())
    }
}

/// Strips `Bot ` / `Bearer ` (user tokens come bare, as Discord's client sends them).
pub fn token_from_header(value: &str) -> &str {
    let v = value.trim();
    v.strip_prefix("Bot ").or_else(|| v.strip_prefix("Bearer ")).unwrap_or(v).trim()
}

/// The user whose token the rate-limit middleware already verified for this
/// request (request extension), so [`Caller`] does not verify it again.
#[derive(Clone, Debug)]
pub(crate) struct Verified(pub(crate) Arc<User>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(Verified(user)) = parts.extensions.get::<Verified>() {
            return Ok(Caller { user: user.clone() });
        }
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let user = header
            .map(token_from_header)
            .and_then(|t| state.tokens.verify(t, &state.rt.directory))
            .ok_or_else(|| ApiError(Error::unauthorized()))?;
        Ok(Caller { user })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(generation: u32) -> User {
        User {
            id: UserId::new(175928847299117063),
            username: "a".into(),
            global_name: None,
            avatar: None,
            bot: false,
            email: None,
            password_hash: None,
            token_generation: generation,
            flags: 0,
            locale: "en-US".into(),
        }
    }

    #[test]
    fn mint_verify_revoke_tamper() {
        let dir = Directory::default();
        dir.put_user(user(0));
        let tokens = Tokens::new([7; 32]);
        let t = tokens.mint(&user(0));
        assert_eq!(t.split('.').count(), 3);
        assert!(tokens.verify(&t, &dir).is_some());
        // Another secret, a flipped character, or a bumped generation all fail.
        assert!(Tokens::new([8; 32]).verify(&t, &dir).is_none());
        let mut tampered = t.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(tokens.verify(std::str::from_utf8(&tampered).unwrap(), &dir).is_none());
        dir.put_user(user(1));
        assert!(tokens.verify(&t, &dir).is_none());
        assert!(tokens.verify("a.b", &dir).is_none());
        assert!(tokens.verify("", &dir).is_none());
    }
}
