//! The Python backends' environment: where the venv is, whether it is installed, and the
//! child command that runs a Python backend (`python/chimeraforge_py`, httpx on asyncio or
//! uvloop). Which Python backends exist is the backend table's ([`crate::backends`]).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Installs the Python backends' environment (run from the repository root).
pub const PYTHON_INSTALL_COMMAND: &str = "scripts/python-env.sh";

/// Environment variable naming the Python venv (default: `.venv-py` in the repository).
pub const PYTHON_VENV_ENV: &str = "CHIMERAFORGE_PY_VENV";

/// A backend run by the Python environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PythonBackend {
    pub name: &'static str,
    /// The package it needs beyond the environment's base (e.g. `uvloop`), if any.
    pub needs_module: Option<&'static str>,
}

impl PythonBackend {
    /// The interpreter that runs this backend, or why it cannot run here.
    pub fn interpreter(&self) -> Result<PathBuf, String> {
        let name = self.name;
        let venv = python_venv();
        let python = venv.join("bin/python");
        let installed = python.exists() && venv.join(".chimeraforge-requirements").exists();
        if !installed {
            return Err(format!(
                "backend {name:?} needs the Python environment at {}, which is not installed\n  hint: run `{PYTHON_INSTALL_COMMAND}` in the repository root (or set {PYTHON_VENV_ENV} to an installed venv)",
                venv.display()
            ));
        }
        if let Some(module) = self.needs_module {
            if !python_has_module(&venv, module) {
                return Err(format!(
                    "backend {name:?} is unavailable: {module} is not installed in {}\n  hint: run `{PYTHON_INSTALL_COMMAND}`",
                    venv.display()
                ));
            }
        }
        Ok(python)
    }

    /// Its child command: `VENV/bin/python -m chimeraforge_py child --backend NAME`.
    pub(crate) fn child_command(&self) -> Result<Command, String> {
        self.interpreter().map(|python| {
            let mut cmd = Command::new(python);
            cmd.args(["-m", "chimeraforge_py", "child", "--backend", self.name]);
            cmd
        })
    }
}

/// The Python venv: `$CHIMERAFORGE_PY_VENV`, else `.venv-py` in the current directory or
/// its nearest ancestor that has one, else `.venv-py` in the source tree this binary was
/// built from.
fn python_venv() -> PathBuf {
    if let Some(v) = std::env::var_os(PYTHON_VENV_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(v);
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let v = dir.join(".venv-py");
            if v.join("bin/python").exists() {
                return v;
            }
        }
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-py")
}

/// Whether `venv`'s site-packages holds package `module` (no interpreter started).
fn python_has_module(venv: &Path, module: &str) -> bool {
    let Ok(libs) = std::fs::read_dir(venv.join("lib")) else {
        return false;
    };
    libs.flatten().any(|d| {
        d.path()
            .join("site-packages")
            .join(module)
            .join("__init__.py")
            .exists()
    })
}
