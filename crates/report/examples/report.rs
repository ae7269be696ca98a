//! Write the report of a results directory, or compare two:
//! `cargo run -p chimeraforge-report --example report -- DIR [DIR_B]`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let result = match dirs.as_slice() {
        [dir] => chimeraforge_report::write_report(dir).map(|s| {
            for w in &s.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "{} runs read ({} failed, {} missing): {}, {}, {}",
                s.runs_read,
                s.runs_failed,
                s.runs_missing,
                s.markdown.display(),
                s.html.display(),
                s.csv.display()
            );
        }),
        [a, b] => chimeraforge_report::compare(a, b).map(|c| print!("{c}")),
        _ => {
            eprintln!("usage: report DIR | report DIR_A DIR_B");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
