//! `keyroll`: rotate signing keys without logging anyone out.
//!
//! A thin binary: argument parsing and output. The work is done by the
//! `keyroll` library. Exit status: 0 success, 1 when something verified
//! badly or a check failed, 2 for usage or configuration errors.

use std::process::ExitCode;

fn main() -> ExitCode {
    keyroll_cli::run(std::env::args_os())
}
