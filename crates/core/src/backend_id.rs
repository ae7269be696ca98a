//! [`BackendId`]: a backend's name as the command line, the manifest and the records spell it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A backend's name, e.g. `tokio-default` or `python-uvloop`: what `--backends` takes and what
/// results record. A typed name, not a check: which names this build can run is the driver's
/// backend table (`chimeraforge::backends`), the one place backends are declared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BackendId(String);

impl BackendId {
    /// The id for `name`, as given.
    pub fn new(name: impl Into<String>) -> Self {
        BackendId(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl AsRef<str> for BackendId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for BackendId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for BackendId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for BackendId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<&str> for BackendId {
    fn from(name: &str) -> Self {
        BackendId::new(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_its_name_and_pads_like_a_str() {
        let id = BackendId::new("smol-1kb");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"smol-1kb\"");
        let back: BackendId = serde_json::from_str("\"smol-1kb\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(format!("[{id:<10}]"), "[smol-1kb  ]");
        assert!(id == "smol-1kb");
    }
}
