//! Where in a TOML file a key is set: configuration errors that name file,
//! line and key (or the environment variable that set it).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::pki::PkiError;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<PathBuf> {
        match self {
            OneOrMany::One(p) => vec![p],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A configuration that cannot be used, located as precisely as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file at fault (the main config, the peer directory, or a key file).
    pub file: PathBuf,
    /// 1-based line in `file` where the key is set, when known.
    pub line: Option<usize>,
    /// The dotted key (`pki.signing_key`, `peer[2].encryption_key`), when known.
    pub key: Option<String>,
    /// What is wrong and, where possible, what to do.
    pub message: String,
    /// The environment variable that set the key, when it did (the file's
    /// line is then beside the point).
    pub env_var: Option<String>,
}

impl ConfigError {
    /// An error about `file` as a whole (no line or key to point at).
    pub fn whole_file(file: &Path, message: String) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            key: None,
            message,
            env_var: None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(var) = &self.env_var {
            write!(f, "environment variable {var}")?;
            if let Some(key) = &self.key {
                write!(f, " (overrides key `{key}` of {})", self.file.display())?;
            }
            return write!(f, ": {}", self.message);
        }
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Finds the 1-based line where a dotted key (`pki.tls_key`, `peer[1].id`) is set
/// in a TOML text, from the spans of `toml`'s own parser (so inline tables,
/// dotted keys and quoted keys are found too); the line of the table (its
/// `[header]`) when the table is there but the key is not, `None` when
/// neither is (or the text is not TOML).
pub fn locate_key(text: &str, key: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let (table, index, leaf) = split_key(key);
    let root = DeTable::parse(text).ok()?;
    let (name, value) = root.get_ref().get_key_value(table)?;
    // The table the key belongs to, and where it starts.
    let (mut at, mut node) = match (index, value.get_ref()) {
        (None, _) => (name.span().start, value),
        (Some(i), DeValue::Array(tables)) => {
            let entry = tables.get(i)?;
            (entry.span().start, entry)
        }
        (Some(_), _) => return None,
    };
    for part in leaf.into_iter().flat_map(|l| l.split('.')) {
        let DeValue::Table(t) = node.get_ref() else {
            break;
        };
        let Some((k, v)) = t.get_key_value(part) else {
            break;
        };
        (at, node) = (k.span().start, v);
    }
    Some(text.get(..at)?.matches('\n').count() + 1)
}

fn split_key(key: &str) -> (&str, Option<usize>, Option<&str>) {
    let (head, leaf) = match key.split_once('.') {
        Some((h, l)) => (h, Some(l)),
        None => (key, None),
    };
    match head.split_once('[') {
        Some((t, rest)) => (t, rest.trim_end_matches(']').parse().ok(), leaf),
        None => (head, None, leaf),
    }
}

/// Collects errors about one TOML file, each located by key.
pub(crate) struct Site<'a> {
    pub(crate) file: &'a Path,
    pub(crate) text: &'a str,
    /// Dotted key → the `SEALPOST_*` variable that overrides it.
    pub(crate) env: std::collections::HashMap<String, String>,
}

impl Site<'_> {
    pub(crate) fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let key = key.into();
        let env_var = self.env.get(&key).cloned();
        ConfigError {
            file: self.file.to_owned(),
            line: if env_var.is_some() {
                None
            } else {
                locate_key(self.text, &key)
            },
            key: Some(key),
            message: message.into(),
            env_var,
        }
    }
    pub(crate) fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            crate::fsutil::parent_of(self.file).join(p)
        }
    }
    pub(crate) fn pki(&self, key: &str, e: PkiError) -> ConfigError {
        self.err(key, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[node]\nid = \"x\"\nrole = \"court\"\n\n[pki]\ntls_key = \"k\"\n\n[[peer]]\nid = \"a\"\n[[peer]]\nid = \"b\"\nrole = \"court\"\n";

    #[test]
    fn locates_keys_in_tables_and_arrays() {
        assert_eq!(locate_key(TEXT, "node.role"), Some(3));
        assert_eq!(locate_key(TEXT, "pki.tls_key"), Some(6));
        assert_eq!(locate_key(TEXT, "peer[1].role"), Some(12));
        assert_eq!(
            locate_key(TEXT, "peer[0].role"),
            Some(8),
            "falls back to the header"
        );
        assert_eq!(locate_key(TEXT, "limits.max_documents"), None);
        assert_eq!(locate_key(TEXT, "peer[2].id"), None);
    }

    #[test]
    fn locates_keys_that_a_line_scanner_would_miss() {
        let text = "# a comment [node]\n[node]\nnote = \"\"\"\nrole = x\n\"\"\"\nrole = \"court\"\n\n[server]\nlimits = { header_timeout = \"5s\",\n  body_timeout = \"9s\" }\n\n[client]\n\"wait\" = \"1s\"\n[intake]\nsettle.x = 1\n";
        assert_eq!(
            locate_key(text, "node.role"),
            Some(6),
            "not inside a string"
        );
        assert_eq!(locate_key(text, "server.limits.body_timeout"), Some(10));
        assert_eq!(locate_key(text, "client.wait"), Some(13), "quoted key");
        assert_eq!(locate_key(text, "intake.settle"), Some(15), "dotted key");
        assert_eq!(locate_key(text, "node.absent"), Some(2), "the header");
    }
}
