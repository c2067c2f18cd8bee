//! Every command that README.md and docs/*.md show works as shown.
//!
//! - Each ```sh block of README.md and docs/*.md is run, command by command, as
//!   a reader would paste it into one shell per page (`export`s and `K=…` carry
//!   over), in a temporary directory where `keyroll` is this build's binary.
//!   Commands that need an outside setup are run on something the test makes
//!   instead: every `--database URL` on a Django-layout SQLite file with
//!   sessions signed by the key `A`; `<signature from before>` is the signature
//!   the last `keyroll sign` printed. Each must exit 0; a comment line `#   …`
//!   under a command is output it must print (`N` stands for a number, `<…>`
//!   for one word).
//! - `cargo build`/`cargo run` lines are checked, not run (a release build takes
//!   minutes): the package exists and builds the binary the line goes on to use
//!   (a package with several binaries needs `--bin` or `default-run`); what
//!   `cargo run … -- ARGS` would run is then run as `keyroll ARGS` (the demo
//!   with fewer sessions). `scripts/test.sh` is checked to exist, be executable
//!   and parse (`bash -n`), not run.
//! - Every `keyroll …` command in those blocks and in inline code spans: its
//!   subcommands exist and `keyroll SUBCOMMAND --help` lists each flag it uses;
//!   in the blocks, clap also accepts the whole command line (it is parsed with
//!   `--help` appended).
//! - docs/cli.md: each synopsis names only subcommands and flags keyroll has,
//!   and every subcommand and flag keyroll has is in a synopsis.
//! - README's "Rust X+" is the workspace's `rust-version`, and no dependency
//!   built on this machine declares a newer one.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use keyroll::{
    KeyRing, Secret, SessionAuthHash, SessionData, SESSION_USER_BACKEND, SESSION_USER_HASH,
    SESSION_USER_ID,
};
use serde_json::{json, Value};
use time::OffsetDateTime;

const KEYROLL: &str = env!("CARGO_BIN_EXE_keyroll");
/// The demo's size when the docs run it (the default 10,000 takes a while in a debug build).
const DEMO_SESSIONS: &str = "500";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// README.md and docs/*.md: (path relative to the root, text).
fn docs() -> Vec<(String, String)> {
    let root = root();
    let mut paths = vec!["README.md".to_owned()];
    let mut more: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    more.sort();
    paths.extend(more);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(root.join(&p)).unwrap();
            (p, text)
        })
        .collect()
}

// ------------------------------------------------------------ markdown

struct Block {
    lang: String,
    /// (line number, text)
    lines: Vec<(usize, String)>,
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("```") {
            match open.take() {
                Some(b) => out.push(b),
                None => {
                    open = Some(Block {
                        lang: rest.trim().to_owned(),
                        lines: Vec::new(),
                    })
                }
            }
        } else if let Some(b) = &mut open {
            b.lines.push((i + 1, t.to_owned()));
        }
    }
    assert!(open.is_none(), "an unclosed ``` block");
    out
}

/// Inline code spans outside fenced blocks: (line number, text); a span that
/// wraps onto the next line is joined with a blank.
fn inline_spans(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    let mut open: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            open = None;
            continue;
        }
        if fenced {
            continue;
        }
        if line.trim().is_empty() {
            // A paragraph ends: an unclosed backtick was a literal one.
            open = None;
            continue;
        }
        let line = match &mut open {
            Some((_, span)) => {
                span.push(' ');
                line.trim_start()
            }
            None => line,
        };
        for c in line.chars() {
            match (&mut open, c) {
                (None, '`') => open = Some((i + 1, String::new())),
                (Some(_), '`') => out.push(open.take().unwrap()),
                (Some((_, span)), c) => span.push(c),
                (None, _) => {}
            }
        }
    }
    out.into_iter()
        .map(|(n, s)| (n, s.trim().to_owned()))
        .collect()
}

/// A shell command as a reader pastes it: continued lines joined, with the
/// `#   ` output lines shown under it.
struct ShCommand {
    line: usize,
    text: String,
    expected: Vec<String>,
}

fn sh_commands(block: &Block) -> Vec<ShCommand> {
    let mut out: Vec<ShCommand> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (n, line) in &block.lines {
        if let Some((start, mut text)) = pending.take() {
            text.push(' ');
            text.push_str(line.trim());
            if let Some(t) = text.strip_suffix('\\') {
                pending = Some((start, t.trim_end().to_owned()));
            } else {
                out.push(ShCommand {
                    line: start,
                    text,
                    expected: Vec::new(),
                });
            }
            continue;
        }
        let t = line.trim();
        if let Some(shown) = t.strip_prefix("#   ") {
            let last = out
                .last_mut()
                .unwrap_or_else(|| panic!("line {n}: output shown before any command"));
            last.expected.push(shown.trim().to_owned());
            continue;
        }
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let t = strip_comment(t);
        if let Some(cont) = t.strip_suffix('\\') {
            pending = Some((*n, cont.trim_end().to_owned()));
        } else {
            out.push(ShCommand {
                line: *n,
                text: t,
                expected: Vec::new(),
            });
        }
    }
    assert!(pending.is_none(), "a command ends with a backslash");
    out
}

/// The line without a trailing `# comment` (a `#` after a blank, outside quotes).
fn strip_comment(line: &str) -> String {
    let (mut single, mut double, mut prev) = (false, false, ' ');
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => {
                return line[..i].trim_end().to_owned()
            }
            _ => {}
        }
        prev = c;
    }
    line.trim_end().to_owned()
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Op(String),
}

/// Shell words and operators (`|`, `&&`, `;`, `<`, `>`), quotes removed.
fn tokenize(line: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            '|' | ';' | '<' | '>' | '&' => {
                if in_word {
                    out.push(Tok::Word(std::mem::take(&mut word)));
                    in_word = false;
                }
                let mut op = c.to_string();
                if (c == '&' || c == '|') && chars.peek() == Some(&c) {
                    op.push(c);
                    chars.next();
                }
                out.push(Tok::Op(op));
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(Tok::Word(std::mem::take(&mut word)));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(Tok::Word(word));
    }
    out
}

/// One simple command: its leading `NAME=value` assignments and its words,
/// redirections dropped.
#[derive(Debug, Default)]
struct Simple {
    assignments: Vec<(String, String)>,
    argv: Vec<String>,
}

fn simple_commands(line: &str) -> Vec<Simple> {
    let mut out = vec![Simple::default()];
    let mut toks = tokenize(line).into_iter();
    while let Some(t) = toks.next() {
        let cur = out.last_mut().unwrap();
        match t {
            Tok::Op(op) if op == "<" || op == ">" => {
                toks.next();
            }
            Tok::Op(_) => out.push(Simple::default()),
            Tok::Word(w) => {
                let assignment = cur.argv.is_empty()
                    && w.split_once('=').is_some_and(|(name, _)| {
                        !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    });
                if assignment {
                    let (name, value) = w.split_once('=').unwrap();
                    cur.assignments.push((name.to_owned(), value.to_owned()));
                } else {
                    cur.argv.push(w);
                }
            }
        }
    }
    out.retain(|s| !s.argv.is_empty() || !s.assignments.is_empty());
    out
}

// ------------------------------------------------------------ keyroll's help

#[derive(Clone, Debug, Default)]
struct Help {
    commands: Vec<String>,
    flags: BTreeSet<String>,
}

static HELP: Mutex<Option<HashMap<Vec<String>, Option<Help>>>> = Mutex::new(None);

/// `keyroll PATH --help`, parsed; None when keyroll refuses it.
fn help(path: &[String]) -> Option<Help> {
    let mut cache = HELP.lock().unwrap();
    let cache = cache.get_or_insert_with(HashMap::new);
    if let Some(h) = cache.get(path) {
        return h.clone();
    }
    let o = Command::new(KEYROLL)
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    let h = o.status.success().then(|| {
        let text = String::from_utf8(o.stdout).unwrap();
        parse_help(&text)
    });
    cache.insert(path.to_vec(), h.clone());
    h
}

fn parse_help(text: &str) -> Help {
    let mut h = Help::default();
    let mut in_commands = false;
    for line in text.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            match line.split_whitespace().next() {
                Some(name) if line.starts_with("  ") => {
                    if name != "help" {
                        h.commands.push(name.to_owned());
                    }
                    continue;
                }
                _ => in_commands = false,
            }
        }
        // A flag's line is indented by 2 to 6 blanks; its wrapped description by more.
        let t = line.trim_start();
        let indent = line.len() - t.len();
        if t.starts_with('-') && (2..=6).contains(&indent) {
            let column = t.split("  ").next().unwrap();
            for part in column.split(", ") {
                let flag = part.split([' ', '=', '<']).next().unwrap();
                if flag.starts_with('-') {
                    h.flags.insert(flag.to_owned());
                }
            }
        }
    }
    h
}

/// The subcommand path at the start of `args` (e.g. `ring stage`), and the rest.
fn subcommand_path(args: &[String], shown: &str) -> Result<(Vec<String>, usize), String> {
    let mut path = Vec::new();
    let mut i = 0;
    loop {
        let h = help(&path).ok_or_else(|| {
            format!(
                "{shown}: `keyroll {}` is not a command keyroll has",
                path.join(" ")
            )
        })?;
        if h.commands.is_empty() {
            return Ok((path, i));
        }
        match args.get(i) {
            // Flags of this level (`keyroll --help`, `keyroll ring --help`).
            Some(a) if a.starts_with('-') => return Ok((path, i)),
            Some(a) if h.commands.contains(a) => {
                path.push(a.clone());
                i += 1;
            }
            Some(a) => {
                return Err(format!(
                    "{shown}: `keyroll {}` has no subcommand {a:?} (it has: {})",
                    path.join(" "),
                    h.commands.join(", ")
                ))
            }
            None => {
                return Err(format!(
                    "{shown}: `keyroll {}` needs a subcommand",
                    path.join(" ")
                ))
            }
        }
    }
}

/// The subcommands exist and each flag is one `--help` lists.
fn check_flags(args: &[String], shown: &str) -> Result<Vec<String>, String> {
    let (path, rest) = subcommand_path(args, shown)?;
    let h = help(&path).unwrap();
    for a in &args[rest..] {
        if a == "--" {
            break;
        }
        if a.starts_with('-') && a != "-" {
            let flag = a.split('=').next().unwrap();
            if !h.flags.contains(flag) {
                return Err(format!(
                    "{shown}: `keyroll {}` has no flag {flag} (it has: {})",
                    path.join(" "),
                    h.flags.iter().cloned().collect::<Vec<_>>().join(" ")
                ));
            }
        }
    }
    Ok(path)
}

/// Flags checked, then clap parses the whole command line (`--help` appended:
/// clap reads every argument before it, refusing unknown flags and bad values).
fn check_parses(args: &[String], shown: &str) -> Result<(), String> {
    check_flags(args, shown)?;
    let o = Command::new(KEYROLL)
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown}: keyroll does not accept {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        ))
    }
}

// ------------------------------------------------------------ cargo

/// A workspace package, as cargo sees it.
struct Package {
    bins: Vec<String>,
    default_run: Option<String>,
    /// Its directory, relative to the root (`crates/keyroll-cli`).
    dir: String,
}

/// The workspace's packages by name.
fn packages() -> BTreeMap<String, Package> {
    let root = root();
    let meta = cargo_metadata(&["--no-deps"]);
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let bins = p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
                .map(|t| t["name"].as_str().unwrap().to_owned())
                .collect();
            let default_run = p["default_run"].as_str().map(str::to_owned);
            let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap());
            let dir = manifest
                .parent()
                .unwrap()
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let package = Package {
                bins,
                default_run,
                dir,
            };
            (p["name"].as_str().unwrap().to_owned(), package)
        })
        .collect()
}

fn cargo_metadata(extra: &[&str]) -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .args(extra)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// What a checked `cargo build`/`cargo run` line stands for.
struct Cargo {
    /// `target/<profile>/<binary>` of each binary the command builds.
    built: Vec<String>,
    /// `keyroll` arguments `cargo run -- ARGS` runs.
    runs: Option<Vec<String>>,
}

fn check_cargo(argv: &[String], shown: &str) -> Result<Cargo, String> {
    let sub = argv.get(1).map(String::as_str);
    if !matches!(sub, Some("build" | "run" | "install")) {
        return Err(format!(
            "{shown}: this test knows cargo build, run and install only"
        ));
    }
    let install = sub == Some("install");
    let packages = packages();
    let (mut names, mut bin, mut release, mut after) = (Vec::new(), None, install, None);
    let mut i = 2;
    while i < argv.len() {
        match argv[i].as_str() {
            "--locked" if install => {}
            "--path" if install => {
                let dir = argv.get(i + 1).map(|d| d.trim_end_matches('/'));
                let found = packages.iter().find(|(_, p)| Some(p.dir.as_str()) == dir);
                let (name, _) = found.ok_or_else(|| {
                    format!("{shown}: {dir:?} is not a package directory of the workspace")
                })?;
                names.push(name.clone());
                i += 1;
            }
            "-p" | "--package" if !install => {
                names.extend(argv.get(i + 1).cloned());
                i += 1;
            }
            "--bin" => {
                bin = argv.get(i + 1).cloned();
                i += 1;
            }
            "--release" if !install => release = true,
            "--" if !install => {
                after = Some(argv[i + 1..].to_vec());
                break;
            }
            other => return Err(format!("{shown}: this test does not know {other:?}")),
        }
        i += 1;
    }
    if names.is_empty() {
        return Err(format!("{shown}: no -p PACKAGE (or --path DIR)"));
    }
    if names.len() > 1 && sub != Some("build") {
        return Err(format!("{shown}: one package at a time"));
    }
    let profile = if release { "release" } else { "debug" };
    let (mut built, mut runs) = (Vec::new(), None);
    for package in names {
        let Package {
            bins, default_run, ..
        } = packages
            .get(&package)
            .ok_or_else(|| format!("{shown}: no package {package:?} in the workspace"))?;
        if bins.is_empty() {
            return Err(format!("{shown}: {package} has no binary"));
        }
        let bin = match (bin.clone(), default_run, bins.as_slice()) {
            (Some(b), _, _) if bins.contains(&b) => b,
            (Some(b), _, _) => return Err(format!("{shown}: {package} has no binary {b:?}")),
            (None, Some(d), _) => d.clone(),
            (None, None, [only]) => only.clone(),
            (None, None, _) if sub != Some("run") => String::new(),
            (None, None, many) => {
                return Err(format!(
                    "{shown}: {package} has several binaries ({}) and no default-run: `cargo run` \
                     cannot tell which to run; say --bin NAME",
                    many.join(", ")
                ))
            }
        };
        if sub == Some("run") && bin == "keyroll" {
            runs = Some(after.clone().unwrap_or_default());
        }
        let bins = if bin.is_empty() {
            bins.clone()
        } else {
            vec![bin]
        };
        built.extend(bins.iter().map(|b| format!("target/{profile}/{b}")));
    }
    Ok(Cargo { built, runs })
}

// ------------------------------------------------------------ running the blocks

const A: &str = "A";

/// A Django-layout SQLite database: `django_session` with live sessions signed
/// by the key `A` (logged-in ones with A's login hash) and `auth_user`.
fn django_db(path: &Path) -> String {
    common::create_table(path, "django_session");
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE auth_user (id integer NOT NULL PRIMARY KEY, password varchar(128) NOT NULL);",
    )
    .unwrap();
    let auth = SessionAuthHash::new(&KeyRing::new(Secret::from(A)).expect("a non-empty secret"));
    let now = OffsetDateTime::now_utc();
    let mut seeds = Vec::new();
    for i in 1..=40 {
        let password = format!("pbkdf2_sha256$870000$salt{i}$hash{i}");
        conn.execute(
            "INSERT INTO auth_user VALUES (?1, ?2)",
            rusqlite::params![i, password],
        )
        .unwrap();
        let mut d = SessionData::new();
        d.insert(SESSION_USER_ID.into(), json!(i.to_string()));
        d.insert(
            SESSION_USER_BACKEND.into(),
            json!("django.contrib.auth.backends.ModelBackend"),
        );
        d.insert(SESSION_USER_HASH.into(), json!(auth.make(&password)));
        seeds.push(common::seed(A, d, now, "2099-01-01 00:00:00.000000"));
    }
    for i in 0..10 {
        let mut d = SessionData::new();
        d.insert("cart".into(), json!([i]));
        seeds.push(common::seed(A, d, now, "2099-01-01 00:00:00.000000"));
    }
    common::insert(path, "django_session", &seeds);
    format!("sqlite://{}", path.display())
}

/// One page's shell: a temporary directory, `keyroll` on PATH, what was
/// exported or assigned so far, the database stand-in.
struct Shell {
    dir: tempfile::TempDir,
    bin: PathBuf,
    prelude: Vec<String>,
    database: Option<String>,
    last_signature: Option<String>,
}

impl Shell {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(KEYROLL, bin.join("keyroll")).unwrap();
        Self {
            dir,
            bin,
            prelude: Vec::new(),
            database: None,
            last_signature: None,
        }
    }

    fn database(&mut self) -> String {
        if self.database.is_none() {
            let path = self.dir.path().join("django.sqlite3");
            self.database = Some(django_db(&path));
        }
        self.database.clone().unwrap()
    }

    /// keyroll's arguments with the stand-in database.
    fn substitute_args(&mut self, args: &[String]) -> Vec<String> {
        let mut out = args.to_vec();
        for i in 1..out.len() {
            if out[i - 1] == "--database" {
                out[i] = self.database();
            }
        }
        out
    }

    /// The command with the stand-ins put in.
    fn substitute(&mut self, text: &str) -> String {
        let mut words: Vec<String> = text.split(' ').map(str::to_owned).collect();
        for i in 1..words.len() {
            if words[i - 1] == "--database" {
                words[i] = self.database();
            }
        }
        let mut text = words.join(" ");
        if text.contains("<signature from before>") {
            let sig = self
                .last_signature
                .clone()
                .expect("<signature from before>, but no keyroll sign before it");
            text = text.replace("<signature from before>", &sig);
        }
        text
    }

    fn run(&self, script: &str) -> Output {
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg(format!(
                "set -eo pipefail\n{}\n{script}",
                self.prelude.join("\n")
            ))
            .current_dir(self.dir.path())
            .env("PATH", path);
        for v in [
            "SECRET_KEY",
            "SECRET_KEY_FALLBACKS",
            "OLD_SECRET_KEY",
            "KEYROLL_KEYRING",
        ] {
            c.env_remove(v);
        }
        c.output().unwrap()
    }
}

/// `#   …` shown output as a pattern: `N` a number, `<…>` one word, blanks any blanks.
fn shown_output_matches(shown: &str, line: &str) -> bool {
    fn word_matches(pattern: &str, word: &str) -> bool {
        if pattern.starts_with('<') && pattern.ends_with('>') {
            return !word.is_empty();
        }
        match pattern.strip_prefix('N') {
            Some(rest) if rest.chars().all(|c| !c.is_alphanumeric()) => word
                .strip_suffix(rest)
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())),
            _ => pattern == word,
        }
    }
    // `<old key id>` is one word of several: join the words inside <…> first.
    let mut pattern = Vec::new();
    let mut inside: Option<String> = None;
    for w in shown.split_whitespace() {
        match &mut inside {
            Some(acc) => {
                acc.push(' ');
                acc.push_str(w);
                if w.ends_with('>') {
                    pattern.push(inside.take().unwrap());
                }
            }
            None if w.starts_with('<') && !w.ends_with('>') => inside = Some(w.to_owned()),
            None => pattern.push(w.to_owned()),
        }
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    words.len() == pattern.len() && pattern.iter().zip(&words).all(|(p, w)| word_matches(p, w))
}

/// Runs one page's ```sh blocks; returns what went wrong.
fn run_page(page: &str, text: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let mut shell = Shell::new();
    for block in blocks(text).iter().filter(|b| b.lang == "sh") {
        for cmd in sh_commands(block) {
            let shown = format!("{page}:{}: `{}`", cmd.line, cmd.text);
            if let Err(e) = run_command(&mut shell, &cmd, &shown) {
                errors.push(e);
            }
        }
    }
    errors
}

fn run_command(shell: &mut Shell, cmd: &ShCommand, shown: &str) -> Result<(), String> {
    let simple = simple_commands(&cmd.text);
    let mut built: Vec<String> = Vec::new();
    // (script, whether it is the demo)
    let mut script: Vec<(String, bool)> = Vec::new();
    let mut runs_here = false;
    for s in &simple {
        let Some(program) = s.argv.first() else {
            // Only assignments: `K=target/release/keyroll` after a checked build.
            for (name, value) in &s.assignments {
                let value = if built.contains(value) {
                    if !value.ends_with("/keyroll") {
                        return Err(format!("{shown}: {value} is not keyroll"));
                    }
                    KEYROLL.to_owned()
                } else {
                    value.clone()
                };
                shell.prelude.push(format!("{name}='{value}'"));
            }
            continue;
        };
        let args = &s.argv[1..];
        match program.as_str() {
            "keyroll" | "$K" => {
                check_parses(&shell.substitute_args(args), shown)?;
                runs_here = true;
            }
            "export" => {
                shell.prelude.push(cmd.text.clone());
                return Ok(());
            }
            "echo" => runs_here = true,
            "cargo" => {
                let c = check_cargo(&s.argv, shown)?;
                built.extend(c.built);
                if let Some(mut run) = c.runs {
                    if run.first().map(String::as_str) == Some("demo")
                        && !run.iter().any(|a| a == "--sessions")
                    {
                        run.extend(["--sessions".to_owned(), DEMO_SESSIONS.to_owned()]);
                    }
                    check_parses(&run, shown)?;
                    let demo = run.first().map(String::as_str) == Some("demo");
                    script.push((format!("keyroll {}", run.join(" ")), demo));
                }
            }
            "scripts/test.sh" => {
                let path = root().join(program);
                let meta = std::fs::metadata(&path)
                    .map_err(|e| format!("{shown}: {}: {e}", path.display()))?;
                if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 == 0 {
                    return Err(format!("{shown}: {} is not executable", path.display()));
                }
                let o = Command::new("bash").arg("-n").arg(&path).output().unwrap();
                if !o.status.success() {
                    return Err(format!(
                        "{shown}: bash -n: {}",
                        String::from_utf8_lossy(&o.stderr)
                    ));
                }
                if !args.is_empty() {
                    return Err(format!("{shown}: scripts/test.sh takes no arguments"));
                }
            }
            other => {
                return Err(format!(
                    "{shown}: this test does not know how to check {other:?}: teach it"
                ))
            }
        }
    }
    if runs_here {
        let demo = simple
            .iter()
            .any(|s| s.argv.get(1).is_some_and(|a| a == "demo"));
        script.push((shell.substitute(&cmd.text), demo));
    }
    for (line, demo) in script {
        let o = shell.run(&line);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        if !o.status.success() {
            return Err(format!(
                "{shown}: ran `{line}`: exit {}\n{out}{}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        for want in &cmd.expected {
            if !out.lines().any(|l| shown_output_matches(want, l)) {
                return Err(format!(
                    "{shown}: the page shows the output `{want}`, keyroll printed:\n{out}"
                ));
            }
        }
        if demo && !(out.contains("sessions lost: 0") && out.contains("logins lost: 0")) {
            return Err(format!("{shown}: the demo logged someone out:\n{out}"));
        }
        let signs = simple_commands(&line)
            .last()
            .is_some_and(|s| s.argv.get(1).is_some_and(|a| a == "sign"));
        if signs {
            shell.last_signature = out
                .lines()
                .next()
                .and_then(|l| l.rsplit_once(':'))
                .map(|(_, sig)| sig.to_owned());
        }
    }
    Ok(())
}

// ------------------------------------------------------------ the tests

#[test]
fn every_sh_block_of_the_readme_and_docs_runs_as_shown() {
    let mut errors = Vec::new();
    let mut ran = 0;
    for (page, text) in docs() {
        if blocks(&text).iter().any(|b| b.lang == "sh") {
            ran += 1;
        }
        errors.extend(run_page(&page, &text));
    }
    assert!(
        ran >= 2,
        "no ```sh blocks found: the test reads the wrong files"
    );
    assert!(errors.is_empty(), "\n{}", errors.join("\n\n"));
}

#[test]
fn every_keyroll_command_in_the_docs_names_real_subcommands_and_flags() {
    let mut errors = Vec::new();
    let mut checked = 0;
    for (page, text) in docs() {
        for (line, span) in inline_spans(&text) {
            let span = strip_comment(&span);
            for s in simple_commands(&span) {
                // `keyroll` alone is the program's name, not a command.
                if s.argv.first().map(String::as_str) != Some("keyroll") || s.argv.len() < 2 {
                    continue;
                }
                checked += 1;
                let shown = format!("{page}:{line}: `{span}`");
                if let Err(e) = check_flags(&s.argv[1..], &shown) {
                    errors.push(e);
                }
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} inline keyroll commands found"
    );
    assert!(errors.is_empty(), "\n{}", errors.join("\n"));
}

#[test]
fn cargo_commands_in_the_docs_name_a_package_and_a_binary_cargo_can_run() {
    let mut errors = Vec::new();
    let mut checked = 0;
    for (page, text) in docs() {
        // Inline spans also speak of `cargo install NAME` once published: only
        // the blocks' install commands are checked.
        let mut lines: Vec<(usize, String)> = inline_spans(&text)
            .into_iter()
            .filter(|(_, t)| !t.starts_with("cargo install"))
            .collect();
        for b in blocks(&text).iter().filter(|b| b.lang == "sh") {
            lines.extend(sh_commands(b).into_iter().map(|c| (c.line, c.text)));
        }
        for (line, text) in lines {
            for s in simple_commands(&text) {
                if s.argv.first().map(String::as_str) == Some("cargo")
                    && matches!(
                        s.argv.get(1).map(String::as_str),
                        Some("run" | "build" | "install")
                    )
                {
                    checked += 1;
                    if let Err(e) = check_cargo(&s.argv, &format!("{page}:{line}: `{text}`")) {
                        errors.push(e);
                    }
                }
            }
        }
    }
    assert!(checked >= 2, "only {checked} cargo commands found");
    assert!(errors.is_empty(), "\n{}", errors.join("\n"));
}

/// docs/cli.md's synopses: `keyroll …` lines of its plain ``` blocks.
fn cli_md_synopses() -> Vec<(usize, Vec<String>)> {
    let text = std::fs::read_to_string(root().join("docs/cli.md")).unwrap();
    blocks(&text)
        .into_iter()
        .filter(|b| b.lang.is_empty())
        .flat_map(|b| b.lines)
        .filter(|(_, l)| l.starts_with("keyroll "))
        .map(|(n, l)| {
            let words = l
                .replace(['[', ']', '|'], " ")
                .split_whitespace()
                .skip(1)
                .map(str::to_owned)
                .collect();
            (n, words)
        })
        .collect()
}

/// Every subcommand path keyroll has (leaves only: `ring stage`, `census`, …).
fn all_commands(path: Vec<String>, out: &mut Vec<Vec<String>>) {
    let h = help(&path).unwrap();
    if h.commands.is_empty() {
        out.push(path);
        return;
    }
    for c in h.commands {
        let mut p = path.clone();
        p.push(c);
        all_commands(p, out);
    }
}

#[test]
fn cli_md_lists_every_subcommand_and_flag_keyroll_has_and_no_other() {
    let synopses = cli_md_synopses();
    assert!(
        synopses.len() >= 10,
        "docs/cli.md has {} synopses",
        synopses.len()
    );
    let mut errors = Vec::new();
    let mut documented: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for (line, words) in &synopses {
        let shown = format!("docs/cli.md:{line}");
        match check_flags(words, &shown) {
            Ok(path) => {
                let flags = words.iter().filter(|w| w.starts_with('-')).cloned();
                documented.entry(path).or_default().extend(flags);
            }
            Err(e) => errors.push(e),
        }
    }
    let mut commands = Vec::new();
    all_commands(Vec::new(), &mut commands);
    assert!(commands.len() >= 12, "{commands:?}");
    for path in commands {
        let name = format!("keyroll {}", path.join(" "));
        let Some(shown) = documented.get(&path) else {
            errors.push(format!("docs/cli.md has no synopsis of `{name}`"));
            continue;
        };
        for flag in help(&path).unwrap().flags {
            if !matches!(flag.as_str(), "-h" | "--help" | "-V" | "--version")
                && !shown.contains(&flag)
            {
                errors.push(format!("docs/cli.md: `{name}` does not list {flag}"));
            }
        }
    }
    assert!(errors.is_empty(), "\n{}", errors.join("\n"));
}

#[test]
fn doc_links_stay_inside_the_repository() {
    let root = root();
    let mut errors = Vec::new();
    for (page, text) in docs() {
        let dir = root.join(&page).parent().unwrap().to_path_buf();
        for (i, line) in text.lines().enumerate() {
            for part in line.split("](").skip(1) {
                let target = part.split(')').next().unwrap();
                let target = target.split('#').next().unwrap();
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let resolved = dir.join(target);
                let inside = resolved
                    .canonicalize()
                    .map(|p| p.starts_with(&root))
                    .unwrap_or(false);
                if !inside {
                    errors.push(format!(
                        "{page}:{}: the link {target} does not name a file of the repository",
                        i + 1
                    ));
                }
            }
        }
        if text.contains("../shared/") {
            errors.push(format!("{page}: names ../shared/, outside the repository"));
        }
    }
    assert!(errors.is_empty(), "\n{}", errors.join("\n"));
}

#[test]
fn readme_rust_version_is_the_declared_one_and_no_dependency_needs_a_newer_one() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let meta = cargo_metadata(&["--no-deps"]);
    let declared: BTreeSet<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["rust_version"].as_str().unwrap_or("none").to_owned())
        .collect();
    assert_eq!(declared.len(), 1, "packages declare {declared:?}");
    let declared = declared.into_iter().next().unwrap();
    assert!(
        readme.contains(&format!("Rust {declared}+")),
        "README.md does not say `Rust {declared}+` (rust-version in Cargo.toml)"
    );

    // Dependencies built on this machine (other platforms' are never compiled here).
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let vv = Command::new(rustc).arg("-vV").output().unwrap();
    let host = String::from_utf8(vv.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .unwrap();
    let meta = cargo_metadata(&["--filter-platform", &host]);
    let used: BTreeSet<&str> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    // "1.89" and "1.89.0" are the same version: compare three components.
    let version = |v: &str| -> Vec<u64> {
        let mut parts: Vec<u64> = v.split('.').map(|p| p.parse().unwrap()).collect();
        parts.resize(3, 0);
        parts
    };
    let max = version(&declared);
    let newer: Vec<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| used.contains(p["id"].as_str().unwrap()))
        .filter_map(|p| {
            let rv = p["rust_version"].as_str()?;
            (version(rv) > max).then(|| format!("{} {} needs Rust {rv}", p["name"], p["version"]))
        })
        .collect();
    assert!(
        newer.is_empty(),
        "rust-version {declared} is declared, but:\n{}",
        newer.join("\n")
    );
}

// ------------------------------------------------------------ the checker itself

#[test]
fn the_checker_refuses_a_flag_or_subcommand_keyroll_does_not_have() {
    let args = |s: &str| -> Vec<String> { s.split(' ').map(str::to_owned).collect() };
    assert!(check_flags(&args("ring stage FILE --secret-stdin"), "t").is_ok());
    let e = check_flags(&args("ring stage FILE --secret-argv X"), "t").unwrap_err();
    assert!(e.contains("has no flag --secret-argv"), "{e}");
    let e = check_flags(&args("ring rotate FILE"), "t").unwrap_err();
    assert!(e.contains("no subcommand \"rotate\""), "{e}");
    let e = check_flags(&args("rotate --database x"), "t").unwrap_err();
    assert!(e.contains("no subcommand \"rotate\""), "{e}");
    // A value clap refuses, though the flag exists.
    let e = check_parses(&args("resign --database x --jobs many"), "t").unwrap_err();
    assert!(e.contains("does not accept"), "{e}");
    assert!(check_parses(&args("resign --database x --django --jobs 4"), "t").is_ok());
}

#[test]
fn the_checker_refuses_cargo_run_of_a_package_with_several_binaries_and_no_default_run() {
    let argv = |s: &str| -> Vec<String> { s.split(' ').map(str::to_owned).collect() };
    let packages = packages();
    let several = packages
        .iter()
        .find(|(_, p)| p.bins.len() > 1 && p.default_run.is_none());
    if let Some((name, _)) = several {
        let e = check_cargo(&argv(&format!("cargo run -p {name}")), "t")
            .err()
            .unwrap();
        assert!(e.contains("no default-run"), "{e}");
    }
    let e = check_cargo(&argv("cargo run -p no-such-package"), "t")
        .err()
        .unwrap();
    assert!(e.contains("no package"), "{e}");
    let c = check_cargo(&argv("cargo run --release -p keyroll-cli -- demo"), "t").unwrap();
    assert_eq!(c.built, ["target/release/keyroll"]);
    assert_eq!(c.runs, Some(vec!["demo".to_owned()]));
}

#[test]
fn the_checker_reads_shown_output_as_a_pattern() {
    assert!(shown_output_matches(
        "resigned N, already-current N, unverifiable N",
        "resigned 40, already-current 0, unverifiable 3"
    ));
    assert!(!shown_output_matches(
        "resigned N, already-current N, unverifiable N",
        "resigned 40, already-current 0"
    ));
    assert!(shown_output_matches(
        "ok\t<old key id>\tfallback\thello",
        "ok\t1a2b3c4d\tfallback\thello"
    ));
    assert!(!shown_output_matches(
        "ok\t<old key id>\tfallback\thello",
        "ok\t1a2b3c4d\tprimary\thello"
    ));
}

#[test]
fn ci_runs_the_test_command_the_readme_shows() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let first = blocks(&readme)
        .into_iter()
        .find(|b| b.lang == "sh")
        .expect("README.md has no ```sh block");
    let commands: Vec<String> = sh_commands(&first).into_iter().map(|c| c.text).collect();
    assert_eq!(
        commands.len(),
        2,
        "README.md's first block should hold exactly the two set-up commands: {commands:?}"
    );
    let test_command = &commands[1];
    let ci = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    let last = ci
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap();
    assert_eq!(
        last,
        format!("exec {test_command}"),
        ".ci/run does not end by running README.md's test command"
    );
}
