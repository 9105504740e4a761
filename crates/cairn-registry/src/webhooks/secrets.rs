//! Webhook secrets at rest: encrypted with AES-256-GCM under the registry's webhook
//! key, never stored or returned in clear. The key comes from `CAIRN_WEBHOOK_SECRET_KEY`
//! (32 bytes in base64, standard or URL-safe — a Fernet key, as MLflow's
//! `MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`, works), shared by every server of a registry;
//! without it, from a key file created with mode 0600 in the data directory. Each
//! stored secret names its key's id (the first 8 bytes of its SHA-256, in hex), so a
//! server with another key says so instead of sending wrong signatures.

use std::io::Write;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};

use crate::{Error, Result};

/// The environment variable that holds the key.
pub const KEY_VARIABLE: &str = "CAIRN_WEBHOOK_SECRET_KEY";
/// The key file's name in the data directory.
pub const KEY_FILE: &str = "webhook-secret.key";

#[derive(Clone)]
pub struct SecretKey {
    key: std::sync::Arc<LessSafeKey>,
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

impl SecretKey {
    /// A key from its text: 32 bytes in base64.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let bytes = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE.decode(text))
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{KEY_VARIABLE}: a webhook secret key is 32 bytes in base64 \
                     (make one with `openssl rand -base64 32`)"
                ))
            })?;
        Ok(Self::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte key"));
        let id = hex::encode(
            &aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref()[..8],
        );
        Self {
            key: std::sync::Arc::new(key),
            id,
        }
    }

    /// The key of `CAIRN_WEBHOOK_SECRET_KEY` if set, else of `data_dir`'s key file,
    /// created (mode 0600) when missing.
    pub fn load(from_env: Option<&str>, data_dir: &Path) -> Result<Self> {
        if let Some(text) = from_env.filter(|t| !t.trim().is_empty()) {
            return Self::parse(text);
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                check_private(&path)?;
                Self::parse(&text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(&path),
            Err(e) => Err(e.into()),
        }
    }

    fn create(path: &Path) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| Error::Io(std::io::Error::other("no system randomness")))?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match file {
            Ok(mut file) => {
                writeln!(file, "{}", STANDARD.encode(bytes))?;
                file.sync_all()?;
                Ok(Self::from_bytes(&bytes))
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::parse(&std::fs::read_to_string(path)?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The key's id, stored beside every secret it encrypts.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `secret` encrypted: base64 of a random nonce and the sealed bytes.
    pub fn encrypt(&self, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("system randomness");
        let mut sealed = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(self.id.as_bytes()),
                &mut sealed,
            )
            .expect("sealing in memory");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    /// A secret [`encrypt`](Self::encrypt) made under the key named `key_id`.
    pub fn decrypt(&self, stored: &str, key_id: &str) -> Result<String> {
        if key_id != self.id {
            return Err(Error::Conflict(format!(
                "the webhook secret was encrypted with key {key_id}, but this server's key is {}: \
                 give every server of the registry the same {KEY_VARIABLE}",
                self.id
            )));
        }
        let corrupt = || Error::Conflict("a stored webhook secret does not decrypt".to_owned());
        let bytes = STANDARD.decode(stored).map_err(|_| corrupt())?;
        if bytes.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(self.id.as_bytes()), &mut sealed)
            .map_err(|_| corrupt())?;
        String::from_utf8(plain.to_vec()).map_err(|_| corrupt())
    }
}

/// A key file others may read is a key others have: refused.
fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::InvalidArgument(format!(
            "{} is readable by others (mode {:o}); chmod 600 it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::load(None, dir.path()).unwrap();
        let again = SecretKey::load(None, dir.path()).unwrap();
        assert_eq!(key.id(), again.id());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let stored = key.encrypt("s3cret-s3cret-s3cret");
        assert!(!stored.contains("s3cret"));
        assert_eq!(
            again.decrypt(&stored, key.id()).unwrap(),
            "s3cret-s3cret-s3cret"
        );

        let other = SecretKey::parse(&STANDARD.encode([7u8; 32])).unwrap();
        let refused = other.decrypt(&stored, key.id()).unwrap_err().to_string();
        assert!(refused.contains(key.id()), "{refused}");
        // A stored secret changed by one bit does not decrypt.
        let mut bytes = STANDARD.decode(&stored).unwrap();
        bytes[NONCE_LEN] ^= 1;
        assert!(key.decrypt(&STANDARD.encode(bytes), key.id()).is_err());
        assert!(SecretKey::parse("too short").is_err());
    }
}
