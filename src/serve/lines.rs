//! Newline framing with a bound: reads one request line at a time without ever holding more than
//! the limit in memory.
//!
//! Owns splitting a byte stream into lines and discarding the rest of an over-long one. It must not
//! look inside a line: `messages` gives the bytes meaning.

use std::io::{self, BufRead};

/// The longest request line accepted, in bytes, not counting its newline (1 MiB).
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// What [`read_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A line is in the buffer (without its newline). The last line of the input may lack one.
    Line,
    /// The line was longer than the limit; it was read to its end and thrown away.
    TooLong,
    /// The input ended.
    End,
}

/// Reads the next line into `buf` (cleared first), holding at most `max` bytes of it. A longer line
/// is consumed up to and including its newline but not kept.
pub fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Frame> {
    buf.clear();
    let mut too_long = false;
    let mut started = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(match (too_long, started) {
                (true, _) => Frame::TooLong,
                (false, true) => Frame::Line,
                (false, false) => Frame::End,
            });
        }
        started = true;
        let newline = available.iter().position(|&b| b == b'\n');
        let chunk = &available[..newline.unwrap_or(available.len())];
        if !too_long {
            if buf.len() + chunk.len() > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        let used = newline.map_or(available.len(), |at| at + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(if too_long { Frame::TooLong } else { Frame::Line });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads every frame of `input` through a reader that hands out `chunk` bytes at a time.
    fn frames(input: &[u8], max: usize, chunk: usize) -> Vec<(Frame, String)> {
        let mut reader = io::BufReader::with_capacity(chunk, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let frame = read_line(&mut reader, &mut buf, max).unwrap();
            if frame == Frame::End {
                return out;
            }
            out.push((frame, String::from_utf8_lossy(&buf).into_owned()));
        }
    }

    #[track_caller]
    fn check(input: &str, max: usize, expected: &[(Frame, &str)]) {
        for chunk in [1, 3, 64] {
            let got = frames(input.as_bytes(), max, chunk);
            let got: Vec<(Frame, &str)> = got.iter().map(|(f, s)| (*f, s.as_str())).collect();
            assert_eq!(got, expected, "input {input:?}, chunk {chunk}");
        }
    }

    #[test]
    fn splits_and_bounds_lines() {
        use Frame::{Line, TooLong};
        check("", 8, &[]);
        check("a\nbb\n", 8, &[(Line, "a"), (Line, "bb")]);
        check("\n\n", 8, &[(Line, ""), (Line, "")]);
        check("last", 8, &[(Line, "last")]);
        check("12345678\n", 8, &[(Line, "12345678")]);
        check("123456789\nok\n", 8, &[(TooLong, ""), (Line, "ok")]);
        check("123456789", 8, &[(TooLong, "")]);
        check("a\n123456789012345678\nb", 8, &[(Line, "a"), (TooLong, ""), (Line, "b")]);
    }
}
