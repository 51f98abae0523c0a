//! How long `history` takes over a full journal: a simulated fortnight fills `NAME.journal` to its
//! rotation size (1 MiB), then the rotated file is read as `history` reads it (nights, days, gaps,
//! the JSON document, the text, the hypnogram), 20 times.
//!
//! Run it with `cargo run --release --example history_time`.

use std::time::{Duration, Instant};

use daemon_state::history;
use daemon_state::simulate::{self, SimulateOptions, plot};
use daemon_state::store::Store;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = SimulateOptions {
        days: 14,
        seed: 1,
        dir: Some(dir.path().to_owned()),
        plot: None,
        json: true,
    };
    simulate::run(&options, &mut std::io::sink()).expect("simulate");
    let path = dir.path().join(simulate::STATE_FILE_NAME);
    let rotated =
        std::fs::read(dir.path().join(format!("{}.journal.1", simulate::STATE_FILE_NAME)))
            .expect("a rotated journal: the fortnight fills one");
    let both = Store::open_read_only(path).and_then(|s| s.read_journal()).expect("journal");
    for (what, bytes) in
        [("the rotated 1 MiB journal", &rotated), ("both files, as history reads them", &both)]
    {
        let mut times: Vec<Duration> = (0..20)
            .map(|_| {
                let start = Instant::now();
                let read = history::read(bytes, None);
                let (from, days) = read.window(None).expect("lines");
                let svg = plot::svg(&history::trace(bytes, from, days), "timing");
                let text = read.text(&[]);
                std::hint::black_box((svg, text, read.nights.len()));
                start.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "{what}: {} bytes, {} lines: median {:.1} ms, max {:.1} ms (20 runs)",
            bytes.len(),
            bytes.iter().filter(|&&b| b == b'\n').count(),
            times[10].as_secs_f64() * 1e3,
            times[19].as_secs_f64() * 1e3
        );
    }
}
