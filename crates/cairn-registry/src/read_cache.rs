//! Encoded answers to registry reads, kept while the registry is unchanged.
//!
//! Every registry change appends an entry to the audit log in its own transaction, so
//! the audit log's head (sequence number and hash) names the registry's state: while it
//! stays the same, a read answers the same. A cached answer is served only when the
//! head read just before it equals the head it was computed under — one small query
//! instead of a large read, correct across any number of servers sharing the database.
//!
//! The head is read *before* the answer is computed: a change committing in between
//! makes the answer newer than its label, which only costs a miss later, never a stale
//! answer. Model registries are read far more than they are written (serving fleets and
//! dashboards poll them), which is what makes this pay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cairn_core::model::AuditHead;

/// Bytes of answers kept, in total. Answers of an older registry state are dropped as
/// soon as a newer one is stored; when the budget is full the cache starts over.
pub const DEFAULT_BUDGET: usize = 64 * 1024 * 1024;

pub(crate) struct ReadCache {
    budget: usize,
    state: Mutex<State>,
    /// One lock per key being computed: after a change, the many clients polling the
    /// same read wait for one of them to compute the answer instead of all computing it.
    computing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Default)]
struct State {
    /// The registry state every kept answer was computed under.
    head: Option<AuditHead>,
    answers: HashMap<String, Bytes>,
    bytes: usize,
}

impl ReadCache {
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            state: Mutex::default(),
            computing: Mutex::default(),
        }
    }

    /// The slot of `key`'s computation: lock it to compute the answer. Dropping the slot
    /// (also when the request is cancelled) forgets the key's lock once nobody holds it.
    pub fn computing(&self, key: &str) -> ComputeSlot<'_> {
        let mut computing = self.computing.lock().expect("read cache lock");
        let lock = computing.entry(key.to_owned()).or_default().clone();
        ComputeSlot {
            cache: self,
            key: key.to_owned(),
            lock: Some(lock),
        }
    }

    /// Keys being computed now.
    #[cfg(test)]
    pub fn computing_keys(&self) -> usize {
        self.computing.lock().expect("read cache lock").len()
    }

    /// The answer to `key` computed under `head`, if kept.
    pub fn get(&self, head: &AuditHead, key: &str) -> Option<Bytes> {
        let state = self.state.lock().expect("read cache lock");
        if state.head.as_ref() != Some(head) {
            return None;
        }
        state.answers.get(key).cloned()
    }

    /// Keeps `answer` to `key`, computed under `head`. Answers of any other state are
    /// dropped: the registry moves forward, so they will not be asked for again.
    pub fn put(&self, head: &AuditHead, key: String, answer: Bytes) {
        // Keys are the requests themselves: they count against the budget too. One
        // entry may take at most a quarter of it, so a few huge reads cannot keep
        // evicting everything else.
        let key_len = key.len();
        let size = key_len + answer.len();
        if size > self.budget / 4 {
            return;
        }
        let mut state = self.state.lock().expect("read cache lock");
        if state.head.as_ref() != Some(head) {
            // An answer computed under an older head than the kept ones must not
            // replace them; we cannot tell older from newer by the hash, but the
            // sequence number only grows.
            if state.head.as_ref().is_some_and(|kept| kept.seq > head.seq) {
                return;
            }
            *state = State {
                head: Some(head.clone()),
                ..State::default()
            };
        }
        if state.bytes + size > self.budget {
            state.answers.clear();
            state.bytes = 0;
        }
        state.bytes += size;
        if let Some(old) = state.answers.insert(key, answer) {
            // The key was counted twice.
            state.bytes -= key_len + old.len();
        }
    }
}

pub(crate) struct ComputeSlot<'c> {
    cache: &'c ReadCache,
    key: String,
    lock: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl ComputeSlot<'_> {
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.as_ref().expect("held until drop").lock().await
    }
}

impl Drop for ComputeSlot<'_> {
    fn drop(&mut self) {
        drop(self.lock.take());
        let mut computing = self.cache.computing.lock().expect("read cache lock");
        if computing
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            computing.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(seq: u64, hash: &str) -> AuditHead {
        AuditHead {
            seq,
            hash: hash.into(),
        }
    }

    #[test]
    fn serves_an_answer_only_under_the_head_it_was_computed_under() {
        let cache = ReadCache::new(1024);
        cache.put(&head(3, "a"), "q".into(), Bytes::from_static(b"three"));
        assert_eq!(
            cache.get(&head(3, "a"), "q").as_deref(),
            Some(&b"three"[..])
        );
        assert_eq!(cache.get(&head(4, "b"), "q"), None);
        // Same number, other hash: a restored or rewritten database.
        assert_eq!(cache.get(&head(3, "x"), "q"), None);
        assert_eq!(cache.get(&head(3, "a"), "other"), None);
    }

    #[test]
    fn a_newer_state_drops_older_answers_and_an_older_one_is_not_kept() {
        let cache = ReadCache::new(1024);
        cache.put(&head(3, "a"), "q".into(), Bytes::from_static(b"three"));
        cache.put(&head(4, "b"), "r".into(), Bytes::from_static(b"four"));
        assert_eq!(cache.get(&head(3, "a"), "q"), None);
        // A slow reader finishing after a newer answer was stored.
        cache.put(&head(3, "a"), "q".into(), Bytes::from_static(b"three"));
        assert_eq!(cache.get(&head(3, "a"), "q"), None);
        assert_eq!(cache.get(&head(4, "b"), "r").as_deref(), Some(&b"four"[..]));
    }

    #[test]
    fn stays_within_its_budget() {
        let cache = ReadCache::new(100);
        let h = head(1, "a");
        cache.put(&h, "big".into(), Bytes::from(vec![0; 23]));
        assert_eq!(cache.get(&h, "big"), None, "over a quarter, key included");
        cache.put(&h, "q0".into(), Bytes::from(vec![0; 20]));
        cache.put(&h, "q0".into(), Bytes::from(vec![0; 10]));
        assert_eq!(
            cache.state.lock().unwrap().bytes,
            12,
            "a replaced answer counts once"
        );
        for i in 0..10 {
            cache.put(&h, format!("q{i}"), Bytes::from(vec![0; 20]));
        }
        let state = cache.state.lock().unwrap();
        assert!(state.bytes <= 100, "{} bytes kept", state.bytes);
        let kept: usize = state.answers.iter().map(|(k, a)| k.len() + a.len()).sum();
        assert_eq!(state.bytes, kept);
        assert!(
            state.answers.contains_key("q9"),
            "the newest answer is kept"
        );
    }
}
