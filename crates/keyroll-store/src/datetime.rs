//! Django's text form of a datetime in SQLite (`str(naive_utc_datetime)`),
//! written and read back exactly, and a form that compares as text in time order.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Django's text for a datetime (`str(naive_utc_datetime)`):
/// `YYYY-MM-DD HH:MM:SS`, then `.ffffff` unless the microseconds are zero.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // SQLite writes; MySQL only reads text
pub(crate) fn django_datetime(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    let base = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    match t.microsecond() {
        0 => base,
        us => format!("{base}.{us:06}"),
    }
}

/// `now` for text comparisons: always six fraction digits, so that a stored
/// `…:SS` (Django's whole-second form) compares as `…:SS.000000` would.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // SQLite writes; MySQL only reads text
pub(crate) fn compare_datetime(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Parses what Django's `parse_datetime` accepts: `YYYY-MM-DD[ T]HH:MM[:SS[.f…]]`
/// with an optional `Z` / `±HH[:MM]` offset; no offset means UTC.
pub(crate) fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    let mut p = Parser {
        s: s.trim().as_bytes(),
        i: 0,
    };
    let year = p.digits(4, 4)?;
    p.expect(b'-')?;
    let month = p.digits(1, 2)?;
    p.expect(b'-')?;
    let day = p.digits(1, 2)?;
    if !(p.eat(b' ') || p.eat(b'T')) {
        return None;
    }
    let hour = p.digits(1, 2)?;
    p.expect(b':')?;
    let minute = p.digits(1, 2)?;
    let mut second = 0;
    let mut micro = 0;
    if p.eat(b':') {
        second = p.digits(1, 2)?;
        if p.eat(b'.') || p.eat(b',') {
            let start = p.i;
            let frac = p.digits(1, 12)?;
            let n = p.i - start;
            micro = if n >= 6 {
                frac / 10u64.pow(u32::try_from(n - 6).ok()?)
            } else {
                frac * 10u64.pow(u32::try_from(6 - n).ok()?)
            };
        }
    }
    while p.eat(b' ') {}
    let offset = if p.eat(b'Z') {
        UtcOffset::UTC
    } else if p.peek() == Some(b'+') || p.peek() == Some(b'-') {
        let negative = p.peek() == Some(b'-');
        p.i += 1;
        let h = p.digits(2, 2)?;
        let _ = p.eat(b':');
        let m = if p.peek().is_some_and(|c| c.is_ascii_digit()) {
            p.digits(2, 2)?
        } else {
            0
        };
        let secs = i32::try_from(h * 3600 + m * 60).ok()?;
        UtcOffset::from_whole_seconds(if negative { -secs } else { secs }).ok()?
    } else {
        UtcOffset::UTC
    };
    if p.i != p.s.len() {
        return None;
    }
    let date = Date::from_calendar_date(
        i32::try_from(year).ok()?,
        Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let time = Time::from_hms_micro(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        u32::try_from(micro).ok()?,
    )
    .ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset)
            .to_offset(UtcOffset::UTC),
    )
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        self.eat(c).then_some(())
    }

    /// `min..=max` ASCII digits as a number.
    fn digits(&mut self, min: usize, max: usize) -> Option<u64> {
        let mut n: u64 = 0;
        let mut count = 0;
        while count < max {
            match self.peek() {
                Some(c) if c.is_ascii_digit() => {
                    n = n * 10 + u64::from(c - b'0');
                    self.i += 1;
                    count += 1;
                }
                _ => break,
            }
        }
        (count >= min).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn writes_what_django_writes() {
        assert_eq!(
            django_datetime(datetime!(2026-01-02 03:04:05 UTC)),
            "2026-01-02 03:04:05"
        );
        assert_eq!(
            django_datetime(datetime!(2026-01-02 03:04:05.000007 UTC)),
            "2026-01-02 03:04:05.000007"
        );
        assert_eq!(
            django_datetime(datetime!(2026-01-02 03:04:05.5 +01:00)),
            "2026-01-02 02:04:05.500000"
        );
        assert_eq!(
            compare_datetime(datetime!(2026-01-02 03:04:05 UTC)),
            "2026-01-02 03:04:05.000000"
        );
    }

    #[test]
    fn reads_what_django_writes() {
        let t = datetime!(2026-01-02 03:04:05.123456 UTC);
        for s in [
            "2026-01-02 03:04:05.123456",
            "2026-01-02T03:04:05.123456",
            "2026-01-02 03:04:05.123456+00:00",
            "2026-01-02 03:04:05.123456Z",
            "2026-01-02 04:04:05.123456+01:00",
            "2026-01-02 03:04:05.1234569",
        ] {
            assert_eq!(parse_datetime(s), Some(t), "{s}");
        }
        assert_eq!(
            parse_datetime("2026-01-02 03:04:05"),
            Some(datetime!(2026-01-02 03:04:05 UTC))
        );
        assert_eq!(
            parse_datetime("2026-01-02 03:04"),
            Some(datetime!(2026-01-02 03:04 UTC))
        );
        assert_eq!(
            parse_datetime("2026-01-02 03:04:05.5"),
            Some(datetime!(2026-01-02 03:04:05.5 UTC))
        );
        for bad in [
            "",
            "2026-01-02",
            "2026-13-02 03:04:05",
            "2026-01-02 03:04:05x",
            "yesterday",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_order_matches_time_order() {
        let base = datetime!(2026-01-02 03:04:05 UTC);
        let times = [
            base - time::Duration::seconds(1),
            base - time::Duration::microseconds(1),
            base,
            base + time::Duration::microseconds(1),
            base + time::Duration::milliseconds(500),
            base + time::Duration::seconds(1),
        ];
        for a in times {
            for b in times {
                // stored (Django's form) vs now (comparison form)
                assert_eq!(django_datetime(a) > compare_datetime(b), a > b, "{a} > {b}");
                assert_eq!(
                    django_datetime(a) <= compare_datetime(b),
                    a <= b,
                    "{a} <= {b}"
                );
            }
        }
    }
}
