//! What a serving process serves: one followed reference (`NAME@production`), and
//! optionally a second one that takes a share of the traffic (`--split`). Each holds
//! the version it serves now behind an atomic pointer: a swap is one store, requests
//! in flight keep the version they started with, and the old version is dropped when
//! the last of them finishes.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use serde::Serialize;

use crate::metrics::ServeMetrics;
use crate::model::OnnxModel;
use crate::signature::Signature;

/// A version, loaded and ready to answer.
#[derive(Debug)]
pub struct Loaded {
    pub model_name: String,
    pub number: u64,
    /// The version's digest (`sha256:…`).
    pub digest: String,
    pub model: OnnxModel,
    pub signature: Option<Signature>,
    pub load_time: Duration,
}

impl Loaded {
    /// `NAME@N`, as headers and metrics name it.
    pub fn label(&self) -> String {
        format!("{}@{}", self.model_name, self.number)
    }
}

/// A version that could not be fetched, verified or loaded: the previous one kept
/// serving.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub version: String,
    pub error: String,
    #[serde(with = "time_secs")]
    pub at: SystemTime,
}

mod time_secs {
    use std::time::SystemTime;

    /// Seconds since the Unix epoch.
    pub fn serialize<S: serde::Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        s.serialize_f64(secs)
    }
}

/// One followed reference and what it serves.
pub struct Route {
    /// `NAME@REF` as given on the command line.
    pub reference: String,
    current: ArcSwapOption<Loaded>,
    failure: Mutex<Option<Failure>>,
}

impl Route {
    pub fn new(reference: String) -> Self {
        Self {
            reference,
            current: ArcSwapOption::empty(),
            failure: Mutex::default(),
        }
    }

    /// The version serving now, if any.
    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.current.load_full()
    }

    pub fn failure(&self) -> Option<Failure> {
        self.failure.lock().expect("route lock").clone()
    }
}

/// Everything the HTTP handlers read.
pub struct Deployment {
    pub primary: Route,
    /// The second reference and its share of requests, in percent.
    pub split: Option<(Route, u32)>,
    pub metrics: ServeMetrics,
    requests: AtomicU64,
}

impl Deployment {
    pub fn new(primary: String, split: Option<(String, u32)>) -> Self {
        Self {
            primary: Route::new(primary),
            split: split.map(|(reference, share)| (Route::new(reference), share.min(100))),
            metrics: ServeMetrics::default(),
            requests: AtomicU64::new(0),
        }
    }

    /// The routes: the primary first.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        std::iter::once(&self.primary).chain(self.split.as_ref().map(|(r, _)| r))
    }

    /// Starts serving `loaded` on `route`: requests that begin after this see it.
    pub fn install(&self, route: &Route, loaded: Loaded) {
        self.metrics.loaded(
            &route.reference,
            &loaded.label(),
            &loaded.digest,
            loaded.load_time,
        );
        tracing::info!(reference = %route.reference, version = %loaded.label(), digest = %loaded.digest,
            load_ms = loaded.load_time.as_millis() as u64, "serving");
        route.current.store(Some(Arc::new(loaded)));
        *route.failure.lock().expect("route lock") = None;
    }

    /// Records that `version` could not be served on `route`; what it served stays.
    pub fn failed(&self, route: &Route, version: String, error: String) {
        tracing::error!(reference = %route.reference, %version, %error, "not swapped in: the previous version keeps serving");
        self.metrics.load_failed(&route.reference);
        *route.failure.lock().expect("route lock") = Some(Failure {
            version,
            error,
            at: SystemTime::now(),
        });
    }

    pub fn clear_failure(&self, route: &Route) {
        *route.failure.lock().expect("route lock") = None;
    }

    /// The version that answers the next request. With a split, every request's turn
    /// is counted and the candidate takes exactly its share of each hundred (spread
    /// evenly, not in a burst); a route with nothing loaded yields to the other.
    pub fn pick(&self) -> Option<Arc<Loaded>> {
        let primary = self.primary.current();
        let Some((candidate, share)) = &self.split else {
            return primary;
        };
        let turn = self.requests.fetch_add(1, Ordering::Relaxed);
        if candidate_turn(turn, *share) {
            candidate.current().or(primary)
        } else {
            primary.or_else(|| candidate.current())
        }
    }
}

/// Whether request number `turn` goes to the candidate taking `share` percent: the
/// turns where the running count of its share crosses a whole request.
fn candidate_turn(turn: u64, share: u32) -> bool {
    let share = u64::from(share);
    (turn + 1) * share / 100 > turn * share / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_split_takes_its_exact_share_spread_out() {
        let turns = |share: u32, n: u64| (0..n).filter(|&t| candidate_turn(t, share)).count();
        assert_eq!(turns(10, 2000), 200);
        assert_eq!(turns(0, 2000), 0);
        assert_eq!(turns(100, 2000), 2000);
        assert_eq!(turns(10, 10), 1);
    }
}
