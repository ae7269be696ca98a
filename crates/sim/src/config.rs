//! What a simulated server serves: its device, its models and their speeds, its faults.

use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::fault::FaultPlan;
use crate::text::synthetic_digest;
use crate::SimError;

/// The names [`SimConfig::profile`] accepts.
pub const PROFILE_NAMES: [&str; 5] = ["quickstart", "gpu-like", "null", "fixed", "reasoning"];

/// Reasoning tokens every model of the `reasoning` profile generates before its answer.
pub const REASONING_PROFILE_TOKENS: u32 = 24;

/// One simulated model and its speeds.
///
/// A rate of 0 (or any non-positive or non-finite value) costs no time: `decode_tok_s = 0`
/// decodes as fast as the client reads, `prefill_tok_s = 0` makes prefill free.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelProfile {
    /// Name as clients send it, e.g. `gemma3:latest`; a name without a tag also matches `:latest`.
    pub name: String,
    /// Fixed overhead from the end of loading to the first token, beyond prefill.
    pub ttft_ms: f64,
    /// Prompt tokens per second.
    pub prefill_tok_s: f64,
    /// Per-stream decode rate when alone on the device.
    pub decode_tok_s: f64,
    /// Model load time, paid on first use and on every reload.
    pub load_ms: f64,
    /// Inclusive range of output lengths when the request sets no `num_predict` / `max_tokens`.
    pub default_output_tokens: (u32, u32),
    /// Layers, reported by `/api/show` as `<family>.block_count`.
    pub block_count: u32,
    /// Reported by `/api/tags` and `/api/ps`.
    pub digest: String,
    /// Ollama `details.family`, e.g. `gemma3`.
    pub family: String,
    /// Ollama `details.parameter_size`, e.g. `4.3B`.
    pub parameter_size: String,
    /// Ollama `details.quantization_level`, e.g. `Q4_K_M`.
    pub quantization_level: String,
    /// Model file size in bytes, reported by `/api/tags`.
    pub size_bytes: u64,
    /// A reasoning model: this many reasoning tokens ("thinking") come before the answer,
    /// timed like every other token and counted in the output (see the crate docs). 0: none.
    pub reasoning_tokens: u32,
}

impl Default for ModelProfile {
    fn default() -> Self {
        ModelProfile {
            name: "sim:latest".to_string(),
            ttft_ms: 20.0,
            prefill_tok_s: 5000.0,
            decode_tok_s: 400.0,
            load_ms: 200.0,
            default_output_tokens: (48, 96),
            block_count: 32,
            digest: synthetic_digest("sim:latest"),
            family: "sim".to_string(),
            parameter_size: "1B".to_string(),
            quantization_level: "Q4_K_M".to_string(),
            size_bytes: 1_000_000_000,
            reasoning_tokens: 0,
        }
    }
}

/// The four models every preset serves: (name, family, parameter size, quantization, bytes, layers).
const MODELS: [(&str, &str, &str, &str, u64, u32); 4] = [
    (
        "gemma3:latest",
        "gemma3",
        "4.3B",
        "Q4_K_M",
        3_338_801_804,
        34,
    ),
    (
        "llama3.1:8b-instruct-q4_0",
        "llama",
        "8.0B",
        "Q4_0",
        4_661_224_676,
        32,
    ),
    ("qwen2.5:7b", "qwen2", "7.6B", "Q4_K_M", 4_683_087_332, 28),
    ("gemma3:270m", "gemma3", "268.10M", "Q8_0", 291_554_930, 18),
];

/// Speeds of one preset: shared ones, then per-model decode rates in [`MODELS`] order.
struct Speeds {
    ttft_ms: f64,
    prefill_tok_s: f64,
    load_ms: f64,
    default_output_tokens: (u32, u32),
    decode_tok_s: [f64; 4],
}

fn models(speeds: Speeds) -> Vec<ModelProfile> {
    MODELS
        .iter()
        .zip(speeds.decode_tok_s)
        .map(
            |(&(name, family, params, quant, size, blocks), decode_tok_s)| ModelProfile {
                name: name.to_string(),
                ttft_ms: speeds.ttft_ms,
                prefill_tok_s: speeds.prefill_tok_s,
                decode_tok_s,
                load_ms: speeds.load_ms,
                default_output_tokens: speeds.default_output_tokens,
                block_count: blocks,
                digest: synthetic_digest(name),
                family: family.to_string(),
                parameter_size: params.to_string(),
                quantization_level: quant.to_string(),
                size_bytes: size,
                reasoning_tokens: 0,
            },
        )
        .collect()
}

/// Everything one simulated server needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// How concurrent streams share the device.
    pub device: Device,
    /// Models served; the first request for a name not here gets Ollama's 404.
    pub models: Vec<ModelProfile>,
    /// Threads of the simulator's own tokio runtime (0 is taken as 1).
    pub worker_threads: usize,
    /// Faults injected into generation requests.
    pub faults: FaultPlan,
    /// When set, every endpoint but `GET /health` and `GET /` requires `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Keep a prompt cache as llama.cpp does: a prompt's longest word prefix shared with one of
    /// the last [`crate::server::PROMPT_CACHE_ENTRIES`] prompts (all but its last word) is not
    /// prefilled again, and the reply says so (`timings.cache_n`, `usage.prompt_tokens_details.
    /// cached_tokens`, Ollama `prompt_eval_cached_count`). Off in every preset.
    pub prompt_cache: bool,
    /// Serve https: a CA and a certificate for the loopback names made at start (see
    /// [`crate::SimHandle::ca_file`]). Off in every preset.
    pub tls: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::quickstart()
    }
}

impl SimConfig {
    /// A named preset: `quickstart`, `gpu-like`, `null`, `fixed` or `reasoning` (see the
    /// crate docs).
    pub fn profile(name: &str) -> Result<SimConfig, SimError> {
        match name {
            "quickstart" => Ok(SimConfig::quickstart()),
            "gpu-like" => Ok(SimConfig::gpu_like()),
            "null" => Ok(SimConfig::null()),
            "fixed" => Ok(SimConfig::fixed()),
            "reasoning" => Ok(SimConfig::reasoning()),
            other => Err(SimError::UnknownProfile(other.to_string())),
        }
    }

    fn with(device: Device, speeds: Speeds) -> SimConfig {
        SimConfig {
            device,
            models: models(speeds),
            worker_threads: 1,
            faults: FaultPlan::default(),
            api_key: None,
            prompt_cache: false,
            tls: false,
        }
    }

    fn quickstart() -> SimConfig {
        SimConfig::with(
            Device::Shared {
                capacity_tok_s: 600.0,
            },
            Speeds {
                ttft_ms: 20.0,
                prefill_tok_s: 5000.0,
                load_ms: 200.0,
                default_output_tokens: (48, 96),
                decode_tok_s: [400.0, 360.0, 380.0, 440.0],
            },
        )
    }

    /// `quickstart` with every model a reasoning model.
    fn reasoning() -> SimConfig {
        let mut config = SimConfig::quickstart();
        for m in &mut config.models {
            m.reasoning_tokens = REASONING_PROFILE_TOKENS;
        }
        config
    }

    fn gpu_like() -> SimConfig {
        SimConfig::with(
            Device::Shared {
                capacity_tok_s: 150.0,
            },
            Speeds {
                ttft_ms: 80.0,
                prefill_tok_s: 1500.0,
                load_ms: 3000.0,
                default_output_tokens: (200, 600),
                decode_tok_s: [100.0, 68.0, 76.0, 250.0],
            },
        )
    }

    fn null() -> SimConfig {
        SimConfig::with(
            Device::Ideal,
            Speeds {
                ttft_ms: 0.0,
                prefill_tok_s: 0.0,
                load_ms: 0.0,
                default_output_tokens: (32, 64),
                decode_tok_s: [0.0; 4],
            },
        )
    }

    fn fixed() -> SimConfig {
        SimConfig::with(
            Device::Ideal,
            Speeds {
                ttft_ms: 50.0,
                prefill_tok_s: 0.0,
                load_ms: 0.0,
                default_output_tokens: (50, 50),
                decode_tok_s: [100.0; 4],
            },
        )
    }

    /// Reject configurations the timing model cannot honour.
    pub fn validate(&self) -> Result<(), SimError> {
        let invalid = |why: String| Err(SimError::InvalidConfig(why));
        if self.models.is_empty() {
            return invalid("no models".to_string());
        }
        if let Device::Shared { capacity_tok_s } = self.device {
            if !(capacity_tok_s.is_finite() && capacity_tok_s > 0.0) {
                return invalid(format!("shared capacity {capacity_tok_s} tok/s"));
            }
        }
        for (i, m) in self.models.iter().enumerate() {
            if self.models[..i].iter().any(|o| o.name == m.name) {
                return invalid(format!("model {} listed twice", m.name));
            }
            for (what, v) in [("ttft_ms", m.ttft_ms), ("load_ms", m.load_ms)] {
                if !(v.is_finite() && v >= 0.0) {
                    return invalid(format!("model {}: {what} = {v}", m.name));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_is_valid() {
        for name in PROFILE_NAMES {
            let config = SimConfig::profile(name).unwrap();
            config.validate().unwrap();
            assert_eq!(config.models.len(), 4);
        }
        let reasoning = SimConfig::profile("reasoning").unwrap();
        assert!(reasoning
            .models
            .iter()
            .all(|m| m.reasoning_tokens == REASONING_PROFILE_TOKENS));
        assert!(SimConfig::profile("quickstart")
            .unwrap()
            .models
            .iter()
            .all(|m| m.reasoning_tokens == 0));
        assert!(matches!(
            SimConfig::profile("nope"),
            Err(SimError::UnknownProfile(_))
        ));
    }

    #[test]
    fn config_deserializes_with_defaults() {
        let config: SimConfig = serde_json::from_str(
            r#"{"device":{"kind":"serial"},"models":[{"name":"m:latest","decode_tok_s":50}]}"#,
        )
        .unwrap();
        assert_eq!(config.device, Device::Serial);
        assert_eq!(config.models[0].decode_tok_s, 50.0);
        assert_eq!(config.models[0].ttft_ms, ModelProfile::default().ttft_ms);
        assert_eq!(config.faults, FaultPlan::default());
    }
}
