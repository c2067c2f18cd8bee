//! The `keyroll` command line as a library: [`run`] is the whole binary.
//!
//! The `keyroll` binary (`src/main.rs`) calls [`run`] with its arguments; the
//! Python package (`crates/keyroll-py`) calls it too, so that `pip install`
//! brings the same command. The work is done by the `keyroll` library. Exit
//! status: 0 success, 1 when something verified badly or a check failed, 2 for
//! usage or configuration errors, 130 when `resign` or `purge` was interrupted.

/// `println!` that returns the write's error instead of panicking, so a
/// closed pipe (`keyroll census … | head -1`) ends the command quietly.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod batches;
mod demo;
mod keys;
mod lines;
mod ring_cmd;
mod sessions_cmd;
mod sign_cmd;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exit status for a usage or configuration error.
const EXIT_CONFIG: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "keyroll",
    version,
    about = "Rotate Django-compatible signing keys without logging anyone out.",
    long_about = "Rotate Django-compatible signing keys without logging anyone out.\n\n\
Keys come from a ring file (--keyring FILE, or KEYROLL_KEYRING=FILE) or, failing that,\n\
from Django's variables: SECRET_KEY (primary), SECRET_KEY_FALLBACKS (a JSON list or\n\
comma-separated) and OLD_SECRET_KEY (one more fallback). Secrets are never taken as\n\
arguments and never printed (except by `keygen`).\n\n\
A first rotation:\n  \
keyroll ring init ring.toml          # one primary key\n  \
keyroll ring stage ring.toml         # a new key every server learns first\n  \
keyroll ring promote ring.toml       # it signs; the old one verifies for 30 days\n  \
keyroll ring check ring.toml         # lint the ring",
    after_help = "Exit status: 0 ok, 1 a token failed or a check found a problem, 2 usage or configuration error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print one new random secret (Django's alphabet, 50 characters by default).
    Keygen {
        /// Number of characters.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=4096))]
        length: u16,
    },
    /// Manage a key ring file: init, stage, promote, retire, list, check, auto.
    #[command(subcommand)]
    Ring(ring_cmd::RingCommand),
    /// Sign VALUE (or each line of stdin) with the primary key.
    Sign(sign_cmd::SignArgs),
    /// Verify one token per line of FILE (or stdin); print `ok` or `bad` per line.
    Verify(sign_cmd::VerifyArgs),
    /// Count a session table's rows per key, unverifiable and expired.
    ///
    /// A fallback key with no rows left is safe to retire.
    Census(sessions_cmd::CensusArgs),
    /// Re-sign every live session a non-primary key verifies, with the primary.
    ///
    /// Keeps expiry and timestamps; leaves rows it cannot verify untouched;
    /// safe to interrupt and rerun.
    Resign(sessions_cmd::ResignArgs),
    /// Delete expired sessions.
    Purge(sessions_cmd::PurgeArgs),
    /// The whole rotation story on an embedded SQLite file, with a report.
    Demo(demo::DemoArgs),
}

/// Where keys come from, for commands that sign or verify.
#[derive(Args, Debug, Clone)]
pub(crate) struct KeySource {
    /// Key ring file (default: $KEYROLL_KEYRING; without either, SECRET_KEY and friends).
    #[arg(long, value_name = "FILE")]
    keyring: Option<PathBuf>,
    /// Accept a ring or secret file that is not yours, that group or others can read or
    /// write, or that sits in a directory others can write (see docs/security.md).
    #[arg(long)]
    allow_insecure: bool,
}

/// Runs the command line on `args` (the first is the program's name, as in
/// [`std::env::args_os`]) and returns its exit status. Usage errors, `--help`
/// and `--version` print as clap prints them and return (2, or 0) instead of
/// exiting the process.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // What `Cli::parse` would do, without ending the process.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_CONFIG));
        }
    };
    let result = match cli.command {
        Command::Keygen { length } => keygen(length),
        Command::Ring(cmd) => ring_cmd::run(cmd),
        Command::Sign(args) => sign_cmd::sign(args),
        Command::Verify(args) => sign_cmd::verify(args),
        Command::Census(args) => sessions_cmd::census(args),
        Command::Resign(args) => sessions_cmd::resign(args),
        Command::Purge(args) => sessions_cmd::purge(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("keyroll: error: {e:#}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// [`run`], with the exit status as a number, for a caller that is not a
/// binary's `main` (the Python package's `keyroll` entry point passes it to
/// `sys.exit`).
pub fn run_status(args: impl IntoIterator<Item = OsString>) -> u8 {
    let code = run(args);
    (0..=u8::MAX)
        .find(|&n| ExitCode::from(n) == code)
        .unwrap_or(1)
}

fn keygen(length: u16) -> anyhow::Result<ExitCode> {
    if usize::from(length) < keyroll::ringfile::DEFAULT_SECRET_LEN {
        // Django's check security.W009 asks for at least 50 characters.
        eprintln!(
            "keyroll: warning: a {length}-character secret is shorter than the 50 Django's \
             security check (W009) asks for; use --length 50 or more"
        );
    }
    let secret = keyroll::ringfile::generate_secret(usize::from(length));
    outln!("{}", String::from_utf8_lossy(secret.expose()));
    Ok(ExitCode::SUCCESS)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
