//! Encryption at rest for everything pipewright stores that must stay secret (deploy
//! credentials, a GitHub App created from the browser): a [`Keyring`] read once from
//! `PIPEWRIGHT_CREDENTIALS_KEY` (or `_FILE`), AES-256-GCM with a fresh random 96-bit
//! nonce per value, the key's id stored beside each ciphertext so keys can rotate, and
//! associated data that binds a ciphertext to its owner so rows cannot be swapped.
//!
//! This module owns key parsing and seal/open only. It never logs, never stores, and
//! never hands out key material; the tables that hold [`Sealed`] values live in `db/`.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use sha2::Digest as _;
use zeroize::{Zeroize, Zeroizing};

use crate::config::Secret;

/// Length of a key in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// Length of a nonce in bytes (the 96 bits GCM is designed for).
pub const NONCE_LEN: usize = 12;
/// Longest accepted key id, in characters (ids are stored in every row).
pub const MAX_KEY_ID_LEN: usize = 32;
/// Most keys one keyring may hold; more is a configuration mistake, not a rotation.
pub const MAX_KEYS: usize = 16;
/// Largest value [`Keyring::seal`] accepts, in bytes (an SSH key or a PEM is a few kB).
pub const MAX_PLAINTEXT_LEN: usize = 64 * 1024;
/// Prefix of all associated data: a version and a domain, so a ciphertext made for
/// something else with the same key can never open here.
const AAD_DOMAIN: &str = "pipewright/sealed/v1\0";

/// Why a keyring could not be built from its configuration text.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyringError {
    /// No key in the text.
    #[error("holds no key (expected `id:base64` entries separated by commas or new lines)")]
    Empty,
    /// An entry is not base64 of 32 bytes.
    #[error("key `{id}` is not base64 of {KEY_LEN} random bytes (make one with `openssl rand -base64 32`)")]
    BadKey {
        /// The entry's id (or its position when it has none).
        id: String,
    },
    /// An id has characters other than letters, digits, `-`, `_`, or is too long.
    #[error("key id `{0}` must be 1-{MAX_KEY_ID_LEN} letters, digits, `-` or `_`")]
    BadId(String),
    /// Two entries share an id.
    #[error("key id `{0}` appears twice")]
    DuplicateId(String),
    /// Too many entries.
    #[error("holds more than {MAX_KEYS} keys")]
    TooMany,
}

/// Why a value could not be sealed or opened. None of the variants carries secret data.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The value was sealed under a key this keyring does not hold.
    #[error(
        "this value was encrypted with key `{0}`, which PIPEWRIGHT_CREDENTIALS_KEY does not \
         hold (keep old keys listed after the new one until `credentials rotate-key` has run)"
    )]
    UnknownKey(String),
    /// Authentication failed: wrong key material under a known id, a tampered row, or a
    /// row moved to another owner.
    #[error(
        "cannot decrypt a value sealed with key `{0}`: the key is wrong, or the stored row \
         was altered or belongs to another owner"
    )]
    Mismatch(String),
    /// The stored envelope is malformed (bad base64, wrong nonce length).
    #[error("stored encrypted value is malformed: {0}")]
    Malformed(&'static str),
    /// The value is larger than [`MAX_PLAINTEXT_LEN`].
    #[error("value is larger than {MAX_PLAINTEXT_LEN} bytes")]
    TooLarge,
}

/// One encrypted value as stored: the id of the key that sealed it, the nonce and the
/// ciphertext (with its 16-byte tag), the latter two as standard base64 text so both
/// database backends store them as `TEXT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the key that sealed it.
    pub key_id: String,
    /// Base64 of the 12-byte nonce.
    pub nonce: String,
    /// Base64 of ciphertext and tag.
    pub ciphertext: String,
}

/// The owner a sealed value belongs to, bound into its associated data: opening it under
/// any other owner fails. Build it from stable ids (forge, installation, repository,
/// target, name), never from display names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(String);

impl Owner {
    /// An owner from its parts; each part is length-prefixed so `("a/b", "c")` and
    /// `("a", "b/c")` can never produce the same associated data.
    pub fn new<'a>(parts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut s = String::new();
        for p in parts {
            s.push_str(&p.len().to_string());
            s.push(':');
            s.push_str(p);
            s.push('/');
        }
        Owner(s)
    }

    fn aad(&self) -> Vec<u8> {
        let mut v = AAD_DOMAIN.as_bytes().to_vec();
        v.extend_from_slice(self.0.as_bytes());
        v
    }
}

struct KeyEntry {
    id: String,
    cipher: Aes256Gcm,
}

/// The configured keys: the first seals, all of them open. Built once at start-up;
/// `Debug` shows only the ids.
#[derive(Clone)]
pub struct Keyring {
    keys: std::sync::Arc<Vec<KeyEntry>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.ids().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// Parses `id:base64key` entries separated by commas or new lines (blank lines and
    /// `#` comments ignored). An entry without `id:` gets an id derived from the key
    /// (`k` + 8 hex digits of its SHA-256), so a single bare key works too.
    pub fn parse(text: &Secret) -> Result<Keyring, KeyringError> {
        let mut keys: Vec<KeyEntry> = Vec::new();
        for raw in text
            .expose()
            .split([',', '\n'])
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if keys.len() == MAX_KEYS {
                return Err(KeyringError::TooMany);
            }
            let (id, b64) = match raw.split_once(':') {
                Some((id, b64)) => (Some(id.trim().to_owned()), b64.trim()),
                None => (None, raw),
            };
            let label = id.clone().unwrap_or_else(|| format!("#{}", keys.len() + 1));
            let mut bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| KeyringError::BadKey { id: label.clone() })?,
            );
            if bytes.len() != KEY_LEN {
                bytes.zeroize();
                return Err(KeyringError::BadKey { id: label });
            }
            let id = match id {
                Some(id) => {
                    if id.is_empty()
                        || id.len() > MAX_KEY_ID_LEN
                        || !id
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    {
                        return Err(KeyringError::BadId(id));
                    }
                    id
                }
                None => format!("k{}", &hex::encode(sha2::Sha256::digest(&bytes[..]))[..8]),
            };
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyringError::DuplicateId(id));
            }
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes));
            keys.push(KeyEntry { id, cipher });
        }
        if keys.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(Keyring {
            keys: std::sync::Arc::new(keys),
        })
    }

    /// A keyring of one freshly generated key (tests, and `credentials` examples).
    pub fn generate(id: &str) -> (Keyring, Secret) {
        let key = Aes256Gcm::generate_key(OsRng);
        let text = Secret::new(format!(
            "{id}:{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        ));
        let ring = Keyring::parse(&text).expect("a generated key has the right length");
        (ring, text)
    }

    /// Id of the key that seals new values.
    pub fn primary_id(&self) -> &str {
        &self.keys[0].id
    }

    /// All key ids, the sealing one first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// Encrypts `plaintext` for `owner` under the first key, with a fresh random nonce.
    pub fn seal(&self, owner: &Owner, plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(CryptoError::TooLarge);
        }
        let key = &self.keys[0];
        // A random 96-bit nonce per value: with one key, 2^32 values keep the collision
        // chance far below 2^-32 (NIST SP 800-38D); rotation resets the count.
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = owner.aad();
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| CryptoError::TooLarge)?;
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(Sealed {
            key_id: key.id.clone(),
            nonce: b64.encode(nonce),
            ciphertext: b64.encode(ciphertext),
        })
    }

    /// Decrypts a value sealed for `owner`. Fails, without revealing anything, when the
    /// key is unknown or wrong, the row was altered, or it belongs to another owner.
    pub fn open(&self, owner: &Owner, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let nonce = b64
            .decode(&sealed.nonce)
            .map_err(|_| CryptoError::Malformed("nonce is not base64"))?;
        if nonce.len() != NONCE_LEN {
            return Err(CryptoError::Malformed("nonce is not 12 bytes"));
        }
        let ciphertext = b64
            .decode(&sealed.ciphertext)
            .map_err(|_| CryptoError::Malformed("ciphertext is not base64"))?;
        let aad = owner.aad();
        key.cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Mismatch(sealed.key_id.clone()))
    }

    /// Opens a value and returns it as a [`Secret`] string (credentials are text).
    pub fn open_text(&self, owner: &Owner, sealed: &Sealed) -> Result<Secret, CryptoError> {
        let bytes = self.open(owner, sealed)?;
        std::str::from_utf8(&bytes)
            .map(Secret::new)
            .map_err(|_| CryptoError::Malformed("value is not UTF-8 text"))
    }

    /// True when `sealed` is under the sealing key already (nothing to rotate).
    pub fn is_current(&self, sealed: &Sealed) -> bool {
        sealed.key_id == self.primary_id()
    }
}

/// Why a value could not be sealed for a forge's public key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealedBoxError {
    /// The public key is not base64 of 32 bytes.
    #[error("the public key is not base64 of a 32-byte X25519 key")]
    BadPublicKey,
    /// The ciphertext does not open with this secret key.
    #[error("the sealed box does not open with this key")]
    Open,
}

/// libsodium's `crypto_box_seal` (X25519 + XSalsa20-Poly1305 with an ephemeral key):
/// what GitHub requires for Actions secrets. `public_key_b64` is the repository's key as
/// GitHub returns it; the result is the base64 `encrypted_value` GitHub expects.
pub fn seal_for_public_key(
    public_key_b64: &str,
    plaintext: &[u8],
) -> Result<String, SealedBoxError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = b64
        .decode(public_key_b64.trim())
        .map_err(|_| SealedBoxError::BadPublicKey)?;
    let pk = crypto_box::PublicKey::from_slice(&raw).map_err(|_| SealedBoxError::BadPublicKey)?;
    let sealed = pk
        .seal(&mut crypto_box::aead::OsRng, plaintext)
        // Only fails for messages beyond XSalsa20's 2^70-byte range.
        .map_err(|_| SealedBoxError::BadPublicKey)?;
    Ok(b64.encode(sealed))
}

/// Opens a sealed box with a base64 X25519 secret key (the reverse of
/// [`seal_for_public_key`]; tests and the fake forge use it, as GitHub would).
pub fn open_sealed_box(
    secret_key_b64: &str,
    sealed_b64: &str,
) -> Result<Zeroizing<Vec<u8>>, SealedBoxError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let sk = Zeroizing::new(
        b64.decode(secret_key_b64.trim())
            .map_err(|_| SealedBoxError::Open)?,
    );
    let sk = crypto_box::SecretKey::from_slice(&sk).map_err(|_| SealedBoxError::Open)?;
    let ct = b64
        .decode(sealed_b64.trim())
        .map_err(|_| SealedBoxError::Open)?;
    sk.unseal(&ct)
        .map(Zeroizing::new)
        .map_err(|_| SealedBoxError::Open)
}

/// A fresh X25519 key pair as base64 `(secret, public)` (fakes and tests).
pub fn generate_box_keypair() -> (String, String) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let sk = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
    (
        b64.encode(sk.to_bytes()),
        b64.encode(sk.public_key().as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; KEY_LEN])
    }

    fn ring(text: &str) -> Keyring {
        Keyring::parse(&Secret::new(text)).unwrap()
    }

    #[test]
    fn round_trip_binds_the_owner() {
        let r = ring(&format!("k1:{}", key(1)));
        let owner = Owner::new(["github", "42", "", "fly", "FLY_API_TOKEN"]);
        let s = r.seal(&owner, b"fo1_secret").unwrap();
        assert_eq!(s.key_id, "k1");
        assert!(!s.ciphertext.contains("fo1_secret"));
        assert_eq!(&r.open(&owner, &s).unwrap()[..], b"fo1_secret");
        // Same key, another owner: refused.
        let other = Owner::new(["github", "43", "", "fly", "FLY_API_TOKEN"]);
        assert_eq!(
            r.open(&other, &s).unwrap_err(),
            CryptoError::Mismatch("k1".into())
        );
        // Length prefixes keep part boundaries apart.
        assert_ne!(Owner::new(["a/b", "c"]), Owner::new(["a", "b/c"]));
    }

    #[test]
    fn nonces_are_fresh() {
        let r = ring(&key(2));
        let o = Owner::new(["x"]);
        let a = r.seal(&o, b"same").unwrap();
        let b = r.seal(&o, b"same").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn rotation_wrong_and_unknown_keys() {
        let old = ring(&format!("old:{}", key(3)));
        let o = Owner::new(["o"]);
        let s = old.seal(&o, b"v").unwrap();
        // New key first, old one kept: opens, and is not current.
        let both = ring(&format!("new:{}\nold:{}", key(4), key(3)));
        assert_eq!(both.primary_id(), "new");
        assert_eq!(&both.open(&o, &s).unwrap()[..], b"v");
        assert!(!both.is_current(&s));
        assert!(both.is_current(&both.seal(&o, b"v").unwrap()));
        // Old key dropped: a clear error naming the missing id.
        let new_only = ring(&format!("new:{}", key(4)));
        let e = new_only.open(&o, &s).unwrap_err();
        assert_eq!(e, CryptoError::UnknownKey("old".into()));
        assert!(e.to_string().contains("`old`"));
        // Same id, other bytes: authentication fails.
        let wrong = ring(&format!("old:{}", key(5)));
        assert_eq!(
            wrong.open(&o, &s).unwrap_err(),
            CryptoError::Mismatch("old".into())
        );
    }

    #[test]
    fn tampering_is_detected() {
        let r = ring(&key(6));
        let o = Owner::new(["o"]);
        let mut s = r.seal(&o, b"value").unwrap();
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&s.ciphertext)
            .unwrap();
        raw[0] ^= 1;
        s.ciphertext = base64::engine::general_purpose::STANDARD.encode(raw);
        assert!(matches!(r.open(&o, &s), Err(CryptoError::Mismatch(_))));
        s.nonce = "!!".into();
        assert!(matches!(r.open(&o, &s), Err(CryptoError::Malformed(_))));
    }

    #[test]
    fn bad_configuration_is_named_without_the_key() {
        let err = |t: &str| Keyring::parse(&Secret::new(t)).unwrap_err();
        assert_eq!(err(""), KeyringError::Empty);
        assert_eq!(err(" \n# only a comment\n"), KeyringError::Empty);
        assert_eq!(err("k1:c2hvcnQ="), KeyringError::BadKey { id: "k1".into() });
        assert_eq!(err("not base64!"), KeyringError::BadKey { id: "#1".into() });
        assert_eq!(
            err(&format!("bad id:{}", key(1))),
            KeyringError::BadId("bad id".into())
        );
        assert_eq!(
            err(&format!("a:{},a:{}", key(1), key(2))),
            KeyringError::DuplicateId("a".into())
        );
        let r = ring(&key(7));
        assert!(r.primary_id().starts_with('k') && r.primary_id().len() == 9);
        assert!(!format!("{r:?}").contains(&key(7)));
    }

    #[test]
    fn oversized_values_are_refused() {
        let r = ring(&key(8));
        let big = vec![0u8; MAX_PLAINTEXT_LEN + 1];
        assert_eq!(
            r.seal(&Owner::new(["o"]), &big).unwrap_err(),
            CryptoError::TooLarge
        );
    }
}
