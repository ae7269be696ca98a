//! The backends chimeraforge knows, declared once: the table at the end of this file.
//!
//! A Rust backend is compiled in when its cargo feature (named like the backend) is on, and
//! runs monomorphized: [`with_compiled`] hands its type to the caller (the child runs
//! `run_job::<B>`), no trait objects on the measured path. A Python backend is run by the
//! Python environment ([`crate::python`]) with the same job and record.

use crate::python::{PythonBackend, PYTHON_INSTALL_COMMAND};
use chimeraforge_core::{Backend, BackendId};

/// One backend of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub name: &'static str,
    pub kind: Kind,
}

/// How a backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `core::Backend` in its own crate, in this binary when its feature is on.
    Rust { compiled: bool },
    /// External: `python -m chimeraforge_py child`, the same job on stdin, the same record out.
    Python(PythonBackend),
}

impl Entry {
    /// The Python backend, for an external entry.
    pub fn python(&self) -> Option<&PythonBackend> {
        match &self.kind {
            Kind::Python(p) => Some(p),
            Kind::Rust { .. } => None,
        }
    }

    /// Whether it can run here: compiled in, or its Python environment installed.
    fn runnable(&self) -> bool {
        match &self.kind {
            Kind::Rust { compiled } => *compiled,
            Kind::Python(p) => p.interpreter().is_ok(),
        }
    }
}

/// What to do with a compiled backend's type: [`with_compiled`] calls `with::<B>()`.
pub trait WithBackend {
    type Output;
    fn with<B: Backend>(self) -> Self::Output;
}

/// The table's entry for `id`, or `None` for a name chimeraforge does not know.
pub fn lookup(id: &BackendId) -> Option<&'static Entry> {
    TABLE.iter().find(|e| *id == e.name)
}

/// The Python backend named `name`, if it is one.
pub fn python_backend(name: &str) -> Option<&'static PythonBackend> {
    TABLE.iter().find(|e| e.name == name)?.python()
}

/// Names of the backends in this build, in the table's order.
pub fn compiled_names() -> Vec<&'static str> {
    TABLE
        .iter()
        .filter(|e| e.kind == Kind::Rust { compiled: true })
        .map(|e| e.name)
        .collect()
}

/// What `--backends all` selects: the compiled backends, then the installed external ones.
pub fn selectable_names() -> Vec<&'static str> {
    TABLE
        .iter()
        .filter(|e| e.runnable())
        .map(|e| e.name)
        .collect()
}

/// `chimeraforge backends`: one line per backend; an external one that cannot run says why.
pub fn listing() -> Vec<String> {
    let mut lines: Vec<String> = compiled_names().iter().map(|s| s.to_string()).collect();
    for p in TABLE.iter().filter_map(Entry::python) {
        match p.interpreter() {
            Ok(_) => lines.push(p.name.to_owned()),
            Err(why) => lines.push(format!(
                "{}  (not installed: {}; run `{PYTHON_INSTALL_COMMAND}`)",
                p.name,
                why.lines().next().unwrap_or_default()
            )),
        }
    }
    lines
}

/// The child command of external backend `id` (`VENV/bin/python -m chimeraforge_py child
/// --backend NAME`); `None` for a compiled backend, whose child is this binary.
pub fn external_command(id: &BackendId) -> Option<Result<std::process::Command, String>> {
    Some(lookup(id)?.python()?.child_command())
}

/// Whether two names are the same, at compile time (the table's check of `Backend::NAME`).
const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether no name is in `names` twice, at compile time.
const fn distinct(names: &[&str]) -> bool {
    let mut i = 0;
    while i < names.len() {
        let mut j = 0;
        while j < i {
            if same_name(names[i], names[j]) {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

const _: () = assert!(
    distinct(&ALL_NAMES),
    "a backend is declared twice in the table"
);

/// `Some(module)` or `None`: the Python package a backend needs beyond the environment's.
macro_rules! needs {
    () => {
        None
    };
    ($module:literal) => {
        Some($module)
    };
}

/// The one declaration of every backend. A Rust line `"NAME" => path::Type` requires a
/// cargo feature `NAME` in driver/Cargo.toml (rustc warns of an unknown feature) and, when
/// the feature is on, `<Type as Backend>::NAME == "NAME"` (checked at compile time). From
/// the table follow [`TABLE`], the name lists and [`with_compiled`].
macro_rules! backends {
    (
        rust { $($rust:literal => $ty:path,)* }
        python { $($py:literal $(needs $module:literal)?,)* }
    ) => {
        /// Every backend, compiled in or not: the Rust ones, then the Python ones.
        pub(crate) const TABLE: &[Entry] = &[
            $(Entry { name: $rust, kind: Kind::Rust { compiled: cfg!(feature = $rust) } },)*
            $(Entry {
                name: $py,
                kind: Kind::Python(PythonBackend { name: $py, needs_module: needs!($($module)?) }),
            },)*
        ];

        /// Every backend chimeraforge knows, whether or not this build contains it.
        pub const ALL_NAMES: [&str; [$($rust,)* $($py,)*].len()] = [$($rust,)* $($py,)*];

        /// The Rust backends, compiled in or not: each is also the cargo feature that
        /// compiles it in (`chimeraforge backends --features`).
        pub const RUST_NAMES: [&str; [$($rust,)*].len()] = [$($rust,)*];

        /// The external backends: run by the Python environment, not compiled in.
        pub const EXTERNAL_NAMES: [&str; [$($py,)*].len()] = [$($py,)*];

        $(
            #[cfg(feature = $rust)]
            const _: () = assert!(
                same_name(<$ty as Backend>::NAME, $rust),
                concat!("Backend::NAME of ", stringify!($ty), " is not its feature name ", $rust)
            );
        )*

        /// `w.with::<B>()` for the compiled backend `id`; `None` when `id` is not in this
        /// build.
        pub fn with_compiled<W: WithBackend>(id: &BackendId, w: W) -> Option<W::Output> {
            match id.as_str() {
                $(
                    #[cfg(feature = $rust)]
                    $rust => Some(w.with::<$ty>()),
                )*
                _ => {
                    drop(w);
                    None
                }
            }
        }
    };
}

/// `--backends` as given: `all` is every backend that can run here (see
/// [`selectable_names`]); otherwise the comma-separated names, trimmed, empty ones skipped,
/// unchecked.
pub fn parse_list(list: &str) -> Vec<BackendId> {
    if list == "all" {
        return selectable_names()
            .into_iter()
            .map(BackendId::from)
            .collect();
    }
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(BackendId::from)
        .collect()
}

backends! {
    rust {
        "tokio-default" => chimeraforge_backend_tokio::TokioDefault,
        "tokio-localset" => chimeraforge_backend_tokio::TokioLocalSet,
        "smol-1kb" => chimeraforge_backend_smol::Smol1Kb,
        "async-std" => chimeraforge_backend_async_std::AsyncStd,
    }
    python {
        "python-asyncio",
        "python-uvloop" needs "uvloop",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_features_are_the_tables_rust_backends_in_order() {
        let manifest: toml::Value = toml::from_str(include_str!("../Cargo.toml")).unwrap();
        let features = manifest["features"].as_table().unwrap();
        let default: Vec<&str> = features["default"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert_eq!(default, RUST_NAMES);
        // Every feature that compiles in a backend crate has a table line.
        let mut backend_features: Vec<&str> = features
            .iter()
            .filter(|(_, deps)| {
                deps.as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d.as_str().unwrap().starts_with("dep:chimeraforge-backend-"))
            })
            .map(|(name, _)| name.as_str())
            .collect();
        backend_features.sort_unstable();
        let mut names = RUST_NAMES.to_vec();
        names.sort_unstable();
        assert_eq!(backend_features, names, "one feature per Rust backend");
    }

    #[test]
    fn lookup_finds_each_name_and_only_those() {
        for n in ALL_NAMES {
            assert_eq!(lookup(&BackendId::new(n)).unwrap().name, n);
        }
        assert!(lookup(&BackendId::new("tokio")).is_none());
        assert_eq!(ALL_NAMES.len(), RUST_NAMES.len() + EXTERNAL_NAMES.len());
    }

    #[test]
    fn same_name_compares_bytes() {
        assert!(same_name("smol-1kb", "smol-1kb"));
        assert!(!same_name("smol-1kb", "smol-1k"));
        assert!(!same_name("smol-1kb", "smol-1kc"));
        assert!(distinct(&["a", "b", "ab"]));
        assert!(!distinct(&["a", "b", "a"]));
    }
}
