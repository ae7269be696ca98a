//! The results directory on disk: `manifest.json` (replaced atomically) and `runs.jsonl` (one
//! record per line, each flushed and synced to disk as soon as its run ends).

use crate::manifest::{Manifest, SCHEMA_VERSION};
use crate::ResultsError;
use chimeraforge_core::record::{self, RunRecord};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";
pub const RUNS: &str = "runs.jsonl";

/// Redacts secrets (API keys) from JSON before it is written; the driver's is
/// `chimeraforge::secrets::scrub_json`.
pub type Redact = fn(&mut serde_json::Value);

/// An open results directory being written.
pub struct ResultsDir {
    pub path: PathBuf,
    runs: File,
    redact: Redact,
}

/// A results directory reopened by [`ResultsDir::reopen`].
pub struct Reopened {
    pub dir: ResultsDir,
    pub manifest: Manifest,
    pub records: Vec<RunRecord>,
    /// Repairs made and lines that could not be read.
    pub warnings: Vec<String>,
}

impl ResultsDir {
    /// Create `path` (which must not already hold runs) and write `manifest`; everything
    /// written through it is passed through `redact` first.
    pub fn create(
        path: &Path,
        manifest: &Manifest,
        redact: Redact,
    ) -> Result<ResultsDir, ResultsError> {
        if path.join(RUNS).exists() {
            return Err(ResultsError::AlreadyHoldsRuns {
                dir: path.to_owned(),
            });
        }
        std::fs::create_dir_all(path).map_err(|source| ResultsError::Create {
            path: path.to_owned(),
            source,
        })?;
        // The manifest first: a directory whose manifest could not be written holds no runs.
        write_manifest(path, manifest, redact)?;
        let runs_path = path.join(RUNS);
        let runs = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&runs_path)
            .map_err(|source| ResultsError::Write {
                path: runs_path,
                source,
            })?;
        sync_dir(path);
        Ok(ResultsDir {
            path: path.to_owned(),
            runs,
            redact,
        })
    }

    /// Reopen a results directory to resume it: read its manifest and records, and repair
    /// `runs.jsonl` if a killed bench left a partial last line (the tail after the last
    /// newline is cut off, so what is appended next starts on a line of its own).
    pub fn reopen(path: &Path, redact: Redact) -> Result<Reopened, ResultsError> {
        let manifest = read_manifest(path)?;
        let runs_path = path.join(RUNS);
        let io = |source| ResultsError::Write {
            path: runs_path.clone(),
            source,
        };
        let mut runs = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&runs_path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        runs.read_to_end(&mut bytes).map_err(io)?;
        let mut warnings = Vec::new();
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if keep < bytes.len() {
            let tail = &bytes[keep..];
            if serde_json::from_slice::<RunRecord>(tail).is_ok() {
                // A whole record whose newline never made it: keep it, end the line.
                runs.write_all(b"\n").map_err(io)?;
                warnings.push(format!(
                    "{}: the last record had no line end; added one",
                    runs_path.display()
                ));
            } else {
                runs.set_len(keep as u64).map_err(io)?;
                warnings.push(format!(
                    "{}: removed a partial last line ({} bytes) left by an interrupted bench; its run will be measured again",
                    runs_path.display(),
                    tail.len()
                ));
            }
            runs.sync_data().map_err(io)?;
        }
        let (records, unreadable) = read_runs(path)?;
        warnings.extend(unreadable);
        Ok(Reopened {
            dir: ResultsDir {
                path: path.to_owned(),
                runs,
                redact,
            },
            manifest,
            records,
            warnings,
        })
    }

    /// Append one record as a line, redacted, flushed and synced before returning.
    pub fn append(&mut self, record: &RunRecord) -> Result<(), ResultsError> {
        let runs_path = || self.path.join(RUNS);
        let serialize = |source| ResultsError::Serialize {
            path: runs_path(),
            source,
        };
        let mut value = serde_json::to_value(record).map_err(serialize)?;
        (self.redact)(&mut value);
        let mut line = serde_json::to_vec(&value).map_err(serialize)?;
        line.push(b'\n');
        let io = |source| ResultsError::Write {
            path: runs_path(),
            source,
        };
        self.runs.write_all(&line).map_err(io)?;
        self.runs.flush().map_err(io)?;
        self.runs.sync_data().map_err(io)?;
        Ok(())
    }

    /// Replace the manifest (e.g. with a lost run, or the end time and counts).
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<(), ResultsError> {
        write_manifest(&self.path, manifest, self.redact)
    }
}

/// Write `dir`'s manifest: pretty JSON with sorted keys, redacted (a lost run's stderr, a
/// server's answers to the preflight), replaced atomically.
fn write_manifest(dir: &Path, manifest: &Manifest, redact: Redact) -> Result<(), ResultsError> {
    let path = dir.join(MANIFEST);
    let serialize = |source| ResultsError::Serialize {
        path: path.clone(),
        source,
    };
    let mut value = serde_json::to_value(manifest).map_err(serialize)?;
    redact(&mut value);
    let bytes = serde_json::to_vec_pretty(&value).map_err(serialize)?;
    write_atomic(&path, &bytes)
}

/// The manifest of a results directory, refusing one of a newer schema version.
pub fn read_manifest(dir: &Path) -> Result<Manifest, ResultsError> {
    let path = dir.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ResultsError::NotResultsDir {
                dir: dir.to_owned(),
                manifest: path,
            })
        }
        Err(source) => return Err(ResultsError::Read { path, source }),
    };
    // The version first, so a newer manifest is named as such rather than as unreadable.
    #[derive(serde::Deserialize)]
    struct Version {
        schema_version: Option<u64>,
    }
    let version: Version =
        serde_json::from_slice(&bytes).map_err(|source| ResultsError::Manifest {
            path: path.clone(),
            source,
        })?;
    if let Some(found) = version
        .schema_version
        .filter(|&v| v > u64::from(SCHEMA_VERSION))
    {
        return Err(ResultsError::UnsupportedVersion {
            path,
            found,
            supported: SCHEMA_VERSION,
        });
    }
    serde_json::from_slice(&bytes).map_err(|source| ResultsError::Manifest { path, source })
}

/// Records of a results directory's `runs.jsonl`, and a warning for each line that could not
/// be read. A missing file is a warning too (no run was recorded).
pub fn read_runs(dir: &Path) -> Result<(Vec<RunRecord>, Vec<String>), ResultsError> {
    let path = dir.join(RUNS);
    let mut warnings = Vec::new();
    let records = match std::fs::read(&path) {
        Ok(bytes) => parse_runs(&bytes, &path, &mut warnings),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            warnings.push(format!("{}: missing; no run was recorded", path.display()));
            Vec::new()
        }
        Err(source) => return Err(ResultsError::Read { path, source }),
    };
    Ok((records, warnings))
}

/// Records of a `runs.jsonl` body; `path` only names the file in warnings. A line that does
/// not parse (the partial last line of a killed process, say), or holds a record of another
/// schema version, is skipped with a warning naming `file:line`.
pub fn parse_runs(bytes: &[u8], path: &Path, warnings: &mut Vec<String>) -> Vec<RunRecord> {
    let mut records = Vec::new();
    let last = bytes.split(|&b| b == b'\n').count();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        match serde_json::from_slice::<RunRecord>(line) {
            Ok(r) if r.schema_version != record::SCHEMA_VERSION => warnings.push(format!(
                "{at}: skipped a record of schema version {} (this report reads version {})",
                r.schema_version,
                record::SCHEMA_VERSION
            )),
            Ok(r) => records.push(r),
            Err(e) => {
                let hint = if i + 1 == last {
                    "the last line is partial when a run was interrupted while being written"
                } else {
                    "not a run record"
                };
                warnings.push(format!("{at}: skipped an unreadable line ({e}); {hint}"));
            }
        }
    }
    records
}

/// A results directory as read.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Where it was read from (empty for results built in memory).
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Every readable record, in file order.
    pub records: Vec<RunRecord>,
    /// One line per skipped line of `runs.jsonl`, naming `file:line`.
    pub warnings: Vec<String>,
}

/// Read `dir`: its manifest, and every record of `runs.jsonl` that parses.
pub fn read_results(dir: &Path) -> Result<Results, ResultsError> {
    let manifest = read_manifest(dir)?;
    let (records, warnings) = read_runs(dir)?;
    Ok(Results {
        dir: dir.to_owned(),
        manifest,
        records,
        warnings,
    })
}

/// Write `bytes` to a temporary file beside `path`, sync it, then rename, so a reader never
/// sees half a file and a crash leaves the old one or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ResultsError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = |path: &Path, source| ResultsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = File::create(&tmp).map_err(|e| write(&tmp, e))?;
    f.write_all(bytes).map_err(|e| write(&tmp, e))?;
    f.sync_all().map_err(|e| write(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| write(path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Make a new directory entry durable (best effort: not every filesystem supports it).
fn sync_dir(path: &Path) {
    if let Ok(d) = File::open(path) {
        let _ = d.sync_all();
    }
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

    fn no_redact(_: &mut serde_json::Value) {}

    #[test]
    fn reopen_cuts_a_partial_last_line() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("r");
        let manifest = Manifest {
            config_path: "k".into(),
            ..Manifest::default()
        };
        drop(ResultsDir::create(&path, &manifest, no_redact).unwrap());
        std::fs::write(path.join(RUNS), b"{\"schema_version\":1,\"back").unwrap();
        let r = ResultsDir::reopen(&path, no_redact).unwrap();
        assert_eq!(r.manifest.config_path, "k");
        assert!(r.records.is_empty());
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("partial last line"));
        assert_eq!(std::fs::read(path.join(RUNS)).unwrap(), b"");
        // Nothing to repair the second time.
        assert!(ResultsDir::reopen(&path, no_redact)
            .unwrap()
            .warnings
            .is_empty());
    }

    #[test]
    fn create_refuses_a_directory_with_runs() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(RUNS), b"").unwrap();
        let err = ResultsDir::create(tmp.path(), &Manifest::default(), no_redact)
            .err()
            .unwrap();
        assert!(err.to_string().contains("already holds runs"), "{err}");
    }

    #[test]
    fn written_manifest_is_redacted_and_reads_back() {
        fn redact(v: &mut serde_json::Value) {
            v["config_text"] = "[redacted]".into();
        }
        let tmp = tempfile::tempdir().unwrap();
        let manifest = Manifest {
            config_text: "key = \"sk-secret\"".into(),
            ..Manifest::default()
        };
        drop(ResultsDir::create(tmp.path(), &manifest, redact).unwrap());
        let back = read_manifest(tmp.path()).unwrap();
        assert_eq!(back.config_text, "[redacted]");
        assert!(!tmp.path().join("manifest.json.tmp").exists());
    }

    #[test]
    fn missing_manifest_says_not_a_results_directory() {
        let dir = tempfile::tempdir().unwrap();
        let msg = read_results(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("not a chimeraforge results directory"),
            "{msg}"
        );
        assert!(msg.contains(&dir.path().join(MANIFEST).display().to_string()));
    }

    #[test]
    fn bad_manifest_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), "{not json").unwrap();
        let msg = read_results(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("manifest.json") && msg.contains("cannot parse"),
            "{msg}"
        );
    }

    #[test]
    fn newer_manifest_is_a_versioned_error_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        // A newer version may change any field's type: the version is read first.
        std::fs::write(
            dir.path().join(MANIFEST),
            r#"{"schema_version": 2, "order": "elsewhere"}"#,
        )
        .unwrap();
        let err = read_manifest(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                ResultsError::UnsupportedVersion {
                    found: 2,
                    supported: 1,
                    ..
                }
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("manifest.json") && msg.contains("version 2") && msg.contains("hint"),
            "{msg}"
        );
    }

    #[test]
    fn missing_runs_file_is_a_warning_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), "{}").unwrap();
        let r = read_results(dir.path()).unwrap();
        assert!(r.records.is_empty());
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("runs.jsonl"));
    }

    #[test]
    fn garbage_lines_are_skipped_with_file_and_line() {
        let mut w = Vec::new();
        let recs = parse_runs(
            b"\n{\"schema_version\": 1}\n{\"trunc",
            Path::new("r.jsonl"),
            &mut w,
        );
        assert!(recs.is_empty());
        assert_eq!(w.len(), 2);
        assert!(w[0].starts_with("r.jsonl:2:"), "{}", w[0]);
        assert!(
            w[1].starts_with("r.jsonl:3:") && w[1].contains("partial"),
            "{}",
            w[1]
        );
    }

    #[test]
    fn utc_stamp_matches_known_dates() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_795_977_795), "20261129T184315Z");
    }
}
