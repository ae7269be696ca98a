//! The results directory: `manifest.json` and `runs.jsonl` (one record per line, each
//! flushed and synced to disk as soon as its run ends).

use anyhow::Context;
use chimeraforge_core::record::RunRecord;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";
pub const RUNS: &str = "runs.jsonl";

/// An open results directory being written.
pub struct ResultsDir {
    pub path: PathBuf,
    runs: File,
}

impl ResultsDir {
    /// Create `path` (which must not already hold runs) and write the manifest.
    pub fn create(path: &Path, manifest: &serde_json::Value) -> anyhow::Result<ResultsDir> {
        if path.join(RUNS).exists() {
            anyhow::bail!(
                "{} already holds runs\n  hint: pick another --out directory (results are never overwritten)",
                path.display()
            );
        }
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create results directory {}", path.display()))?;
        write_atomic(&path.join(MANIFEST), &manifest_bytes(manifest)?)?;
        let runs = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path.join(RUNS))
            .with_context(|| format!("cannot open {}", path.join(RUNS).display()))?;
        sync_dir(path);
        Ok(ResultsDir {
            path: path.to_owned(),
            runs,
        })
    }

    /// Reopen a results directory to resume it: read its manifest and records, and repair
    /// `runs.jsonl` if a killed bench left a partial last line (the tail after the last
    /// newline is cut off, so what is appended next starts on a line of its own).
    pub fn reopen(path: &Path) -> anyhow::Result<Reopened> {
        let manifest = read_manifest(path)?;
        let runs_path = path.join(RUNS);
        let mut runs = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&runs_path)
            .with_context(|| format!("cannot open {}", runs_path.display()))?;
        let mut bytes = Vec::new();
        runs.read_to_end(&mut bytes)?;
        let mut warnings = Vec::new();
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if keep < bytes.len() {
            let tail = &bytes[keep..];
            if serde_json::from_slice::<RunRecord>(tail).is_ok() {
                // A whole record whose newline never made it: keep it, end the line.
                runs.write_all(b"\n")?;
                warnings.push(format!(
                    "{}: the last record had no line end; added one",
                    runs_path.display()
                ));
            } else {
                runs.set_len(keep as u64)?;
                warnings.push(format!(
                    "{}: removed a partial last line ({} bytes) left by an interrupted bench; its run will be measured again",
                    runs_path.display(),
                    tail.len()
                ));
            }
            runs.sync_data()?;
        }
        let (records, unreadable) = read_runs(path)?;
        warnings.extend(unreadable);
        Ok(Reopened {
            dir: ResultsDir {
                path: path.to_owned(),
                runs,
            },
            manifest,
            records,
            warnings,
        })
    }

    /// Append one record as a line, flushed and synced before returning. The children
    /// redact API keys from their records; this redacts again (see `crate::secrets`).
    pub fn append(&mut self, record: &RunRecord) -> anyhow::Result<()> {
        let mut value = serde_json::to_value(record)?;
        crate::secrets::scrub_json(&mut value);
        let mut line = serde_json::to_vec(&value)?;
        line.push(b'\n');
        self.runs.write_all(&line)?;
        self.runs.flush()?;
        self.runs.sync_data()?;
        Ok(())
    }

    /// Replace the manifest (e.g. with the end time and counts).
    pub fn update_manifest(&self, manifest: &serde_json::Value) -> anyhow::Result<()> {
        write_atomic(&self.path.join(MANIFEST), &manifest_bytes(manifest)?)
    }
}

/// The manifest as written: pretty JSON, API keys redacted (a lost run's stderr, a server's
/// answers to the preflight).
fn manifest_bytes(manifest: &serde_json::Value) -> anyhow::Result<Vec<u8>> {
    let mut manifest = manifest.clone();
    crate::secrets::scrub_json(&mut manifest);
    Ok(serde_json::to_vec_pretty(&manifest)?)
}

/// The manifest of a results directory.
pub fn read_manifest(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let path = dir.join(MANIFEST);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "cannot read {}\n  hint: --resume takes a results directory written by `chimeraforge bench`",
            path.display()
        )
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// A results directory reopened by [`ResultsDir::reopen`].
pub struct Reopened {
    pub dir: ResultsDir,
    pub manifest: serde_json::Value,
    pub records: Vec<RunRecord>,
    /// Repairs made and lines that could not be read.
    pub warnings: Vec<String>,
}

/// Make a new directory entry durable (best effort: not every filesystem supports it).
fn sync_dir(path: &Path) {
    if let Ok(d) = File::open(path) {
        let _ = d.sync_all();
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut f = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Records of a results directory, and a warning for each line that could not be read
/// (a partial last line from a killed process is expected and skipped).
pub fn read_runs(dir: &Path) -> anyhow::Result<(Vec<RunRecord>, Vec<String>)> {
    let path = dir.join(RUNS);
    let f = File::open(&path).with_context(|| {
        format!(
            "cannot open {}\n  hint: pass a results directory written by `chimeraforge bench`",
            path.display()
        )
    })?;
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<RunRecord>(&line) {
            Ok(r) => records.push(r),
            Err(e) => warnings.push(format!(
                "{}:{}: skipped an unreadable record ({e}); a run interrupted while being written leaves one",
                path.display(),
                i + 1
            )),
        }
    }
    Ok((records, warnings))
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time in seconds (UTC), without a date library.
pub fn utc_stamp(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_cuts_a_partial_last_line() {
        let tmp = std::env::temp_dir().join(format!("cf-reopen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let dir = ResultsDir::create(&tmp, &serde_json::json!({"k": 1})).unwrap();
        drop(dir);
        std::fs::write(tmp.join(RUNS), b"{\"schema_version\":1,\"back").unwrap();
        let r = ResultsDir::reopen(&tmp).unwrap();
        assert_eq!(r.manifest["k"], 1);
        assert!(r.records.is_empty());
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("partial last line"));
        assert_eq!(std::fs::read(tmp.join(RUNS)).unwrap(), b"");
        // Nothing to repair the second time.
        assert!(ResultsDir::reopen(&tmp).unwrap().warnings.is_empty());
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn utc_stamp_matches_known_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_795_977_795), "20261129T184315Z");
    }
}
