//! `keyroll ring …`: the key ring file's life cycle.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use keyroll::ringfile::{
    format_duration, load_secret_file, parse_duration, AutoAction, OpenOptions, RingEntry,
    RingFile, RingFileError, SecretSource, DEFAULT_SECRET_LEN,
};
use keyroll::{KeyId, Role, Secret};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::keys::env_var;

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration like 90s, 10m, 48h or 30d"))
}

fn key_id_arg(s: &str) -> Result<KeyId, String> {
    KeyId::parse(s).ok_or_else(|| {
        format!("{s:?} is not a key id (8 hex digits, as `keyroll ring list` shows)")
    })
}

#[derive(Subcommand, Debug)]
pub(crate) enum RingCommand {
    /// Create a ring file with one new primary key (mode 0600; never overwrites).
    Init {
        /// The ring file to create.
        file: PathBuf,
    },
    /// Add a new staged key (verify-only until promoted); print its key id.
    ///
    /// Stage on every server first, then promote: no server ever meets a token
    /// it cannot verify. Without a --secret-* flag a new random secret is
    /// generated (for one ring file shared by every server); to stage the SAME
    /// key in each server's own ring file, make it once (`keyroll keygen >
    /// new.secret`) and give it with --secret-stdin (copied into the file),
    /// --secret-file or --secret-env (the file names where it lives).
    /// Staging a key that is already staged changes nothing (safe to rerun).
    Stage {
        /// The ring file.
        file: PathBuf,
        /// Read the secret from stdin (one trailing newline dropped) and keep it in the ring file.
        #[arg(long, conflicts_with_all = ["secret_file", "secret_env"])]
        secret_stdin: bool,
        /// Stage the secret kept in this file (one trailing newline dropped); the ring file refers to it.
        #[arg(long, value_name = "PATH", conflicts_with = "secret_env")]
        secret_file: Option<PathBuf>,
        /// Stage the secret held by this environment variable; the ring file refers to it.
        #[arg(long, value_name = "NAME")]
        secret_env: Option<String>,
        /// Accept a ring file (or secret file) that others could read or replace:
        /// group/other permissions, another owner, a directory others can write to.
        #[arg(long)]
        allow_insecure: bool,
    },
    /// Make a staged key the primary; the old primary becomes a fallback.
    Promote {
        /// The ring file.
        file: PathBuf,
        /// Which staged key (needed when several are staged).
        #[arg(value_parser = key_id_arg)]
        key_id: Option<KeyId>,
        /// How long the old primary keeps verifying.
        #[arg(long, default_value = "30d", value_parser = duration_arg)]
        grace: Duration,
        /// Refuse a key staged more recently than this.
        #[arg(long, default_value = "0s", value_parser = duration_arg)]
        min_staged: Duration,
        /// Promote even if the key was staged too recently.
        #[arg(long)]
        force: bool,
        /// Accept a ring file (or secret file) that others could read or replace:
        /// group/other permissions, another owner, a directory others can write to.
        #[arg(long)]
        allow_insecure: bool,
    },
    /// Drop a fallback key now.
    Retire {
        /// The ring file.
        file: PathBuf,
        /// The fallback key to drop.
        #[arg(value_parser = key_id_arg)]
        key_id: KeyId,
        /// Accept a ring file (or secret file) that others could read or replace:
        /// group/other permissions, another owner, a directory others can write to.
        #[arg(long)]
        allow_insecure: bool,
    },
    /// List the keys: id, role, dates, where the secret lives. Never secrets.
    List {
        /// The ring file.
        file: PathBuf,
        /// One JSON object instead of lines.
        #[arg(long)]
        json: bool,
        /// Accept a ring file (or secret file) that others could read or replace:
        /// group/other permissions, another owner, a directory others can write to.
        #[arg(long)]
        allow_insecure: bool,
    },
    /// Lint the ring: permissions, one primary, expired fallbacks, short or duplicate secrets.
    ///
    /// Permissions: the ring file's and each secret file's owner (this user or
    /// root), mode (nothing for group or others) and directory (not writable by
    /// group or others unless sticky). A secret repeated across roles is a
    /// problem too. Exit status 1 when something is wrong.
    Check {
        /// The ring file.
        file: PathBuf,
    },
    /// One idempotent step of scheduled rotation, safe to run from cron on every host.
    ///
    /// Drops fallbacks past retire_after; promotes a staged key once staged for
    /// --min-staged; stages a key when the primary is older than --every and none is staged.
    Auto {
        /// The ring file.
        file: PathBuf,
        /// Rotate when the primary is older than this.
        #[arg(long, value_parser = duration_arg)]
        every: Duration,
        /// Promote a staged key only after it has been staged this long.
        #[arg(long, default_value = "1d", value_parser = duration_arg)]
        min_staged: Duration,
        /// How long an old primary keeps verifying.
        #[arg(long, default_value = "30d", value_parser = duration_arg)]
        grace: Duration,
        /// Accept a ring file (or secret file) that others could read or replace:
        /// group/other permissions, another owner, a directory others can write to.
        #[arg(long)]
        allow_insecure: bool,
    },
}

fn opts(allow_insecure: bool) -> OpenOptions {
    OpenOptions { allow_insecure }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub(crate) fn run(cmd: RingCommand) -> anyhow::Result<ExitCode> {
    // Whole seconds: ring files stay readable.
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    match cmd {
        RingCommand::Init { file } => {
            let rf = RingFile::generate(now, DEFAULT_SECRET_LEN);
            rf.create_new(&file)?;
            let id = rf.entries.first().map(RingEntry::id);
            outln!(
                "created {} with primary key {}",
                file.display(),
                id.map(|i| i.to_string()).unwrap_or_default()
            );
        }
        RingCommand::Stage {
            file,
            secret_stdin,
            secret_file,
            secret_env,
            allow_insecure,
        } => {
            let given = given_secret(secret_stdin, secret_file, secret_env, allow_insecure)?;
            let id = RingFile::update(&file, opts(allow_insecure), &env_var, |rf| match given {
                None => Ok(rf.stage(now, DEFAULT_SECRET_LEN)),
                Some((source, secret)) => stage_given(rf, source, secret, now),
            })?;
            outln!("{id}");
        }
        RingCommand::Promote {
            file,
            key_id,
            grace,
            min_staged,
            force,
            allow_insecure,
        } => {
            let (new, old) = RingFile::update(&file, opts(allow_insecure), &env_var, |rf| {
                rf.promote(key_id, grace, min_staged, force, now)
            })?;
            let until = now + grace;
            outln!(
                "promoted {new} to primary; {old} is a fallback until {} ({} grace)",
                rfc3339(until),
                format_duration(grace)
            );
        }
        RingCommand::Retire {
            file,
            key_id,
            allow_insecure,
        } => {
            RingFile::update(&file, opts(allow_insecure), &env_var, |rf| {
                rf.retire(key_id)
            })?;
            outln!("retired {key_id}");
        }
        RingCommand::List {
            file,
            json,
            allow_insecure,
        } => {
            let rf = RingFile::open(&file, opts(allow_insecure), &env_var)?;
            list(&rf, json)?;
        }
        RingCommand::Check { file } => return check(&file, now),
        RingCommand::Auto {
            file,
            every,
            min_staged,
            grace,
            allow_insecure,
        } => {
            if every.is_zero() {
                bail!("--every must be longer than 0s");
            }
            let actions = RingFile::update(&file, opts(allow_insecure), &env_var, |rf| {
                Ok(rf.auto(every, min_staged, grace, now, DEFAULT_SECRET_LEN))
            })?;
            if actions.is_empty() {
                outln!("nothing to do");
            }
            for a in actions {
                match a {
                    AutoAction::Retired(id) => outln!("retired {id}"),
                    AutoAction::Promoted { key, old } => outln!(
                        "promoted {key} to primary; {old} is a fallback until {}",
                        rfc3339(now + grace)
                    ),
                    AutoAction::Staged(id) => outln!("staged {id}"),
                    _ => {}
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Drops one trailing newline (`\n` or `\r\n`), as the ring file does for `secret_file`.
fn chomp(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    bytes
}

/// Largest secret read from stdin or a file: a secret is tens of bytes.
const MAX_GIVEN_SECRET: u64 = 64 * 1024;

/// The secret given to `ring stage` (never echoed in any message), with where it lives.
fn given_secret(
    stdin: bool,
    file: Option<PathBuf>,
    env: Option<String>,
    allow_insecure: bool,
) -> anyhow::Result<Option<(SecretSource, Secret)>> {
    use std::io::Read as _;
    let (source, bytes) = if stdin {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(MAX_GIVEN_SECRET + 1)
            .read_to_end(&mut bytes)
            .context("reading the secret from stdin")?;
        if bytes.len() as u64 > MAX_GIVEN_SECRET {
            bail!("the secret on stdin is larger than 64 KiB; not a secret");
        }
        // Kept inline, the secret is TOML text: bytes that are not UTF-8
        // would be stored as a different key than the one given.
        if std::str::from_utf8(&bytes).is_err() {
            bail!("the secret on stdin is not UTF-8 text, which a ring file cannot hold inline; put it in a file (mode 600) and stage it with --secret-file PATH");
        }
        (SecretSource::Inline, chomp(bytes))
    } else if let Some(path) = file {
        // The ring file resolves relative paths against its own directory: store an absolute one.
        let path = std::path::absolute(&path)
            .with_context(|| format!("secret file {}", path.display()))?;
        // The checks every later load makes (regular file, size, owner, mode, directory).
        let secret = load_secret_file(&path, opts(allow_insecure))?;
        if secret.is_empty() {
            bail!("the given secret is empty");
        }
        return Ok(Some((SecretSource::File(path), secret)));
    } else if let Some(name) = env {
        let value = env_var(&name)
            .with_context(|| format!("the environment variable {name} is not set"))?;
        (SecretSource::Env(name), value.into_bytes())
    } else {
        return Ok(None);
    };
    if bytes.is_empty() {
        bail!("the given secret is empty");
    }
    Ok(Some((source, Secret::new(bytes))))
}

/// Stages a given secret; a key already staged is left as it is (reruns are safe).
fn stage_given(
    rf: &mut RingFile,
    source: SecretSource,
    secret: Secret,
    now: OffsetDateTime,
) -> Result<KeyId, RingFileError> {
    let id = secret.id();
    if let Some(e) = rf.entries.iter().find(|e| e.id() == id) {
        return if e.role == Role::Staged {
            Ok(id)
        } else {
            Err(RingFileError::Refused(format!(
                "key {id} is already in the ring as its {} key",
                e.role
            )))
        };
    }
    rf.entries.push(RingEntry {
        role: Role::Staged,
        source,
        secret,
        created: Some(now),
        staged_at: Some(now),
        promoted_at: None,
        retire_after: None,
    });
    Ok(id)
}

fn source(e: &RingEntry) -> String {
    match &e.source {
        SecretSource::Inline => "inline".to_owned(),
        SecretSource::Env(name) => format!("env:{name}"),
        SecretSource::File(p) => format!("file:{}", p.display()),
    }
}

fn list(rf: &RingFile, json: bool) -> anyhow::Result<()> {
    // Show keys in verification order: primary, staged, fallback.
    let mut entries: Vec<&RingEntry> = rf.entries.iter().collect();
    entries.sort_by_key(|e| match e.role {
        Role::Primary => 0,
        Role::Staged => 1,
        Role::Fallback => 2,
    });
    if json {
        let keys: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "key_id": e.id().to_string(),
                    "role": e.role.as_str(),
                    "created": e.created.map(rfc3339),
                    "staged_at": e.staged_at.map(rfc3339),
                    "promoted_at": e.promoted_at.map(rfc3339),
                    "retire_after": e.retire_after.map(rfc3339),
                    "source": source(e),
                })
            })
            .collect();
        outln!("{}", serde_json::json!({ "keys": keys }));
        return Ok(());
    }
    for e in entries {
        let mut line = format!("{}\t{}", e.id(), e.role);
        for (name, t) in [
            ("created", e.created),
            ("staged_at", e.staged_at),
            ("promoted_at", e.promoted_at),
            ("retire_after", e.retire_after),
        ] {
            if let Some(t) = t {
                line.push_str(&format!("\t{name}={}", rfc3339(t)));
            }
        }
        line.push_str(&format!("\tsource={}", source(e)));
        outln!("{line}");
    }
    Ok(())
}

fn check(file: &Path, now: OffsetDateTime) -> anyhow::Result<ExitCode> {
    let mut errors = 0usize;
    // Opened as commands would with --allow-insecure, so that every problem
    // (owner, mode, directory of the ring file and of its secret files) is listed.
    let (rf, exposed) = match RingFile::open_checked(file, opts(true), &env_var) {
        Ok(found) => found,
        Err(e @ RingFileError::Io { .. }) => return Err(e.into()),
        Err(e) => {
            outln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    for f in exposed.into_iter().chain(rf.check(now)) {
        if f.error {
            errors += 1;
            outln!("error: {}", f.message);
        } else {
            outln!("warning: {}", f.message);
        }
    }
    if errors > 0 {
        return Ok(ExitCode::from(1));
    }
    let primary = rf
        .entries
        .iter()
        .find(|e| e.role == Role::Primary)
        .map(RingEntry::id);
    outln!(
        "ok: {} keys, primary {}",
        rf.entries.len(),
        primary.map(|i| i.to_string()).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
