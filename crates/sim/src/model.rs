//! A served model's residency: which options it is loaded with, and who is using it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{OwnedRwLockReadGuard, RwLock};
use tokio::time::Instant;

use crate::clock::wait_until;
use crate::config::ModelProfile;

/// Ollama's `num_ctx` when a request sets none.
pub(crate) const DEFAULT_NUM_CTX: i64 = 2048;

/// The options that force a reload when they change, as Ollama keys its runners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LoadKey {
    pub num_ctx: i64,
    /// -1 is "let the server decide", Ollama's default.
    pub num_gpu: i64,
}

impl LoadKey {
    pub(crate) fn new(num_ctx: Option<i64>, num_gpu: Option<i64>) -> Self {
        LoadKey {
            num_ctx: num_ctx.unwrap_or(DEFAULT_NUM_CTX),
            num_gpu: num_gpu.unwrap_or(-1),
        }
    }
}

impl Default for LoadKey {
    fn default() -> Self {
        LoadKey::new(None, None)
    }
}

/// One model of a server and its load state.
pub(crate) struct ModelSlot {
    pub profile: ModelProfile,
    /// Held shared by every request using the model; a reload takes it exclusively.
    loaded: Arc<RwLock<Option<LoadKey>>>,
    /// Taken by whoever may load, so concurrent first requests share one load.
    load_gate: tokio::sync::Mutex<()>,
    /// What `/api/ps` shows: the resident options and when they were loaded.
    resident: Mutex<Option<(LoadKey, SystemTime)>>,
}

/// Proof that the model stays loaded with the options a request needs until dropped.
pub(crate) struct InUse {
    _guard: OwnedRwLockReadGuard<Option<LoadKey>>,
}

/// How a request got its model: the guard, when it was ready, and whether it paid a load.
pub(crate) struct Acquired {
    pub in_use: InUse,
    pub ready: Instant,
    pub loaded: bool,
}

/// Whether a model loaded with `have` serves a request wanting `want` (`None`: any options).
fn fits(have: Option<LoadKey>, want: Option<LoadKey>) -> bool {
    match (have, want) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(have), Some(want)) => have == want,
    }
}

impl ModelSlot {
    pub(crate) fn new(profile: ModelProfile) -> Self {
        ModelSlot {
            profile,
            loaded: Arc::new(RwLock::new(None)),
            load_gate: tokio::sync::Mutex::new(()),
            resident: Mutex::new(None),
        }
    }

    fn load_time(&self) -> Duration {
        let ms = self.profile.load_ms;
        if ms.is_finite() && ms > 0.0 {
            Duration::from_secs_f64(ms / 1000.0)
        } else {
            Duration::ZERO
        }
    }

    /// Make the model resident with `want`, paying `load_ms` if it is not.
    ///
    /// `since` is when the request got the device. A request that waits for nothing is ready
    /// at `since` (or, if it loads, `since + load_ms`), so the schedule does not absorb the
    /// server's own bookkeeping; one that waits is ready when its wait ends.
    ///
    /// One load at a time per model: a request that finds a load under way waits for it and
    /// uses its result if the options fit. A reload waits until every request using the old
    /// options has finished (tokio's RwLock is fair, so requests arriving behind a pending
    /// reload wait for it too), as Ollama's scheduler does.
    pub(crate) async fn acquire(&self, want: Option<LoadKey>, since: Instant) -> Acquired {
        let ready = |guard, ready| Acquired {
            in_use: InUse { _guard: guard },
            ready,
            loaded: false,
        };
        if let Ok(shared) = self.loaded.clone().try_read_owned() {
            if fits(*shared, want) {
                return ready(shared, since);
            }
        }
        let shared = self.loaded.clone().read_owned().await;
        if fits(*shared, want) {
            return ready(shared, Instant::now().max(since));
        }
        drop(shared);
        let (_loading, mut uncontended) = match self.load_gate.try_lock() {
            Ok(gate) => (gate, true),
            Err(_) => (self.load_gate.lock().await, false),
        };
        let shared = self.loaded.clone().read_owned().await;
        if fits(*shared, want) {
            return ready(shared, Instant::now().max(since));
        }
        drop(shared);
        let mut exclusive = match self.loaded.clone().try_write_owned() {
            Ok(exclusive) => exclusive,
            Err(_) => {
                uncontended = false;
                self.loaded.clone().write_owned().await
            }
        };
        if fits(*exclusive, want) {
            return ready(exclusive.downgrade(), Instant::now().max(since));
        }
        let key = want.unwrap_or_default();
        *self.resident.lock().expect("resident lock") = None;
        let begin = if uncontended { since } else { Instant::now() };
        let ready_at = begin + self.load_time();
        wait_until(ready_at).await;
        *exclusive = Some(key);
        *self.resident.lock().expect("resident lock") = Some((key, SystemTime::now()));
        Acquired {
            in_use: InUse {
                _guard: exclusive.downgrade(),
            },
            ready: ready_at,
            loaded: true,
        }
    }

    /// The options the model is resident with, and since when.
    pub(crate) fn resident(&self) -> Option<(LoadKey, SystemTime)> {
        *self.resident.lock().expect("resident lock")
    }
}

/// Ollama's name matching: a name without a tag means `:latest`.
pub(crate) fn same_model(requested: &str, served: &str) -> bool {
    fn full(name: &str) -> std::borrow::Cow<'_, str> {
        if name.contains(':') {
            name.into()
        } else {
            format!("{name}:latest").into()
        }
    }
    full(requested.trim()) == full(served)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_default_to_latest() {
        assert!(same_model("gemma3", "gemma3:latest"));
        assert!(same_model("gemma3:latest", "gemma3:latest"));
        assert!(!same_model("gemma3:270m", "gemma3:latest"));
        assert!(!same_model("gemma", "gemma3:latest"));
    }

    #[test]
    fn any_options_fit_a_loaded_model() {
        let k = LoadKey::new(Some(512), Some(80));
        assert!(!fits(None, None));
        assert!(fits(Some(k), None));
        assert!(fits(Some(k), Some(k)));
        assert!(!fits(Some(k), Some(LoadKey::default())));
    }
}
