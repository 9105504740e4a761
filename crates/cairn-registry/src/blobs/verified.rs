//! Reads that prove what they hand out: a blob's bytes are hashed on the way out, and
//! the chunk that completes the blob is held back until the digest checks.
//!
//! Whoever serves the stream (an HTTP body with `Content-Length` set, a pull writing a
//! file) therefore never delivers a whole blob that is not the blob: on a mismatch the
//! stream ends with an error instead of its last chunk, so an HTTP server aborts the
//! connection and the client sees a body shorter than announced (or a chunked body never
//! terminated), never a clean end. Memory stays at one chunk whatever the size.

use bytes::Bytes;
use cairn_core::{Sha256Digest, Sha256Hasher};
use futures::StreamExt;
use futures::stream::BoxStream;

/// Why a stored blob's bytes were refused while being read.
fn corrupt(expected: &Sha256Digest, why: String) -> std::io::Error {
    tracing::error!(blob = %expected, "{why}; the read was aborted");
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("stored blob sha256:{expected} is corrupt: {why}"),
    )
}

/// `inner`, the stored bytes of `expected` (`size` bytes by the store's account),
/// verified as described in the module documentation. A stream that yields more or
/// fewer than `size` bytes fails too.
pub(crate) fn verified(
    expected: Sha256Digest,
    size: u64,
    inner: BoxStream<'static, std::io::Result<Bytes>>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    struct State {
        inner: BoxStream<'static, std::io::Result<Bytes>>,
        hasher: Option<Sha256Hasher>,
    }
    let state = State {
        inner,
        hasher: Some(Sha256Hasher::new()),
    };
    futures::stream::unfold(state, move |mut state| async move {
        // `None` once the blob was delivered whole, or refused.
        let hasher = state.hasher.as_mut()?;
        let chunk = match state.inner.next().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                state.hasher = None;
                return Some((Err(e), state));
            }
            None => {
                // Fewer bytes than the store announced (or an empty blob).
                let (actual, received) = state.hasher.take().expect("checked above").finish();
                let result = if received == size && actual == expected {
                    return None;
                } else {
                    Err(corrupt(
                        &expected,
                        format!("{received} of {size} bytes, hashing to sha256:{actual}"),
                    ))
                };
                return Some((result, state));
            }
        };
        hasher.update(&chunk);
        if hasher.len() < size {
            return Some((Ok(chunk), state));
        }
        // The chunk that completes the blob goes out only if the whole blob checks.
        let (actual, received) = state.hasher.take().expect("checked above").finish();
        let result = if received == size && actual == expected {
            Ok(chunk)
        } else {
            Err(corrupt(
                &expected,
                format!("its {received} bytes hash to sha256:{actual}"),
            ))
        };
        Some((result, state))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> BoxStream<'static, std::io::Result<Bytes>> {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
        .boxed()
    }

    async fn read(
        expected: Sha256Digest,
        size: u64,
        parts: &[&'static [u8]],
    ) -> (Vec<u8>, Option<String>) {
        let mut out = Vec::new();
        let mut stream = verified(expected, size, chunks(parts));
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => out.extend_from_slice(&c),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn intact_blobs_pass_whole() {
        let digest = Sha256Digest::of(b"hello world");
        let (bytes, err) = read(digest, 11, &[b"hello", b" ", b"world"]).await;
        assert_eq!((bytes.as_slice(), err), (&b"hello world"[..], None));
        let empty = Sha256Digest::of(b"");
        assert_eq!(read(empty, 0, &[]).await, (Vec::new(), None));
    }

    #[tokio::test]
    async fn the_last_chunk_of_a_corrupt_blob_is_never_sent() {
        let digest = Sha256Digest::of(b"hello world");
        let (bytes, err) = read(digest, 11, &[b"hello", b" ", b"wOrld"]).await;
        assert_eq!(bytes, b"hello ", "everything but the completing chunk");
        assert!(err.unwrap().contains("is corrupt"));
        // Shorter, longer, empty where something was expected.
        let (bytes, err) = read(digest, 11, &[b"hello", b" "]).await;
        assert_eq!((bytes.as_slice(), err.is_some()), (&b"hello "[..], true));
        let (_, err) = read(digest, 5, &[b"hello"]).await;
        assert!(err.is_some(), "a truncated store entry");
        assert!(read(digest, 0, &[]).await.1.is_some());
    }
}
