//! `keyroll sign` and `keyroll verify`.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use keyroll::ringfile::{OpenOptions, RingFile};
use keyroll::{
    Algorithm, KeyId, KeyRing, ObjectSigner, Role, Signer, SignerBuilder, TimestampSigner,
};
use keyroll_cookie::{CookieKeys, KeyMaterial};
use time::OffsetDateTime;

use crate::batches::{self, BatchLine};
use crate::lines::{read_bounded_line, Line};
use crate::{keys, KeySource};

fn algorithm_arg(s: &str) -> Result<Algorithm, String> {
    Algorithm::parse(s).ok_or_else(|| format!("{s:?} is not one of sha1, sha256, sha512"))
}

/// `--cookie`'s formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieKind {
    Signed,
    Private,
}

fn cookie_kind_arg(s: &str) -> Result<CookieKind, String> {
    match s {
        "signed" => Ok(CookieKind::Signed),
        "private" => Ok(CookieKind::Private),
        _ => Err(format!("{s:?} is not one of signed, private")),
    }
}

/// The longest cookie value `--cookie` reads (browsers keep at most 4096 bytes a cookie).
const MAX_COOKIE_LINE: usize = 1 << 16;

/// The format and its options, shared by `sign` and `verify`.
#[derive(Args, Debug, Clone)]
pub(crate) struct FormatArgs {
    /// Django's Signer: `value:signature` (the default).
    #[arg(long, group = "mode")]
    plain: bool,
    /// Django's TimestampSigner: `value:timestamp:signature`.
    #[arg(long, group = "mode")]
    timestamp: bool,
    /// Django's signing.dumps / loads: VALUE is JSON text; verify prints compact JSON.
    #[arg(long, group = "mode")]
    object: bool,
    /// The cookie crate's signed or private cookie value (axum-extra, tower-sessions,
    /// actix-web), needs --name and a ring file; each ring secret maps to a cookie Key
    /// (docs/rust-apps.md).
    #[arg(long, group = "mode", value_name = "signed|private", value_parser = cookie_kind_arg,
          requires = "name", conflicts_with_all = ["salt", "compress"])]
    cookie: Option<CookieKind>,
    /// With --cookie: the cookie's name (private cookies are bound to it).
    #[arg(long, value_name = "NAME", requires = "cookie")]
    name: Option<String>,
    /// With --object when signing: zlib-compress when it makes the token shorter.
    #[arg(long, requires = "object")]
    compress: bool,
    /// Salt (default: Django's default for the mode; sessions use django.contrib.sessions.SessionStore).
    #[arg(long)]
    salt: Option<String>,
    /// Separator between value and signature.
    #[arg(long, default_value = ":")]
    sep: String,
    /// Hash function.
    #[arg(long, default_value = "sha256", value_parser = algorithm_arg)]
    algorithm: Algorithm,
}

#[derive(Args, Debug)]
pub(crate) struct SignArgs {
    #[command(flatten)]
    format: FormatArgs,
    #[command(flatten)]
    keys: KeySource,
    /// The value to sign (not a secret). Without it, each line of stdin is signed.
    value: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    format: FormatArgs,
    #[command(flatten)]
    keys: KeySource,
    /// Refuse timestamps older than this many seconds (--timestamp and --object).
    #[arg(long, value_name = "SECONDS")]
    max_age: Option<u64>,
    /// Worker threads (default: one per CPU). Output is always in input order.
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Tokens, one per line; `-` or nothing reads stdin.
    file: Option<PathBuf>,
}

enum Codec {
    Plain(Signer),
    Timestamp(TimestampSigner),
    Object(ObjectSigner),
    Cookie {
        keys: Box<CookieKeys>,
        kind: CookieKind,
        name: String,
    },
}

/// The cookie keys of the ring file named by the flags or `$KEYROLL_KEYRING`
/// (keyroll's `KeyRing` keeps its secrets to itself; the file's entries hold them).
fn cookie_keys(src: &KeySource) -> anyhow::Result<CookieKeys> {
    let path = src.keyring.clone().or_else(|| {
        keys::env_var("KEYROLL_KEYRING")
            .filter(|s| !s.is_empty())
            .map(Into::into)
    });
    let Some(path) = path else {
        bail!("--cookie needs a ring file (--keyring FILE or KEYROLL_KEYRING)");
    };
    let opts = OpenOptions {
        allow_insecure: src.allow_insecure,
    };
    let file = RingFile::open(&path, opts, &keys::env_var)
        .with_context(|| format!("cannot use key ring {}", path.display()))?;
    Ok(CookieKeys::from_ring_file(&file, KeyMaterial::Auto)?)
}

impl Codec {
    fn new(f: &FormatArgs, ring: &KeyRing, src: &KeySource) -> anyhow::Result<Self> {
        if let (Some(kind), Some(name)) = (f.cookie, &f.name) {
            if name.is_empty() || name.contains(['=', ';', ' ', '\t', '\n']) {
                bail!("--name must be a cookie name (no '=', ';' or whitespace)");
            }
            return Ok(Codec::Cookie {
                keys: Box::new(cookie_keys(src)?),
                kind,
                name: name.clone(),
            });
        }
        let mut b = SignerBuilder::new()
            .sep(f.sep.clone())
            .algorithm(f.algorithm);
        if let Some(salt) = &f.salt {
            b = b.salt(salt.clone());
        }
        Ok(if f.object {
            Codec::Object(ObjectSigner::new(b, f.compress, ring)?)
        } else if f.timestamp {
            Codec::Timestamp(b.build_timestamp(ring)?)
        } else {
            Codec::Plain(b.build(ring)?)
        })
    }

    fn sign(&self, value: &str, now: OffsetDateTime) -> anyhow::Result<String> {
        Ok(match self {
            Codec::Plain(s) => s.sign(value),
            Codec::Timestamp(s) => s.sign_at(value, now),
            Codec::Object(s) => {
                let v: serde_json::Value =
                    serde_json::from_str(value).context("--object: the value is not JSON")?;
                s.dumps_at(&v, now)?
            }
            Codec::Cookie { keys, kind, name } => match kind {
                CookieKind::Signed => keys.sign(value),
                CookieKind::Private => keys.seal(name, value),
            },
        })
    }

    fn max_token_len(&self) -> usize {
        match self {
            Codec::Plain(s) => s.limits().max_token_len(),
            Codec::Timestamp(s) => s.signer().limits().max_token_len(),
            Codec::Object(s) => s.timestamp_signer().signer().limits().max_token_len(),
            Codec::Cookie { .. } => MAX_COOKIE_LINE,
        }
    }

    /// Verifies one token and appends its result line to `out`.
    fn verify_line(
        &self,
        token: &str,
        max_age: Option<Duration>,
        now: OffsetDateTime,
        prefixes: &[(KeyId, Role, String)],
        out: &mut String,
    ) -> bool {
        let result = match self {
            Codec::Plain(s) => s
                .unsign_at(token, now)
                .map(|v| (v.key_id, v.role, Shown::Text(v.value))),
            Codec::Timestamp(s) => s
                .unsign_at(token, max_age, now)
                .map(|v| (v.key_id, v.role, Shown::Text(v.value))),
            Codec::Object(s) => {
                let mut json = String::with_capacity(token.len() * 2);
                s.loads_canonical_into(token, max_age, now, &mut json)
                    .map(|v| (v.key_id, v.role, Shown::Json(json)))
            }
            Codec::Cookie { keys, kind, name } => {
                let result = match kind {
                    CookieKind::Signed => keys
                        .verify_signed_at(token, now)
                        .map(|v| (v.key_id, v.role, Shown::Text(v.value))),
                    CookieKind::Private => keys
                        .open_private_at(name, token, now)
                        .map(|v| (v.key_id, v.role, Shown::Cookie(v.value))),
                };
                return finish_line(result.map_err(|e| e.reason()), prefixes, out);
            }
        };
        finish_line(result.map_err(|e| e.reason()), prefixes, out)
    }
}

/// Appends the result line for one verified (or refused) token.
fn finish_line(
    result: Result<(KeyId, Role, Shown<'_>), &'static str>,
    prefixes: &[(KeyId, Role, String)],
    out: &mut String,
) -> bool {
    match result {
        Ok((id, role, shown)) => {
            let text = match &shown {
                Shown::Text(text) => *text,
                Shown::Json(json) => json.as_str(),
                Shown::Cookie(value) => value.as_str(),
            };
            // A decrypted cookie may hold a line break, which would forge a line.
            if text.contains(['\n', '\r']) {
                out.push_str("bad\tmultiline\n");
                return false;
            }
            push_ok_prefix(prefixes, id, role, out);
            out.push_str(text);
            out.push('\n');
            true
        }
        Err(reason) => {
            out.push_str("bad\t");
            out.push_str(reason);
            out.push('\n');
            false
        }
    }
}

/// `ok<TAB>KEY_ID<TAB>ROLE<TAB>` for the key and role the signer matched
/// (never the role of another ring entry with the same key id).
fn push_ok_prefix(prefixes: &[(KeyId, Role, String)], id: KeyId, role: Role, out: &mut String) {
    match prefixes.iter().find(|p| p.0 == id && p.1 == role) {
        Some((_, _, prefix)) => out.push_str(prefix),
        None => {
            let _ = write!(out, "ok\t{id}\t{role}\t");
        }
    }
}

/// What a verified line shows as its value.
enum Shown<'a> {
    Text(&'a str),
    Json(String),
    Cookie(String),
}

pub(crate) fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    let ring = keys::load(&args.keys)?;
    let codec = Codec::new(&args.format, &ring, &args.keys)?;
    let now = OffsetDateTime::now_utc();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    if let Some(value) = &args.value {
        writeln!(out, "{}", codec.sign(value, now)?)?;
    } else {
        let stdin = io::stdin();
        let mut input = stdin.lock();
        let mut buf = Vec::new();
        let max = codec.max_token_len();
        loop {
            match read_bounded_line(&mut input, &mut buf, max)? {
                Line::Eof => break,
                Line::TooLong => bail!("a line of stdin is over {max} bytes"),
                Line::Fits => {
                    let line = std::str::from_utf8(&buf).context("stdin is not UTF-8")?;
                    writeln!(out, "{}", codec.sign(line, now)?)?;
                }
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if args.max_age.is_some() && !(args.format.timestamp || args.format.object) {
        bail!("--max-age needs --timestamp or --object (plain signatures carry no time)");
    }
    let ring = keys::load(&args.keys)?;
    let codec = Codec::new(&args.format, &ring, &args.keys)?;
    let max_age = args.max_age.map(Duration::from_secs);
    let jobs = match args.jobs {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let input: Box<dyn BufRead + Send> = match args.file.as_deref() {
        Some(p) if p.as_os_str() != "-" => Box::new(BufReader::with_capacity(
            1 << 16,
            File::open(p).with_context(|| format!("cannot read {}", p.display()))?,
        )),
        _ => Box::new(BufReader::with_capacity(1 << 16, io::stdin())),
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let max_line = codec.max_token_len();
    // "ok<TAB>KEY_ID<TAB>ROLE<TAB>" for each key, made once.
    let prefixes: Vec<(KeyId, Role, String)> = ring
        .keys()
        .map(|k| (k.id(), k.role(), format!("ok\t{}\t{}\t", k.id(), k.role())))
        .collect();
    let all_ok = batches::run(input, &mut out, jobs, max_line, |batch, text| {
        let now = OffsetDateTime::now_utc();
        let mut ok = true;
        for line in batch.lines() {
            ok &= match line {
                BatchLine::Token(bytes) => match std::str::from_utf8(bytes) {
                    Ok(token) => codec.verify_line(token, max_age, now, &prefixes, text),
                    Err(_) => {
                        text.push_str("bad\tmalformed\n");
                        false
                    }
                },
                BatchLine::TooLong => {
                    text.push_str("bad\ttoo-large\n");
                    false
                }
            };
        }
        ok
    })?;
    out.flush()?;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The role printed is the one the signer matched: looking it up by key
    /// id alone showed the first ring entry with that id, which would hide
    /// a signer that matched a repeated secret as a fallback.
    #[test]
    fn verify_prints_the_role_the_signer_matched_not_the_first_entry_with_that_id() {
        let id = keyroll::Secret::from("x").id();
        let prefixes = [
            (id, Role::Primary, format!("ok\t{id}\tprimary\t")),
            (id, Role::Fallback, format!("ok\t{id}\tfallback\t")),
        ];
        for (role, want) in [(Role::Fallback, "fallback"), (Role::Primary, "primary")] {
            let mut out = String::new();
            push_ok_prefix(&prefixes, id, role, &mut out);
            assert_eq!(out, format!("ok\t{id}\t{want}\t"));
        }
        let mut out = String::new();
        push_ok_prefix(&[], id, Role::Staged, &mut out);
        assert_eq!(out, format!("ok\t{id}\tstaged\t"));
    }
}
