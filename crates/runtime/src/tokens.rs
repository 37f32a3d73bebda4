//! Tokens: Discord's three-part shape, `base64(user id).base64(issued
//! seconds).base64(HMAC-SHA256(secret, id . issued . generation))`. A token is
//! checked without a store read (the user's token generation is in memory) and
//! stops verifying when the generation is bumped (password change, bot token
//! reset). The MAC is compared in constant time.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use guildhall_domain::entity::User;
use guildhall_model::id::UserId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Directory;

type HmacSha256 = Hmac<Sha256>;

pub struct Tokens {
    secret: [u8; 32],
}

impl Tokens {
    pub fn new(secret: [u8; 32]) -> Tokens {
        Tokens { secret }
    }

    fn mac(&self, id: &str, issued: &str, generation: u32) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(issued.as_bytes());
        mac.update(b".");
        mac.update(&generation.to_be_bytes());
        mac.finalize().into_bytes().into()
    }

    pub fn mint(&self, user: &User) -> String {
        let id = STANDARD_NO_PAD.encode(user.id.to_string());
        let issued = URL_SAFE_NO_PAD.encode(guildhall_model::snowflake::now_ms().div_euclid(1000).to_be_bytes());
        let mac = URL_SAFE_NO_PAD.encode(self.mac(&id, &issued, user.token_generation));
        format!("{id}.{issued}.{mac}")
    }

    /// The user a token belongs to, if it verifies.
    pub fn verify(&self, token: &str, directory: &Directory) -> Option<Arc<User>> {
        let mut parts = token.split('.');
        let (id_part, issued, mac_part) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || id_part.len() > 32 || issued.len() > 16 || mac_part.len() > 64 {
            return None;
        }
        let id_bytes = STANDARD_NO_PAD.decode(id_part.trim_end_matches('=')).ok()?;
        let id: UserId = std::str::from_utf8(&id_bytes).ok()?.parse().ok()?;
        let user = directory.user(id)?;
        let given = URL_SAFE_NO_PAD.decode(mac_part).ok()?;
        let expected = self.mac(id_part, issued, user.token_generation);
        bool::from(given.ct_eq(&expected)).then_some(user)
    }
}
