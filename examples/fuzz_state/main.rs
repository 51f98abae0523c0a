//! The fuzz loop over hostile state files: generates inputs, runs each through the oracle in
//! `harness`, counts them, and saves every input that panics or breaks a rule, so that it can be
//! kept as a regression test under `tests/fixtures/fuzz/`.
//!
//! It must not stop at the first failure nor hide one: every failure is saved and counted, and the
//! exit code says whether there was any. Input `n` depends only on the seed and `n`, whatever the
//! number of threads.

mod generate;
mod harness;

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;

use harness::{Rng, Verdict};

#[derive(Parser)]
#[command(about = "Feeds hostile state files to the loader and the engine")]
struct Args {
    /// How many inputs to run.
    #[arg(long, default_value_t = 1_000_000)]
    inputs: u64,
    /// The random seed; the same seed gives the same inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Threads to run; by default one per core.
    #[arg(long)]
    jobs: Option<u64>,
    /// Where to save the inputs that fail.
    #[arg(long, default_value = "target/fuzz-failures")]
    failures: PathBuf,
}

thread_local! {
    /// What the last panic on this thread said, caught by the quiet hook.
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// What one thread saw.
#[derive(Default)]
struct Tally {
    inputs: [u64; generate::FAMILIES.len()],
    seconds: [f64; generate::FAMILIES.len()],
    parsed: u64,
    quarantined: u64,
    failures: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        for family in 0..generate::FAMILIES.len() {
            self.inputs[family] += other.inputs[family];
            self.seconds[family] += other.seconds[family];
        }
        self.parsed += other.parsed;
        self.quarantined += other.quarantined;
        self.failures += other.failures;
    }
}

/// The random source of input `n`.
fn rng_for(seed: u64, n: u64) -> Rng {
    let mut mix = Rng::new(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    Rng::new(mix.next_u64())
}

/// Runs inputs `first`, `first + step`, ... below `args.inputs`.
fn run(args: &Args, first: u64, step: u64) -> Tally {
    let mut tally = Tally::default();
    for n in (first..args.inputs).step_by(step as usize) {
        let (family, bytes) = generate::input(&mut rng_for(args.seed, n));
        tally.inputs[family] += 1;
        let started = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| harness::check(&bytes)));
        tally.seconds[family] += started.elapsed().as_secs_f64();
        let failure = match outcome {
            Ok(Ok(Verdict::Parsed)) => {
                tally.parsed += 1;
                continue;
            }
            Ok(Ok(Verdict::Quarantined)) => {
                tally.quarantined += 1;
                continue;
            }
            Ok(Err(rule)) => rule,
            Err(_) => format!("panic: {}", LAST_PANIC.with(|last| last.borrow().clone())),
        };
        tally.failures += 1;
        if let Err(e) = save(&args.failures, n, &bytes, &failure) {
            eprintln!("fuzz_state: cannot save failing input {n}: {e}");
        }
        eprintln!("fuzz_state: input {n} ({}) failed: {failure}", generate::FAMILIES[family]);
    }
    tally
}

fn main() -> ExitCode {
    let args = Args::parse();
    panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|last| *last.borrow_mut() = info.to_string());
    }));
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u64))
        .max(1);
    let began = Instant::now();
    let mut total = Tally::default();
    std::thread::scope(|scope| {
        let args = &args;
        let threads: Vec<_> =
            (0..jobs).map(|first| scope.spawn(move || run(args, first, jobs))).collect();
        for thread in threads {
            match thread.join() {
                Ok(tally) => total.add(&tally),
                Err(_) => total.failures += 1,
            }
        }
    });
    let seconds = began.elapsed().as_secs_f64();
    println!(
        "fuzz_state: {} inputs in {seconds:.1} s on {jobs} threads ({:.0} per second), seed {}: \
         {} parsed and run, {} quarantined, {} failed",
        args.inputs,
        args.inputs as f64 / seconds.max(1e-9),
        args.seed,
        total.parsed,
        total.quarantined,
        total.failures
    );
    for (family, name) in generate::FAMILIES.iter().enumerate() {
        println!(
            "  {name:<28} {:>9} inputs, {:>6.1} s",
            total.inputs[family], total.seconds[family]
        );
    }
    if total.failures == 0 {
        ExitCode::SUCCESS
    } else {
        println!("fuzz_state: failing inputs saved under {}", args.failures.display());
        ExitCode::FAILURE
    }
}

/// Saves a failing input as `N.json` (its bytes) and `N.txt` (what went wrong).
fn save(dir: &Path, n: u64, bytes: &[u8], failure: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{n}.json")), bytes)?;
    std::fs::write(dir.join(format!("{n}.txt")), failure)
}
