//! JSON as Django writes it (Python's `json.dumps(obj, separators=(",", ":"))`)
//! and a depth-limited reader.

use serde_json::{Map, Number, Value};

use crate::error::{Limit, SignError, VerifyError};

/// Serializes `value` exactly as Python's `json.dumps(value, separators=(",", ":"))`:
/// no spaces, keys in insertion order, everything outside printable ASCII
/// escaped as `\uXXXX` (lower-case hex, surrogate pairs above U+FFFF), floats
/// in Python's `repr` form.
///
/// ```
/// use serde_json::json;
/// let text = keyroll::python_json(&json!({"a": [1, 2.5, "é😀"], "b": null})).expect("json");
/// assert_eq!(text, r#"{"a":[1,2.5,"\u00e9\ud83d\ude00"],"b":null}"#);
/// ```
///
/// # Errors
/// [`SignError::Unserializable`] for a number that is neither an integer nor a float.
pub fn python_json(value: &Value) -> Result<String, SignError> {
    let mut out = String::with_capacity(64);
    write_value(value, &mut out)?;
    Ok(out)
}

/// [`python_json`], appended to `out` (reuse one buffer over many values).
///
/// # Errors
/// As [`python_json`]; `out` may then hold a partial value.
pub fn python_json_into(value: &Value, out: &mut String) -> Result<(), SignError> {
    write_value(value, out)
}

fn write_value(value: &Value, out: &mut String) -> Result<(), SignError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_map(map, out)?,
    }
    Ok(())
}

fn write_map(map: &Map<String, Value>, out: &mut String) -> Result<(), SignError> {
    out.push('{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(k, out);
        out.push(':');
        write_value(v, out)?;
    }
    out.push('}');
    Ok(())
}

fn write_number(n: &Number, out: &mut String) -> Result<(), SignError> {
    // With `arbitrary_precision`, the number keeps its source text.
    let text = n.to_string();
    let is_int = !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    if is_int {
        let digits = text.strip_prefix('-').unwrap_or(&text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SignError::Unserializable("number"));
        }
        let trimmed = digits.trim_start_matches('0');
        if trimmed.is_empty() {
            out.push('0');
        } else {
            if text.starts_with('-') {
                out.push('-');
            }
            out.push_str(trimmed);
        }
        return Ok(());
    }
    let f: f64 = text
        .parse()
        .map_err(|_| SignError::Unserializable("number"))?;
    write_float(f, out)
}

/// Python's `float.__repr__` (as `json.dumps` writes floats).
///
/// Non-finite values (a literal like `1e400` overflows to infinity) are
/// refused: Python would write `Infinity`, which no JSON reader here accepts,
/// so keyroll never signs what it could not load back.
pub(crate) fn write_float(f: f64, out: &mut String) -> Result<(), SignError> {
    if !f.is_finite() {
        return Err(SignError::Unserializable("non-finite float"));
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0.0" } else { "0.0" });
        return Ok(());
    }
    // Shortest round-trip digits and exponent, from Rust's `{:e}`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if f < 0.0 {
        out.push('-');
    }
    if !(-4..16).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let point = exp as usize + 1;
        if digits.len() <= point {
            out.push_str(&digits);
            for _ in digits.len()..point {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            let (int, frac) = digits.split_at(point);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
    }
    Ok(())
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        write_str_char(c, out);
    }
    out.push('"');
}

/// One character of a string, escaped as Python's `json.dumps` (ASCII only) does.
pub(crate) fn write_str_char(c: char, out: &mut String) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        ' '..='~' => out.push(c),
        _ => {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(crate::crypto::hex_digit(((*u >> shift) & 15) as u8));
                }
            }
        }
    }
}

/// Parses JSON bytes as Django's serializer does: the bytes are decoded as
/// Latin-1 first (so any byte is a character), then parsed, refusing nesting
/// deeper than `max_depth` before the parser recurses.
///
/// # Errors
/// [`VerifyError::TooLarge`] with [`Limit::JsonDepth`]; [`VerifyError::Malformed`]
/// for anything that is not one JSON value.
pub fn parse_json(bytes: &[u8], max_depth: usize) -> Result<Value, VerifyError> {
    check_depth(bytes, max_depth)?;
    let text: std::borrow::Cow<'_, str> = if bytes.is_ascii() {
        // ASCII is valid UTF-8.
        std::borrow::Cow::Borrowed(
            std::str::from_utf8(bytes).map_err(|_| VerifyError::Malformed("json"))?,
        )
    } else {
        std::borrow::Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect())
    };
    let mut de = serde_json::Deserializer::from_str(&text);
    // The depth was checked above, so the parser's own recursion limit can go.
    de.disable_recursion_limit();
    let value =
        serde::Deserialize::deserialize(&mut de).map_err(|_| VerifyError::Malformed("json"))?;
    de.end().map_err(|_| VerifyError::Malformed("json"))?;
    Ok(value)
}

/// Refuses nesting deeper than `max_depth` (strings are skipped correctly).
pub(crate) fn check_depth(bytes: &[u8], max_depth: usize) -> Result<(), VerifyError> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for &b in bytes {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Err(VerifyError::TooLarge {
                        limit: Limit::JsonDepth,
                        max: max_depth,
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn float(f: f64) -> String {
        let mut s = String::new();
        write_float(f, &mut s).expect("finite");
        s
    }

    #[test]
    fn floats_as_python_repr() {
        let cases = [
            (0.1, "0.1"),
            (1.0, "1.0"),
            (1.5, "1.5"),
            (-2.25, "-2.25"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (1.2345e15, "1234500000000000.0"),
            (1e22, "1e+22"),
            (1e-7, "1e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-10, "1.5e-10"),
            (123456789.123, "123456789.123"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-0.0, "-0.0"),
        ];
        for (f, want) in cases {
            assert_eq!(float(f), want, "{f:e}");
        }
    }

    #[test]
    fn strings_escape_like_python() {
        let v = json!(["a\"b\\c\n\r\t\u{8}\u{c}\u{1}\u{7f}", "é", "𝄞", "/"]);
        assert_eq!(
            python_json(&v).expect("json"),
            r#"["a\"b\\c\n\r\t\b\f\u0001\u007f","\u00e9","\ud834\udd1e","/"]"#
        );
    }

    #[test]
    fn integers_keep_their_digits() {
        let v: Value = serde_json::from_str("[123456789012345678901234567890,-5,0]").expect("json");
        assert_eq!(
            python_json(&v).expect("json"),
            "[123456789012345678901234567890,-5,0]"
        );
        let v: Value = serde_json::from_str("[-0, 1.0e2]").expect("json");
        assert_eq!(python_json(&v).expect("json"), "[0,100.0]");
    }

    #[test]
    fn depth_is_limited_before_parsing() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        assert_eq!(
            parse_json(deep.as_bytes(), 128),
            Err(VerifyError::TooLarge {
                limit: Limit::JsonDepth,
                max: 128
            })
        );
        let ok = "[".repeat(128) + &"]".repeat(128);
        assert!(parse_json(ok.as_bytes(), 128).is_ok());
        // Brackets inside strings do not count.
        assert!(parse_json(br#"["[[[[[[\"[[["]"#, 2).is_ok());
    }

    #[test]
    fn latin1_bytes_parse_as_django_does() {
        assert_eq!(parse_json(b"\"\xe9\"", 4).expect("json"), json!("é"));
        assert_eq!(parse_json(b"{} x", 4), Err(VerifyError::Malformed("json")));
        assert_eq!(parse_json(b" {} ", 4).expect("json"), json!({}));
    }
}
