//! Reading lines with a bound on their length, so a huge line costs no memory.

use std::io::{self, BufRead};

/// One line read by [`read_bounded_line`].
pub(crate) enum Line {
    /// A line (without its `\n` or `\r\n`) of at most `max` bytes.
    Fits,
    /// A line longer than `max`; the rest of it was skipped.
    TooLong,
    /// End of input.
    Eof,
}

/// Reads the next line into `buf` (cleared first), keeping at most `max`
/// bytes; the rest of an over-long line is consumed and dropped.
pub(crate) fn read_bounded_line<R: BufRead>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            break;
        }
        any = true;
        let (chunk, done) = match memchr(avail) {
            Some(i) => (avail.get(..i).unwrap_or_default(), Some(i + 1)),
            None => (avail, None),
        };
        if !too_long {
            if buf.len() + chunk.len() <= max {
                buf.extend_from_slice(chunk);
            } else {
                too_long = true;
                buf.clear();
            }
        }
        let used = done.unwrap_or(avail.len());
        r.consume(used);
        if done.is_some() {
            break;
        }
    }
    if !any {
        return Ok(Line::Eof);
    }
    if too_long {
        return Ok(Line::TooLong);
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Line::Fits)
}

fn memchr(hay: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', hay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_skipped_whole() {
        let input = format!("short\r\n{}\nnext\nlast", "x".repeat(100_000));
        let mut r = io::BufReader::with_capacity(64, input.as_bytes());
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        loop {
            match read_bounded_line(&mut r, &mut buf, 10).expect("read") {
                Line::Fits => seen.push(String::from_utf8(buf.clone()).expect("utf8")),
                Line::TooLong => seen.push("<too long>".into()),
                Line::Eof => break,
            }
        }
        assert_eq!(seen, ["short", "<too long>", "next", "last"]);
    }
}
