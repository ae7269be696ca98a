//! Faults the simulator can inject, server-wide or per request.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::SimError;

/// One way for a generation request to go wrong (see the crate docs for the bytes each sends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// HTTP 500 with an error body, before any generation.
    Http500,
    /// HTTP 404 with the API's model-not-found body.
    ModelNotFound,
    /// HTTP 401 with the API's error body.
    Unauthorized,
    /// A non-JSON line after `after_tokens` tokens; the stream then goes on.
    MalformedLine,
    /// An error line after `after_tokens` tokens; the stream then ends without a final line.
    ErrorMidstream,
    /// The connection is dropped after `after_tokens` tokens (no final line, no chunk terminator).
    CloseBeforeDone,
    /// Nothing at all (not even headers) for `stall_ms`; then a normal response.
    StallBeforeFirstByte,
    /// `after_tokens` tokens, nothing for `stall_ms`, then the rest.
    StallMidstream,
    /// The response body one byte per HTTP chunk, `drip_gap_ms` apart.
    SlowDrip,
    /// Token `after_tokens` sent as one line of `oversized_bytes` bytes (padded with JSON whitespace).
    OversizedLine,
    /// Token `after_tokens` carries the invalid UTF-8 bytes `FF FE` as its text.
    InvalidUtf8,
    /// HTTP 200 with `content-type: text/html` and an HTML body.
    WrongContentType,
    /// Every token, then no final line; the body ends after `stall_ms`.
    NeverDone,
    /// `after_tokens` tokens, then fat tokens as fast as the client reads, never a final
    /// line, until the client goes away or `stall_ms` has passed.
    Flood,
}

impl FaultMode {
    /// Every mode, in declaration order.
    pub const ALL: [FaultMode; 14] = [
        FaultMode::Http500,
        FaultMode::ModelNotFound,
        FaultMode::Unauthorized,
        FaultMode::MalformedLine,
        FaultMode::ErrorMidstream,
        FaultMode::CloseBeforeDone,
        FaultMode::StallBeforeFirstByte,
        FaultMode::StallMidstream,
        FaultMode::SlowDrip,
        FaultMode::OversizedLine,
        FaultMode::InvalidUtf8,
        FaultMode::WrongContentType,
        FaultMode::NeverDone,
        FaultMode::Flood,
    ];

    /// The snake_case name used in configs, headers and `sim_fault`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultMode::Http500 => "http500",
            FaultMode::ModelNotFound => "model_not_found",
            FaultMode::Unauthorized => "unauthorized",
            FaultMode::MalformedLine => "malformed_line",
            FaultMode::ErrorMidstream => "error_midstream",
            FaultMode::CloseBeforeDone => "close_before_done",
            FaultMode::StallBeforeFirstByte => "stall_before_first_byte",
            FaultMode::StallMidstream => "stall_midstream",
            FaultMode::SlowDrip => "slow_drip",
            FaultMode::OversizedLine => "oversized_line",
            FaultMode::InvalidUtf8 => "invalid_utf8",
            FaultMode::WrongContentType => "wrong_content_type",
            FaultMode::NeverDone => "never_done",
            FaultMode::Flood => "flood",
        }
    }
}

impl fmt::Display for FaultMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FaultMode {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        FaultMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| SimError::InvalidFault(s.to_string()))
    }
}

/// Server-wide fault settings; the parameters also apply to faults chosen per request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultPlan {
    /// The fault to inject into generation requests; `None` injects nothing server-wide.
    pub mode: Option<FaultMode>,
    /// Tokens sent before a midstream fault.
    pub after_tokens: u32,
    /// Length of stalls (`stall_before_first_byte`, `stall_midstream`, `never_done`), and
    /// the longest a `flood` goes on.
    pub stall_ms: u64,
    /// Inject only into every n-th generation request (n, 2n, ...); `None` means every one.
    pub every_nth_request: Option<u32>,
    /// Length of the `oversized_line` line, newline(s) included.
    pub oversized_bytes: usize,
    /// Gap between the one-byte chunks of `slow_drip` (0: only yield to the connection task).
    pub drip_gap_ms: u64,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            mode: None,
            after_tokens: 3,
            stall_ms: 10_000,
            every_nth_request: None,
            oversized_bytes: 2 * 1024 * 1024,
            drip_gap_ms: 1,
        }
    }
}

/// The fault one request gets, with its parameters resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    pub mode: FaultMode,
    pub after_tokens: u32,
    pub stall: Duration,
    pub oversized_bytes: usize,
    pub drip_gap: Duration,
}

impl FaultPlan {
    /// The plan's fault for the `nth` (1-based) generation request, if any.
    pub(crate) fn for_request(&self, nth: u64) -> Option<Fault> {
        let mode = self.mode?;
        match self.every_nth_request {
            Some(n) if n == 0 || nth % u64::from(n) != 0 => None,
            _ => Some(self.with_mode(mode)),
        }
    }

    fn with_mode(&self, mode: FaultMode) -> Fault {
        Fault {
            mode,
            after_tokens: self.after_tokens,
            stall: Duration::from_millis(self.stall_ms),
            oversized_bytes: self.oversized_bytes,
            drip_gap: Duration::from_millis(self.drip_gap_ms),
        }
    }

    /// Parse a per-request fault: `mode[; after_tokens=N][; stall_ms=N][; oversized_bytes=N][; drip_gap_ms=N]`.
    ///
    /// Parameters not given come from this plan.
    pub(crate) fn parse_request(&self, spec: &str) -> Result<Fault, SimError> {
        let invalid = || SimError::InvalidFault(spec.to_string());
        let mut parts = spec.split(';');
        let mode: FaultMode = parts.next().unwrap_or_default().parse()?;
        let mut fault = self.with_mode(mode);
        for part in parts.map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(invalid)?;
            let value: u64 = value.trim().parse().map_err(|_| invalid())?;
            match key.trim() {
                "after_tokens" => {
                    fault.after_tokens = u32::try_from(value).map_err(|_| invalid())?
                }
                "stall_ms" => fault.stall = Duration::from_millis(value),
                "oversized_bytes" => {
                    fault.oversized_bytes = usize::try_from(value).map_err(|_| invalid())?
                }
                "drip_gap_ms" => fault.drip_gap = Duration::from_millis(value),
                _ => return Err(invalid()),
            }
        }
        Ok(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for mode in FaultMode::ALL {
            assert_eq!(mode.as_str().parse::<FaultMode>().unwrap(), mode);
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{}\"", mode.as_str()));
        }
        assert!("explode".parse::<FaultMode>().is_err());
    }

    #[test]
    fn every_nth_request_selects_multiples() {
        let plan = FaultPlan {
            mode: Some(FaultMode::Http500),
            every_nth_request: Some(3),
            ..FaultPlan::default()
        };
        let hit: Vec<u64> = (1..=9).filter(|&n| plan.for_request(n).is_some()).collect();
        assert_eq!(hit, [3, 6, 9]);
        assert!(FaultPlan::default().for_request(1).is_none());
    }

    #[test]
    fn request_spec_overrides_parameters() {
        let plan = FaultPlan::default();
        let fault = plan
            .parse_request("stall_midstream; stall_ms=150;after_tokens=2")
            .unwrap();
        assert_eq!(fault.mode, FaultMode::StallMidstream);
        assert_eq!(fault.stall, Duration::from_millis(150));
        assert_eq!(fault.after_tokens, 2);
        assert_eq!(fault.oversized_bytes, plan.oversized_bytes);
        assert!(plan.parse_request("stall_midstream; bogus=1").is_err());
        assert!(plan.parse_request("nope").is_err());
    }
}
