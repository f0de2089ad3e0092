//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): a secret is `whsec_`
//! and the base64 of its key; a delivery's `webhook-signature` is `v1,` and the base64
//! HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}` under that key, so a receiver
//! checks it with any Standard Webhooks library.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

pub const SECRET_PREFIX: &str = "whsec_";
/// Key bytes of a generated secret.
const GENERATED_KEY_BYTES: usize = 32;
/// The key lengths a given secret may have.
pub const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// A new random secret.
pub fn generate_secret() -> String {
    let mut key = [0u8; GENERATED_KEY_BYTES];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The key of a secret, or why it is not one.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or_else(|| format!("a secret starts with '{SECRET_PREFIX}'"))?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| format!("after '{SECRET_PREFIX}' a secret is base64"))?;
    if KEY_BYTES.contains(&key.len()) {
        Ok(key)
    } else {
        Err(format!(
            "a secret's key is {} to {} bytes; this one has {}",
            KEY_BYTES.start(),
            KEY_BYTES.end(),
            key.len()
        ))
    }
}

/// The `webhook-signature` header of a delivery.
pub fn signature(key: &[u8], webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_example_signs_as_published() {
        // The example of the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_checked_and_generated_well_formed() {
        let generated = generate_secret();
        assert_eq!(secret_key(&generated).unwrap().len(), GENERATED_KEY_BYTES);
        assert_ne!(generated, generate_secret());
        assert!(secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(secret_key("whsec_not base64!").is_err());
        assert!(
            secret_key("whsec_c2hvcnQ=")
                .unwrap_err()
                .contains("24 to 64")
        );
    }
}
