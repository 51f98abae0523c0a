//! The fuzz loop over hostile state files (`harness`) and hostile `serve` request streams
//! (`serve`): generates inputs, runs each through its oracle, counts them, and saves every input
//! that panics or breaks a rule, so that it can be kept as a regression test under
//! `tests/fixtures/fuzz/`.
//!
//! It must not stop at the first failure nor hide one: every failure is saved and counted, and the
//! exit code says whether there was any. Input `n` depends only on the seed and `n`, whatever the
//! number of threads.

mod generate;
mod harness;
mod serve;

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
    /// How many state files to run through the loader and the engine.
    #[arg(long, default_value_t = 1_000_000)]
    inputs: u64,
    /// How many request streams to run through `serve`.
    #[arg(long, default_value_t = 0)]
    serve_inputs: u64,
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

/// The rows of the tallies: the state-file families, then the serve streams.
const ROWS: usize = generate::FAMILIES.len() + 1;

fn row_name(row: usize) -> &'static str {
    generate::FAMILIES.get(row).copied().unwrap_or("serve request streams")
}

/// What one thread saw.
#[derive(Default)]
struct Tally {
    inputs: [u64; ROWS],
    seconds: [f64; ROWS],
    parsed: u64,
    quarantined: u64,
    served: u64,
    failures: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        for family in 0..ROWS {
            self.inputs[family] += other.inputs[family];
            self.seconds[family] += other.seconds[family];
        }
        self.parsed += other.parsed;
        self.quarantined += other.quarantined;
        self.served += other.served;
        self.failures += other.failures;
    }
}

/// The random source of input `n`.
fn rng_for(seed: u64, n: u64) -> Rng {
    let mut mix = Rng::new(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    Rng::new(mix.next_u64())
}

/// Runs inputs `first`, `first + step`, ...: the state files first, then the serve streams.
fn run(args: &Args, first: u64, step: u64) -> Tally {
    let mut tally = Tally::default();
    for n in (first..args.inputs + args.serve_inputs).step_by(step as usize) {
        let mut rng = rng_for(args.seed, n);
        let (row, bytes) = if n < args.inputs {
            generate::input(&mut rng)
        } else {
            (generate::FAMILIES.len(), serve::input(&mut rng))
        };
        tally.inputs[row] += 1;
        let started = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            if n < args.inputs {
                harness::check(&bytes).map(Some)
            } else {
                serve::check(&bytes).map(|()| None)
            }
        }));
        tally.seconds[row] += started.elapsed().as_secs_f64();
        let failure = match outcome {
            Ok(Ok(verdict)) => {
                match verdict {
                    Some(Verdict::Parsed) => tally.parsed += 1,
                    Some(Verdict::Quarantined) => tally.quarantined += 1,
                    None => tally.served += 1,
                }
                continue;
            }
            Ok(Err(rule)) => rule,
            Err(_) => format!("panic: {}", LAST_PANIC.with(|last| last.borrow().clone())),
        };
        tally.failures += 1;
        let name =
            if n < args.inputs { format!("state-{n}.json") } else { format!("serve-{n}.ndjson") };
        if let Err(e) = save(&args.failures, &name, &bytes, &failure) {
            eprintln!("fuzz_state: cannot save failing input {n}: {e}");
        }
        eprintln!("fuzz_state: input {n} ({}) failed: {failure}", row_name(row));
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
    let inputs = args.inputs + args.serve_inputs;
    println!(
        "fuzz_state: {inputs} inputs in {seconds:.1} s on {jobs} threads ({:.0} per second), seed {}: \
         {} state files parsed and run, {} quarantined, {} serve streams answered, {} failed",
        inputs as f64 / seconds.max(1e-9),
        args.seed,
        total.parsed,
        total.quarantined,
        total.served,
        total.failures
    );
    for row in 0..ROWS {
        println!(
            "  {:<28} {:>9} inputs, {:>6.1} s",
            row_name(row),
            total.inputs[row],
            total.seconds[row]
        );
    }
    if total.failures == 0 {
        ExitCode::SUCCESS
    } else {
        println!("fuzz_state: failing inputs saved under {}", args.failures.display());
        ExitCode::FAILURE
    }
}

/// Saves a failing input under `name` (its bytes) and `name.txt` (what went wrong).
fn save(dir: &Path, name: &str, bytes: &[u8], failure: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), bytes)?;
    std::fs::write(dir.join(format!("{name}.txt")), failure)
}
