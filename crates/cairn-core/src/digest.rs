//! SHA-256 digests: the identity of every blob and of every version's manifest.

use std::fmt;
use std::str::FromStr;

// AWS-LC's SHA-256 (already linked for TLS): its assembly uses the SHA extensions where
// the CPU has them and AVX2 where it does not, where it hashes ~1.7× faster than a
// portable implementation — and every byte Cairn stores or serves is hashed.
use aws_lc_rs::digest::{Context, SHA256, digest};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ValidationError;

/// A SHA-256 digest. Displayed and serialized as 64 lowercase hex digits; parsing also
/// accepts the `sha256:` prefix the CLI prints.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    pub fn of(bytes: &[u8]) -> Self {
        Self::from_output(digest(&SHA256, bytes))
    }

    fn from_output(output: aws_lc_rs::digest::Digest) -> Self {
        Self(
            output
                .as_ref()
                .try_into()
                .expect("SHA-256 outputs 32 bytes"),
        )
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// `sha256:<hex>`, the form shown to users.
    pub fn prefixed(&self) -> String {
        format!("sha256:{}", self.to_hex())
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.to_hex())
    }
}

impl FromStr for Sha256Digest {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_prefix("sha256:").unwrap_or(s);
        let is_lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if hex_part.len() != 64 || !hex_part.bytes().all(is_lower_hex) {
            return Err(ValidationError::Digest(s.to_owned()));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut bytes)
            .map_err(|_| ValidationError::Digest(s.to_owned()))?;
        Ok(Self(bytes))
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Sha256Digest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^[0-9a-f]{64}$"))
            .description(Some("SHA-256 digest: 64 lowercase hex digits"))
            .into()
    }
}

impl utoipa::ToSchema for Sha256Digest {}

/// Incremental hashing that also counts bytes, for streams whose size must be checked too.
#[derive(Clone)]
pub struct Sha256Hasher {
    inner: Context,
    len: u64,
}

impl Default for Sha256Hasher {
    fn default() -> Self {
        Self {
            inner: Context::new(&SHA256),
            len: 0,
        }
    }
}

impl Sha256Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> (Sha256Digest, u64) {
        (Sha256Digest::from_output(self.inner.finish()), self.len)
    }
}

/// Largest read buffer for [`hash_reader`].
const HASH_BUFFER_MAX: usize = 1024 * 1024;

/// Hashes everything `reader` yields, telling `on_bytes` of each chunk. `size_hint` (the
/// expected size) keeps the buffer small for small files: hashing ten thousand 4 KiB
/// files must not zero ten thousand megabyte buffers.
pub fn hash_reader(
    mut reader: impl std::io::Read,
    size_hint: u64,
    mut on_bytes: impl FnMut(u64),
) -> std::io::Result<(Sha256Digest, u64)> {
    let len = usize::try_from(size_hint.saturating_add(1))
        .unwrap_or(HASH_BUFFER_MAX)
        .clamp(8 * 1024, HASH_BUFFER_MAX);
    let mut buf = vec![0u8; len];
    let mut hasher = Sha256Hasher::new();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(hasher.finish()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        on_bytes(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = Sha256Hasher::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), (d, 3));
    }

    #[test]
    fn hashes_readers_of_any_size() {
        for size in [0usize, 1, 8191, 8192, 3 * 1024 * 1024 + 5] {
            let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            let mut seen = 0;
            let got = hash_reader(&data[..], 100, |n| seen += n).unwrap();
            assert_eq!(got, (Sha256Digest::of(&data), size as u64));
            assert_eq!(seen, size as u64);
        }
    }

    #[test]
    fn parses_with_and_without_prefix() {
        let d = Sha256Digest::of(b"x");
        assert_eq!(d.to_hex().parse::<Sha256Digest>().unwrap(), d);
        assert_eq!(d.prefixed().parse::<Sha256Digest>().unwrap(), d);
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "abc", &"A".repeat(64), &"g".repeat(64), &"0".repeat(65)] {
            assert!(bad.parse::<Sha256Digest>().is_err(), "{bad}");
        }
    }
}
