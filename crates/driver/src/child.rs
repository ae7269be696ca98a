//! The measured child process: one run of one cell on one backend, JSON in and out.
//! Progress drawing, file writing and the simulator all live in the parent.

use crate::backends::{compiled, ChildJob};
use anyhow::{bail, Context};
use chimeraforge_core::record::ClientCost;
use std::io::{Read, Write};

/// Read a [`ChildJob`] from stdin, run it, write the [`chimeraforge_core::record::RunRecord`] to stdout.
pub fn main() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the job from stdin")?;
    let job: ChildJob = serde_json::from_str(&input).context("parsing the job")?;
    let Some(backend) = compiled().into_iter().find(|b| b.name == job.backend) else {
        bail!("backend {:?} is not in this build", job.backend);
    };
    let mut record = (backend.run)(&job)?;
    record.client = Some(client_cost());
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &record)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// CPU, memory and context switches of this process so far (getrusage).
pub fn client_cost() -> ClientCost {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return ClientCost::default();
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    ClientCost {
        user_cpu_s: secs(ru.ru_utime),
        system_cpu_s: secs(ru.ru_stime),
        peak_rss_kib: ru.ru_maxrss as u64,
        voluntary_ctx_switches: ru.ru_nvcsw as u64,
        involuntary_ctx_switches: ru.ru_nivcsw as u64,
    }
}
