//! The validity period of an X.509 certificate, read straight from its DER
//! (a pinned certificate is trusted by hash, so no chain verification
//! looks at its dates; this does).

/// `(notBefore, notAfter)` as Unix seconds, or `None` when the DER is not
/// a certificate this reader understands.
pub(crate) fn validity(der: &[u8]) -> Option<(i64, i64)> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { … }, … }
    let (cert, _) = element(der, 0x30)?;
    let (tbs, _) = element(cert, 0x30)?;
    let mut rest = tbs;
    // [0] EXPLICIT version, optional.
    if rest.first() == Some(&0xa0) {
        rest = skip(rest)?;
    }
    rest = skip(rest)?; // serialNumber
    rest = skip(rest)?; // signature AlgorithmIdentifier
    rest = skip(rest)?; // issuer Name
    let (validity, _) = element(rest, 0x30)?;
    let (not_before, after) = time(validity)?;
    let (not_after, _) = time(after)?;
    Some((not_before, not_after))
}

/// The content of the element at the start of `input` with tag `tag`, and
/// what follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let (len, header) = length(&input[1..])?;
    let start = 1 + header;
    let end = start.checked_add(len)?;
    Some((input.get(start..end)?, input.get(end..)?))
}

/// What follows the element at the start of `input`, whatever its tag.
fn skip(input: &[u8]) -> Option<&[u8]> {
    let tag = *input.first()?;
    element(input, tag).map(|(_, rest)| rest)
}

/// A DER length: its value and how many bytes it took.
fn length(input: &[u8]) -> Option<(usize, usize)> {
    let first = *input.first()?;
    if first < 0x80 {
        return Some((first.into(), 1));
    }
    let count = usize::from(first & 0x7f);
    if count == 0 || count > 4 {
        return None;
    }
    let mut len = 0usize;
    for byte in input.get(1..=count)? {
        len = (len << 8) | usize::from(*byte);
    }
    Some((len, 1 + count))
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as
/// Unix seconds, and what follows it.
fn time(input: &[u8]) -> Option<(i64, &[u8])> {
    let (text, year) = match input.first()? {
        0x17 => {
            let (text, rest) = element(input, 0x17)?;
            let yy = digits(text.get(0..2)?)?;
            // RFC 5280: 50..99 are 19xx, 00..49 are 20xx.
            let year = if yy >= 50 { 1900 + yy } else { 2000 + yy };
            ((text.get(2..)?, rest), year)
        }
        0x18 => {
            let (text, rest) = element(input, 0x18)?;
            ((text.get(4..)?, rest), digits(text.get(0..4)?)?)
        }
        _ => return None,
    };
    let (text, rest) = text;
    if text.len() != 11 || text[10] != b'Z' {
        return None;
    }
    let month = digits(&text[0..2])?;
    let day = digits(&text[2..4])?;
    let hour = digits(&text[4..6])?;
    let minute = digits(&text[6..8])?;
    let second = digits(&text[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some((days * 86_400 + hour * 3600 + minute * 60 + second, rest))
}

fn digits(text: &[u8]) -> Option<i64> {
    text.iter().try_fold(0i64, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 12, 2), 20_789);
    }

    #[test]
    fn reads_the_dates_rcgen_wrote() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2026, 11, 30);
        params.not_after = rcgen::date_time_ymd(2051, 12, 14);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (not_before, not_after) = validity(cert.der()).unwrap();
        assert_eq!(not_before, days_from_civil(2026, 11, 30) * 86_400);
        // After 2049 the date is a GeneralizedTime.
        assert_eq!(not_after, days_from_civil(2051, 12, 14) * 86_400);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(validity(&[]), None);
        assert_eq!(validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(validity(b"not DER at all"), None);
    }
}
