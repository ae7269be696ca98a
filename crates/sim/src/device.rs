//! The simulated accelerator: how concurrent streams share decode capacity.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::SimError;

/// How one server's streams share its (single) device.
///
/// Serialized as `{"kind":"ideal"}`, `{"kind":"serial"}`, `{"kind":"shared","capacity_tok_s":100}`;
/// parsed from `"ideal"`, `"serial"`, `"shared:100"`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Device {
    /// Unlimited parallel capacity: every stream decodes at its model's solo rate.
    Ideal,
    /// One request at a time, FIFO; a request holds the device from load to its last token.
    Serial,
    /// Processor sharing: k decoding streams each get `min(decode_tok_s, capacity_tok_s / k)`.
    Shared {
        /// Total decode capacity of the device in tokens per second.
        capacity_tok_s: f64,
    },
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Ideal => f.write_str("ideal"),
            Device::Serial => f.write_str("serial"),
            Device::Shared { capacity_tok_s } => write!(f, "shared:{capacity_tok_s}"),
        }
    }
}

impl FromStr for Device {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || SimError::InvalidDevice(s.to_string());
        match s.trim() {
            "ideal" => Ok(Device::Ideal),
            "serial" => Ok(Device::Serial),
            other => {
                let capacity = other.strip_prefix("shared:").ok_or_else(invalid)?;
                let capacity_tok_s: f64 = capacity.trim().parse().map_err(|_| invalid())?;
                if !(capacity_tok_s.is_finite() && capacity_tok_s > 0.0) {
                    return Err(invalid());
                }
                Ok(Device::Shared { capacity_tok_s })
            }
        }
    }
}

/// Seconds per token at `tok_s`; a non-positive or non-finite rate costs nothing (null model).
pub(crate) fn per_token(tok_s: f64) -> Duration {
    if tok_s.is_finite() && tok_s > 0.0 {
        Duration::from_secs_f64(1.0 / tok_s)
    } else {
        Duration::ZERO
    }
}

/// The running state of a [`Device`], shared by all streams of one server.
pub(crate) struct DeviceState {
    device: Device,
    serial: Arc<Semaphore>,
    decoding: Arc<AtomicUsize>,
}

/// A request's hold on the device (a serial device's only slot) until dropped.
pub(crate) struct Admission {
    _permit: Option<OwnedSemaphorePermit>,
    /// The request queued behind another before it got the device.
    pub waited: bool,
}

/// A stream counted as decoding on a shared device until dropped.
pub(crate) struct Decoding {
    decoding: Arc<AtomicUsize>,
}

impl Drop for Decoding {
    fn drop(&mut self) {
        self.decoding.fetch_sub(1, Ordering::SeqCst);
    }
}

impl DeviceState {
    pub(crate) fn new(device: Device) -> Self {
        DeviceState {
            device,
            serial: Arc::new(Semaphore::new(1)),
            decoding: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Wait for the device; only a serial device makes anyone wait (FIFO: tokio's semaphore is fair).
    pub(crate) async fn admit(&self) -> Admission {
        if self.device != Device::Serial {
            return Admission {
                _permit: None,
                waited: false,
            };
        }
        match self.serial.clone().try_acquire_owned() {
            Ok(permit) => Admission {
                _permit: Some(permit),
                waited: false,
            },
            Err(_) => Admission {
                _permit: self.serial.clone().acquire_owned().await.ok(),
                waited: true,
            },
        }
    }

    /// Count the calling stream as decoding until the guard drops.
    pub(crate) fn start_decoding(&self) -> Decoding {
        self.decoding.fetch_add(1, Ordering::SeqCst);
        Decoding {
            decoding: self.decoding.clone(),
        }
    }

    /// The gap to the next token of a stream whose solo rate is `decode_tok_s`, given who decodes now.
    pub(crate) fn interval(&self, decode_tok_s: f64) -> Duration {
        let solo = per_token(decode_tok_s);
        match self.device {
            Device::Ideal | Device::Serial => solo,
            Device::Shared { capacity_tok_s } => {
                let k = self.decoding.load(Ordering::SeqCst).max(1);
                let shared = per_token(capacity_tok_s / k as f64);
                solo.max(shared)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        assert_eq!("ideal".parse::<Device>().unwrap(), Device::Ideal);
        assert_eq!("serial".parse::<Device>().unwrap(), Device::Serial);
        let shared: Device = "shared:100".parse().unwrap();
        assert_eq!(
            shared,
            Device::Shared {
                capacity_tok_s: 100.0
            }
        );
        assert_eq!(shared.to_string(), "shared:100");
        assert!("shared:0".parse::<Device>().is_err());
        assert!("shared:x".parse::<Device>().is_err());
        assert!("gpu".parse::<Device>().is_err());
    }

    #[test]
    fn serde_is_tagged() {
        let json = serde_json::to_string(&Device::Shared {
            capacity_tok_s: 100.0,
        })
        .unwrap();
        assert_eq!(json, r#"{"kind":"shared","capacity_tok_s":100.0}"#);
        let back: Device =
            serde_json::from_str(r#"{"kind":"shared","capacity_tok_s":100}"#).unwrap();
        assert_eq!(
            back,
            Device::Shared {
                capacity_tok_s: 100.0
            }
        );
        let ideal: Device = serde_json::from_str(r#"{"kind":"ideal"}"#).unwrap();
        assert_eq!(ideal, Device::Ideal);
    }

    #[test]
    fn shared_interval_splits_capacity() {
        let state = DeviceState::new(Device::Shared {
            capacity_tok_s: 100.0,
        });
        let a = state.start_decoding();
        assert_eq!(state.interval(100.0), Duration::from_millis(10));
        let b = state.start_decoding();
        assert_eq!(state.interval(100.0), Duration::from_millis(20));
        // A slow model is bounded by its own solo rate, not the device's share.
        assert_eq!(state.interval(10.0), Duration::from_millis(100));
        drop((a, b));
        assert_eq!(state.interval(100.0), Duration::from_millis(10));
    }
}
