//! Minting and checking bearer tokens.
//!
//! A token Flex mints reads `fx_<id>_<secret>`: the id finds the stored row, and the SHA-256 of
//! the whole token is compared with the stored hash in constant time. Only hashes are stored,
//! so a copy of the database does not hand out working tokens. The administrator may also pick
//! their own token (`FLEX_ADMIN_TOKEN`); any token that is not in Flex's own format is checked
//! against the administrator's row.

use rand::{Rng, distr::Alphanumeric};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    clock::now_ts,
    store::{Role, Store, StoreResult, TokenKind, TokenRecord},
};

const TOKEN_PREFIX: &str = "fx_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
/// The administrator's token row has this fixed id, so a chosen admin token can be found.
pub const ADMIN_TOKEN_ID: &str = "admin";
/// Login sessions last a week, as the real Flex's do.
pub const SESSION_TTL_SECS: i64 = 7 * 24 * 3600;

/// A freshly minted token: the plaintext goes to the caller once, the record to the store.
pub struct MintedToken {
    pub plaintext: String,
    pub record: TokenRecord,
}

/// What a new token is for.
#[derive(Clone, Copy)]
pub struct TokenSpec<'a> {
    pub kind: TokenKind,
    pub role: Role,
    pub host_id: Option<&'a str>,
    pub app_name: &'a str,
    pub description: &'a str,
    pub ttl: Option<i64>,
}

pub fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub fn hash_token(plaintext: &str) -> String {
    hex::encode(Sha256::digest(plaintext.as_bytes()))
}

pub fn mint(spec: TokenSpec<'_>) -> MintedToken {
    let id = random_alphanumeric(ID_LEN);
    let plaintext = format!("{TOKEN_PREFIX}{id}_{}", random_alphanumeric(SECRET_LEN));
    let now = now_ts();
    MintedToken {
        record: TokenRecord {
            id,
            kind: spec.kind,
            role: spec.role,
            host_id: spec.host_id.map(str::to_owned),
            app_name: spec.app_name.to_owned(),
            description: spec.description.to_owned(),
            token_hash: hash_token(&plaintext),
            created_ts: now,
            ttl: spec.ttl,
            expire_ts: spec.ttl.map(|ttl| now.saturating_add(ttl)),
        },
        plaintext,
    }
}

/// The row id a presented token claims to be.
fn claimed_id(plaintext: &str) -> &str {
    plaintext
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.split_once('_'))
        .map(|(id, _)| id)
        .filter(|id| id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or(ADMIN_TOKEN_ID)
}

/// Finds the live token matching `plaintext`, if any. Expired tokens do not match.
pub async fn authenticate(store: &Store, plaintext: &str) -> StoreResult<Option<TokenRecord>> {
    let Some(record) = store.find_token(claimed_id(plaintext)).await? else {
        return Ok(None);
    };
    let presented = hash_token(plaintext);
    let matches: bool = presented
        .as_bytes()
        .ct_eq(record.token_hash.as_bytes())
        .into();
    Ok((matches && !record.is_expired(now_ts())).then_some(record))
}

/// Compares two secrets in time that does not depend on where they differ (or on their
/// lengths, since their hashes are compared).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// Makes sure an administrator token exists. A configured one replaces what is stored; with
/// none configured and none stored, one is generated and returned so the caller can show it
/// once. Returns `None` when nothing new must be shown.
pub async fn bootstrap_admin_token(
    store: &Store,
    configured: Option<&str>,
) -> StoreResult<Option<String>> {
    let now = now_ts();
    let record = |plaintext: &str| TokenRecord {
        id: ADMIN_TOKEN_ID.to_owned(),
        kind: TokenKind::Admin,
        role: Role::Admin,
        host_id: None,
        app_name: "admin".to_owned(),
        description: "bootstrap administrator token".to_owned(),
        token_hash: hash_token(plaintext),
        created_ts: now,
        ttl: None,
        expire_ts: None,
    };
    if let Some(plaintext) = configured {
        store.replace_admin_token(&record(plaintext)).await?;
        return Ok(None);
    }
    if store.has_admin_token().await? {
        return Ok(None);
    }
    let plaintext = format!("fxa_{}", random_alphanumeric(40));
    store.replace_admin_token(&record(&plaintext)).await?;
    Ok(Some(plaintext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_carry_their_row_id() {
        let minted = mint(TokenSpec {
            kind: TokenKind::App,
            role: Role::Admin,
            host_id: None,
            app_name: "ci",
            description: "",
            ttl: Some(60),
        });
        assert_eq!(claimed_id(&minted.plaintext), minted.record.id);
        assert_eq!(minted.record.token_hash, hash_token(&minted.plaintext));
        assert_eq!(minted.record.expire_ts, Some(minted.record.created_ts + 60));
        assert!(!minted.record.token_hash.contains(&minted.plaintext));
    }

    #[test]
    fn foreign_tokens_are_checked_against_the_admin_row() {
        assert_eq!(claimed_id("my-own-admin-token"), ADMIN_TOKEN_ID);
        assert_eq!(claimed_id("fx_short_secret"), ADMIN_TOKEN_ID);
        assert_eq!(claimed_id("fx_abcdefghijkl_secret"), "abcdefghijkl");
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(secrets_equal("hunter2", "hunter2"));
        assert!(!secrets_equal("hunter2", "hunter3"));
        assert!(!secrets_equal("hunter2", "hunter22"));
    }
}
