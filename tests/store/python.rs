//! The file the store writes is one that Python's `json` module, and so the seed, reads.

use std::process::Command;

use daemon_state::record::Record;
use daemon_state::store::Store;

use super::state_dir;

// Seed compatibility: a file written by the store loads with Python's `json.load` into a dict with
// the same keys, in the same order. Skipped, with a note, when `python3` is not on PATH.
#[test]
fn python_reads_what_the_store_writes() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("note: python3 is not on PATH; skipping the Python compatibility check");
        return;
    }
    let (_dir, path) = state_dir();
    // Built from text: a number past 64 bits is kept as the file spells it.
    let mut record = Record::from_slice(
        r#"{
            "fsm_state": "SLEEP",
            "first_turn_pending": {"sess-ü": "2026-04-18T20:00:00+00:00"},
            "quiet_window": [2, 12],
            "big": 123456789012345678901234567890
        }"#
        .as_bytes(),
    )
    .unwrap();
    Store::open(&path).unwrap().save(&mut record).unwrap();
    let script = "import json, sys\n\
                  d = json.load(open(sys.argv[1], encoding='utf-8'))\n\
                  assert isinstance(d, dict), type(d)\n\
                  print(json.dumps(list(d)))\n\
                  print(d['generation'], d['big'], d['first_turn_pending']['sess-\\u00fc'])\n";
    let output = Command::new("python3").args(["-c", script]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "python3 failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        stdout,
        "[\"fsm_state\", \"first_turn_pending\", \"quiet_window\", \"big\", \"generation\"]\n\
         1 123456789012345678901234567890 2026-04-18T20:00:00+00:00\n"
    );
}
