//! A one-pass JSON reader that writes Django's canonical form directly:
//! exactly `python_json(parse_json(bytes))`, without building a value.
//!
//! Used where only the text is needed (the CLI's `verify --object`, bulk
//! census); falls back to the value path for objects with duplicate keys.

use crate::error::{Limit, VerifyError};
use crate::json::{check_depth, write_float, write_str_char};

const MALFORMED: VerifyError = VerifyError::Malformed("json");

/// Why the one-pass reader stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The input is not what the value path accepts either.
    Invalid(VerifyError),
    /// An object repeats a key: the value path decides which value wins.
    DuplicateKey,
}

impl From<VerifyError> for Stop {
    fn from(e: VerifyError) -> Self {
        Stop::Invalid(e)
    }
}

/// Writes the canonical JSON of Latin-1 `bytes` into `out`.
pub(crate) fn canonicalize(bytes: &[u8], max_depth: usize, out: &mut String) -> Result<(), Stop> {
    check_depth(bytes, max_depth)?;
    let mut r = Reader {
        bytes,
        pos: 0,
        depth: 0,
        max_depth,
    };
    r.ws();
    r.value(out)?;
    r.ws();
    if r.pos != bytes.len() {
        return Err(MALFORMED.into());
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    max_depth: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Result<u8, Stop> {
        let b = self.peek().ok_or(MALFORMED)?;
        self.pos += 1;
        Ok(b)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, lit: &[u8]) -> Result<(), Stop> {
        let end = self.pos + lit.len();
        if self.bytes.get(self.pos..end) != Some(lit) {
            return Err(MALFORMED.into());
        }
        self.pos = end;
        Ok(())
    }

    fn value(&mut self, out: &mut String) -> Result<(), Stop> {
        match self.peek().ok_or(MALFORMED)? {
            b'{' => self.object(out),
            b'[' => self.array(out),
            b'"' => {
                self.pos += 1;
                self.string(out)
            }
            b't' => {
                self.expect(b"true")?;
                out.push_str("true");
                Ok(())
            }
            b'f' => {
                self.expect(b"false")?;
                out.push_str("false");
                Ok(())
            }
            b'n' => {
                self.expect(b"null")?;
                out.push_str("null");
                Ok(())
            }
            b'-' | b'0'..=b'9' => self.number(out),
            _ => Err(MALFORMED.into()),
        }
    }

    fn enter(&mut self) -> Result<(), Stop> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(VerifyError::TooLarge {
                limit: Limit::JsonDepth,
                max: self.max_depth,
            }
            .into());
        }
        Ok(())
    }

    fn object(&mut self, out: &mut String) -> Result<(), Stop> {
        self.enter()?;
        self.pos += 1;
        out.push('{');
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            out.push('}');
            self.depth -= 1;
            return Ok(());
        }
        let mut keys: Vec<(usize, usize)> = Vec::new();
        loop {
            self.ws();
            if self.next()? != b'"' {
                return Err(MALFORMED.into());
            }
            let start = out.len();
            self.string(out)?;
            let end = out.len();
            let key = out.get(start..end).unwrap_or_default();
            if keys.iter().any(|&(s, e)| out.get(s..e) == Some(key)) {
                return Err(Stop::DuplicateKey);
            }
            keys.push((start, end));
            self.ws();
            if self.next()? != b':' {
                return Err(MALFORMED.into());
            }
            out.push(':');
            self.ws();
            self.value(out)?;
            self.ws();
            match self.next()? {
                b',' => out.push(','),
                b'}' => {
                    out.push('}');
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(MALFORMED.into()),
            }
        }
    }

    fn array(&mut self, out: &mut String) -> Result<(), Stop> {
        self.enter()?;
        self.pos += 1;
        out.push('[');
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            out.push(']');
            self.depth -= 1;
            return Ok(());
        }
        loop {
            self.ws();
            self.value(out)?;
            self.ws();
            match self.next()? {
                b',' => out.push(','),
                b']' => {
                    out.push(']');
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return Err(MALFORMED.into()),
            }
        }
    }

    /// After the opening quote: decodes the string and writes it escaped, with quotes.
    fn string(&mut self, out: &mut String) -> Result<(), Stop> {
        out.push('"');
        loop {
            // Copy a run of printable ASCII that needs no escaping in one go.
            let run = self
                .bytes
                .get(self.pos..)
                .unwrap_or_default()
                .iter()
                .take_while(|&&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
                .count();
            if run > 0 {
                let text = self.bytes.get(self.pos..self.pos + run).unwrap_or_default();
                out.push_str(std::str::from_utf8(text).unwrap_or_default());
                self.pos += run;
            }
            let b = self.next()?;
            match b {
                b'"' => break,
                b'\\' => {
                    let c = match self.next()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(MALFORMED.into()),
                    };
                    write_str_char(c, out);
                }
                0x00..=0x1f => return Err(MALFORMED.into()),
                // Latin-1: every other byte is the code point of the same value.
                _ => write_str_char(char::from(b), out),
            }
        }
        out.push('"');
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, Stop> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = char::from(self.next()?).to_digit(16).ok_or(MALFORMED)?;
            v = v * 16 + d;
        }
        Ok(v)
    }

    fn unicode_escape(&mut self) -> Result<char, Stop> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) {
            // A high surrogate must be followed by an escaped low one.
            self.expect(b"\\u")?;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(MALFORMED.into());
            }
            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            return char::from_u32(c).ok_or_else(|| MALFORMED.into());
        }
        if (0xDC00..0xE000).contains(&hi) {
            return Err(MALFORMED.into());
        }
        char::from_u32(hi).ok_or_else(|| MALFORMED.into())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self, out: &mut String) -> Result<(), Stop> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        let n = self.digits();
        if n == 0 || (n > 1 && self.bytes.get(int_start) == Some(&b'0')) {
            return Err(MALFORMED.into());
        }
        let mut is_float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(MALFORMED.into());
            }
            is_float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(MALFORMED.into());
            }
            is_float = true;
        }
        let text = std::str::from_utf8(self.bytes.get(start..self.pos).unwrap_or_default())
            .map_err(|_| MALFORMED)?;
        if is_float {
            let f: f64 = text.parse().map_err(|_| MALFORMED)?;
            write_float(f, out).map_err(|_| MALFORMED)?;
        } else {
            let digits = text.get(usize::from(negative)..).unwrap_or_default();
            if digits == "0" {
                out.push('0');
            } else {
                out.push_str(text);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse_json, python_json};

    fn slow(bytes: &[u8]) -> Result<String, VerifyError> {
        parse_json(bytes, 16)
            .and_then(|v| python_json(&v).map_err(|_| VerifyError::Malformed("json")))
    }

    fn fast(bytes: &[u8]) -> Result<String, Stop> {
        let mut out = String::new();
        canonicalize(bytes, 16, &mut out).map(|()| out)
    }

    #[test]
    fn agrees_with_the_value_path() {
        let cases: &[&[u8]] = &[
            b"{}",
            b"[]",
            b" { \"a\" : [ 1 , 2.50 , -0 , -0.0 , 1e2 , 1E-7 , 123456789012345678901234567890 ] } ",
            b"{\"k\":\"\\u00E9\\ud83c\\udf89\\/\\b\\f\\n\\r\\t\\\"\\\\\"}",
            b"\"caf\xe9 \x7f \x80\"",
            b"[true,false,null,\"\"]",
            b"{\"a\":{\"b\":{\"c\":[[[]]]}}}",
            b"1e400",
            b"-1e400",
            b"0.1",
            b"[1,]",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"01",
            b"1.",
            b".5",
            b"-",
            b"1e",
            b"NaN",
            b"Infinity",
            b"\"\\ud800\"",
            b"\"\\udc00\"",
            b"\"\\ud800\\u0041\"",
            b"\"\x01\"",
            b"\"abc",
            b"[1] x",
            b"",
            b"tru",
            b"\"\\x\"",
            b"{\"a\":1}{",
            b"[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]",
        ];
        for c in cases {
            let want = slow(c);
            let got = fast(c).map_err(|e| match e {
                Stop::Invalid(e) => e,
                Stop::DuplicateKey => panic!("no duplicates here"),
            });
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(c));
        }
    }

    #[test]
    fn duplicate_keys_defer_to_the_value_path() {
        assert_eq!(fast(b"{\"a\":1,\"a\":2}"), Err(Stop::DuplicateKey));
        assert_eq!(fast(b"{\"a\":1,\"\\u0061\":2}"), Err(Stop::DuplicateKey));
        assert!(fast(b"{\"a\":{\"a\":1}}").is_ok());
    }
}
