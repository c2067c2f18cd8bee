//! Shared by the Rust test files that drive real Django (included with
//! `#[path = …] mod django_venv;`): where the repository is, and the Python
//! of a pinned Django virtualenv.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository's root (every including crate sits two levels below it).
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of a venv with Django `version` ("5.2" or "4.2"): from
/// `KEYROLL_DJANGO52_PYTHON` / `KEYROLL_DJANGO42_PYTHON`, else set up on
/// first use by `tests/django/setup-venv.sh` (pinned versions, into `.venv/`).
pub(crate) fn django_python(version: &str) -> PathBuf {
    let var = format!("KEYROLL_DJANGO{}_PYTHON", version.replace('.', ""));
    if let Ok(p) = std::env::var(&var) {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let out = Command::new("bash")
        .arg(repo_root().join("tests/django/setup-venv.sh"))
        .arg(version)
        .stderr(Stdio::inherit())
        .output()
        .expect("run setup-venv.sh");
    assert!(out.status.success(), "setup-venv.sh {version} failed");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    PathBuf::from(stdout.lines().last().expect("python path").trim())
}
