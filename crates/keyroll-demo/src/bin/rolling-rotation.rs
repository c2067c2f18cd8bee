//! `rolling-rotation`: the fleet drill. Starts a fleet of `keyroll-demo`
//! instances on loopback ports sharing one PostgreSQL or Redis store, puts a
//! few hundred simulated users on it, and rotates the signing key while they
//! work — staged (stage B everywhere, promote instance by instance, re-sign,
//! retire A) and naive (stage-and-promote one instance at a time) — then
//! prints, for each: requests made, users logged out, requests that saw an
//! error, sessions lost. Exit status 1 when the staged rotation shows any
//! non-zero figure (or the drill could not run).
//!
//! ```text
//! rolling-rotation --database postgres://postgres@127.0.0.1:5432/test \
//!                  --database redis://127.0.0.1:6379 [--users 300] [--phase-secs 5]
//! ```
//!
//! See docs/rolling-rotation.md and bench/rolling-rotation.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use keyroll_demo::drill::{self, Config, Scenario};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Which {
    Staged,
    Naive,
    Both,
}

/// The rolling-rotation drill.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Shared session store (postgres://… or redis://…); repeat for several, run in turn.
    #[arg(long, required = true)]
    database: Vec<String>,
    /// Which rotation(s) to play.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    scenario: Which,
    /// Instances in the fleet.
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// Simulated users.
    #[arg(long, default_value_t = 300)]
    users: usize,
    /// Seconds of each phase (warm-up, after each ring change, grace, tail).
    #[arg(long, default_value_t = 5.0)]
    phase_secs: f64,
    /// Mean pause between two requests of one user, in milliseconds.
    #[arg(long, default_value_t = 250)]
    think_ms: u64,
    /// Share of requests that write to the session, in percent.
    #[arg(long, default_value_t = 20)]
    write_percent: u32,
    /// The keyroll-demo binary (default: next to this one).
    #[arg(long)]
    demo_bin: Option<PathBuf>,
    /// The keyroll CLI binary (default: next to this one).
    #[arg(long)]
    keyroll_bin: Option<PathBuf>,
    /// Where ring files, the users file and instance logs go (default: a
    /// fresh directory under the system's temporary directory, removed at
    /// the end unless --keep).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the work directory.
    #[arg(long)]
    keep: bool,
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.phase_secs > 0.0 && args.phase_secs < 3600.0) || args.write_percent > 100 {
        eprintln!(
            "rolling-rotation: --phase-secs must be in (0, 3600), --write-percent at most 100"
        );
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rolling-rotation: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (work_dir, temporary) = match &args.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("keyroll-drill-{}", std::process::id())),
            true,
        ),
    };
    let scenarios: &[Scenario] = match args.scenario {
        Which::Staged => &[Scenario::Staged],
        Which::Naive => &[Scenario::Naive],
        Which::Both => &[Scenario::Staged, Scenario::Naive],
    };
    let mut failed = false;
    let mut reports = Vec::new();
    for database in &args.database {
        let cfg = Config {
            demo_bin: args
                .demo_bin
                .clone()
                .unwrap_or_else(|| sibling("keyroll-demo")),
            keyroll_bin: args
                .keyroll_bin
                .clone()
                .unwrap_or_else(|| sibling("keyroll")),
            database: database.clone(),
            instances: args.instances,
            users: args.users,
            phase: Duration::from_secs_f64(args.phase_secs),
            think: Duration::from_millis(args.think_ms),
            write_percent: args.write_percent,
            work_dir: work_dir.clone(),
        };
        for &scenario in scenarios {
            let run = rt.block_on(async {
                tokio::select! {
                    r = drill::run(&cfg, scenario) => Some(r),
                    _ = tokio::signal::ctrl_c() => None,
                }
            });
            let Some(run) = run else {
                if temporary && !args.keep {
                    let _ = std::fs::remove_dir_all(&work_dir);
                }
                eprintln!("rolling-rotation: interrupted; the run's table / keys were dropped");
                return ExitCode::from(130);
            };
            match run {
                Ok(report) => {
                    println!("{report}");
                    if scenario == Scenario::Staged && !report.is_clean() {
                        failed = true;
                    }
                    reports.push(report);
                }
                Err(e) => {
                    eprintln!("rolling-rotation: {} rotation: {e:#}", scenario.name());
                    failed = true;
                }
            }
        }
    }
    println!("summary               requests  logged-out  error-requests  sessions-lost");
    for r in &reports {
        println!(
            "{:<6} {:<11} {:>11} {:>11} {:>15} {:>14}",
            r.scenario, r.store, r.requests, r.users_logged_out, r.error_requests, r.sessions_lost
        );
    }
    if temporary && !args.keep {
        let _ = std::fs::remove_dir_all(&work_dir);
    } else {
        eprintln!(
            "rolling-rotation: work directory kept: {}",
            work_dir.display()
        );
    }
    if failed {
        eprintln!(
            "rolling-rotation: FAILED: a drill did not run, or the staged rotation was not all zeros"
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
