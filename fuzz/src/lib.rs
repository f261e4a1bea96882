//! What the fuzz targets share: the vector PKI's nodes (`tests/data/vectors/pki`,
//! test keys, public on purpose), a fixed clock, and scratch directories.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sealpost::config::Config;
use sealpost::types::Timestamp;

/// The repository root: the parent of the fuzz crate, or the main crate's
/// own folder when `tests/fuzz_regressions.rs` includes this file.
pub fn root() -> &'static Path {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    match manifest.parent() {
        Some(repo) if manifest.ends_with("fuzz") => repo,
        _ => manifest,
    }
}

fn load(node: &str) -> Config {
    let file = root()
        .join("tests/data/vectors/pki")
        .join(node)
        .join("sealpost.toml");
    Config::load_with_env(&file, Default::default())
        .unwrap_or_else(|e| panic!("vector config {node}: {e}"))
}

/// The Futian court of the vector PKI: the recipient of the vector bundles.
pub fn court() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| load("sz-futian-court"))
}

/// The committee of the vector PKI.
pub fn committee() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| load("sz-lac"))
}

/// The targets' clock: after the vector bundles were sealed (2026-11-23) and
/// the vector events issued (2026-11-24), not the wall clock, so that an input
/// means the same thing on every day.
pub fn now() -> Timestamp {
    "2026-11-25T00:00:00Z".parse().expect("time")
}

/// A scratch directory that lives as long as the process.
pub fn scratch() -> &'static Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::tempdir().expect("scratch directory"))
        .path()
}

/// Every entry under `dir`, relative, sorted (to see what a failure left).
pub fn listing(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap_or(&p).to_owned());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
