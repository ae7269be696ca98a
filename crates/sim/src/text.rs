//! Deterministic prompt counting and output text: same request, same tokens.

/// Words a simulated model says; leading spaces like a BPE vocabulary, some multi-byte UTF-8
/// (2, 3 and 4 bytes) so clients meet characters split across reads.
const VOCABULARY: [&str; 64] = [
    " the",
    " model",
    " agent",
    " stream",
    " token",
    " runtime",
    " server",
    " latency",
    " of",
    " and",
    " to",
    " a",
    " in",
    " is",
    " we",
    " measure",
    " each",
    " request",
    " time",
    " first",
    " byte",
    " with",
    " async",
    " task",
    " queue",
    " shared",
    " device",
    " rate",
    " per",
    " second",
    " result",
    " run",
    " batch",
    " cache",
    " layer",
    " load",
    " context",
    ".",
    ",",
    " café",
    " naïve",
    " é",
    " —",
    " 日本",
    " 語",
    " Ω",
    " µs",
    " déjà",
    " vu",
    " résumé",
    " über",
    " 🦀",
    " ≈",
    " fast",
    " slow",
    " wait",
    " done",
    " then",
    " it",
    " for",
    " on",
    " not",
    " one",
    " two",
];

/// Seed used when a request sets none, so unseeded requests are still reproducible.
const DEFAULT_SEED: u64 = 0x5eed_c41e_0a11_0e1a;

/// Prompt tokens as the simulator counts them: whitespace-separated words over all parts.
pub(crate) fn prompt_tokens<'a>(parts: impl IntoIterator<Item = &'a str>) -> u32 {
    let words: usize = parts
        .into_iter()
        .map(|p| p.split_whitespace().count())
        .sum();
    u32::try_from(words).unwrap_or(u32::MAX)
}

/// splitmix64's finalizer: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// FNV-1a over bytes, starting from `state`.
fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= u64::from(b);
        state = state.wrapping_mul(0x0100_0000_01b3);
    }
    state
}

/// The deterministic source of one request's output: a hash of (seed, prompt parts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TextSeed(u64);

impl TextSeed {
    pub(crate) fn new<'a>(seed: Option<i64>, prompt: impl IntoIterator<Item = &'a str>) -> Self {
        let mut state = fnv1a(
            0xcbf2_9ce4_8422_2325,
            &seed.map_or(DEFAULT_SEED, |s| s as u64).to_le_bytes(),
        );
        for part in prompt {
            // A separator keeps ("ab","c") and ("a","bc") apart.
            state = fnv1a(fnv1a(state, part.as_bytes()), &[0xff]);
        }
        TextSeed(mix(state))
    }

    /// An output length in `lo..=hi` (order-insensitive, at least 1).
    pub(crate) fn output_len(self, (lo, hi): (u32, u32)) -> u32 {
        let (lo, hi) = (lo.min(hi).max(1), hi.max(lo).max(1));
        let span = u64::from(hi - lo) + 1;
        lo + (mix(self.0 ^ 0x1e57) % span) as u32
    }

    /// The text of token `index`.
    pub(crate) fn token(self, index: u32) -> &'static str {
        let pick = mix(self
            .0
            .wrapping_add(u64::from(index).wrapping_mul(0x2545_f491_4f6c_dd1d)));
        VOCABULARY[(pick % VOCABULARY.len() as u64) as usize]
    }
}

/// A stable 64-hex-digit stand-in for a model digest (not a real hash of any file).
pub(crate) fn synthetic_digest(name: &str) -> String {
    let mut state = fnv1a(0xcbf2_9ce4_8422_2325, name.as_bytes());
    (0..4)
        .map(|i| {
            state = mix(state ^ i);
            format!("{state:016x}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words() {
        assert_eq!(prompt_tokens(["hello  world\n again", "", "x"]), 4);
        assert_eq!(prompt_tokens(Vec::<&str>::new()), 0);
    }

    #[test]
    fn text_is_deterministic_and_seed_dependent() {
        let a = TextSeed::new(Some(7), ["why is the sky blue"]);
        let b = TextSeed::new(Some(7), ["why is the sky blue"]);
        let c = TextSeed::new(Some(8), ["why is the sky blue"]);
        let d = TextSeed::new(Some(7), ["why is the sky", "blue"]);
        let text = |s: TextSeed| (0..64).map(|i| s.token(i)).collect::<String>();
        assert_eq!(text(a), text(b));
        assert_ne!(text(a), text(c));
        assert_ne!(text(a), text(d));
    }

    #[test]
    fn output_len_stays_in_range_and_varies() {
        let lens: Vec<u32> = (0..200)
            .map(|s| TextSeed::new(Some(s), ["p"]).output_len((10, 20)))
            .collect();
        assert!(lens.iter().all(|l| (10..=20).contains(l)));
        assert!(lens.contains(&10) && lens.contains(&20));
        assert_eq!(TextSeed::new(None, ["p"]).output_len((5, 5)), 5);
        assert_eq!(TextSeed::new(None, ["p"]).output_len((0, 0)), 1);
    }

    #[test]
    fn vocabulary_has_multibyte_tokens() {
        assert!(VOCABULARY.iter().any(|t| t.len() > t.chars().count() + 1));
        assert!(VOCABULARY.iter().any(|t| t.contains('🦀')));
    }

    #[test]
    fn digest_is_stable_hex() {
        let d = synthetic_digest("gemma3:latest");
        assert_eq!(d.len(), 64);
        assert!(d.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(d, synthetic_digest("gemma3:latest"));
        assert_ne!(d, synthetic_digest("qwen2.5:7b"));
    }
}
