//! A guest order's token: the only way a caller without an account can read the order it
//! placed. 256 random bits, handed out once in the `201` answer and stored only as its
//! SHA-256, so that a copy of the database reads no order (docs/access.md).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header a guest sends its token in.
pub const ORDER_TOKEN_HEADER: &str = "order-token";

/// Random bytes in a token: 256 bits, twice the 128 that make guessing hopeless.
const TOKEN_BYTES: usize = 32;

/// A freshly made token; shown to the client once and then forgotten.
pub struct OrderToken(String);

impl OrderToken {
    /// A new token from the operating system's random generator.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// What the database keeps.
    pub fn hash(&self) -> [u8; 32] {
        hash(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `presented` is the token whose hash is `stored`, in time that does not depend on
/// where the two differ. An order without a stored hash matches nothing.
pub fn matches(presented: Option<&str>, stored: Option<&[u8]>) -> bool {
    match (presented, stored) {
        (Some(presented), Some(stored)) => bool::from(hash(presented).ct_eq(stored)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_its_own_hash_only() {
        let token = OrderToken::generate();
        let other = OrderToken::generate();
        assert_ne!(token.as_str(), other.as_str());
        assert!(matches(Some(token.as_str()), Some(&token.hash())));
        assert!(!matches(Some(other.as_str()), Some(&token.hash())));
        assert!(!matches(None, Some(&token.hash())));
        assert!(!matches(Some(token.as_str()), None));
        // A truncated stored value is never equal.
        assert!(!matches(Some(token.as_str()), Some(&token.hash()[..16])));
    }

    #[test]
    fn a_token_carries_256_random_bits_in_url_safe_characters() {
        let token = OrderToken::generate();
        assert_eq!(token.as_str().len(), 43);
        assert!(
            token
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }
}
