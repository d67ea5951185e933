//! Protocol version negotiation: the highest version both ends speak.

use std::fmt;
use std::str::FromStr;

/// The version this crate implements.
pub const PROTOCOL_VERSION: Version = Version { major: 1, minor: 0 };

/// Every version this crate can speak, lowest first.
pub const SUPPORTED_VERSIONS: &[Version] = &[PROTOCOL_VERSION];

/// A protocol version, `MAJOR.MINOR`. Minor versions of one major are
/// backward compatible; majors are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Incompatible revisions.
    pub major: u16,
    /// Compatible additions.
    pub minor: u16,
}

/// Why no common version was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NegotiationError {
    /// The peers share no major version (`VERSION_UNSUPPORTED`).
    #[error("no common protocol version: peer offers [{offered}], this end speaks [{supported}]")]
    Unsupported {
        /// What the peer offered, comma-separated.
        offered: String,
        /// What this end speaks, comma-separated.
        supported: String,
    },
    /// A version string is not `MAJOR.MINOR`.
    #[error("malformed protocol version `{0}`: expected MAJOR.MINOR, e.g. 1.0")]
    Malformed(String),
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for Version {
    type Err = NegotiationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || NegotiationError::Malformed(s.to_owned());
        // "1" means "1.0"; a patch part ("1.0.3") does not change the wire.
        let mut parts = s.trim().split('.');
        let major = parts.next().and_then(number).ok_or_else(malformed)?;
        let minor = match parts.next() {
            Some(p) => number(p).ok_or_else(malformed)?,
            None => 0,
        };
        if let Some(patch) = parts.next() {
            number::<u32>(patch).ok_or_else(malformed)?;
        }
        if parts.next().is_some() {
            return Err(malformed());
        }
        Ok(Self { major, minor })
    }
}

/// A version part: decimal digits only (`str::parse` alone would also take
/// a sign, as in "+1").
fn number<T: FromStr>(part: &str) -> Option<T> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Picks the highest version both sides speak.
///
/// Within each shared major the lower of the two sides' highest minors is
/// usable (minors are backward compatible); the highest of those wins, so an
/// exact common version is always found.
/// No shared major is [`NegotiationError::Unsupported`]: the caller answers
/// `VERSION_UNSUPPORTED` instead of waiting for a frame that never comes.
pub fn negotiate(offered: &[Version], supported: &[Version]) -> Result<Version, NegotiationError> {
    offered
        .iter()
        .filter_map(|o| {
            let ours = supported.iter().filter(|s| s.major == o.major).max()?;
            Some((*o).min(*ours))
        })
        .max()
        .ok_or_else(|| NegotiationError::Unsupported {
            offered: join(offered),
            supported: join(supported),
        })
}

fn join(versions: &[Version]) -> String {
    versions
        .iter()
        .map(Version::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Version {
    /// Parses a list of version strings, e.g. the `GTL-Version: 1.0, 1.1` header.
    ///
    /// Each item may itself be a comma-separated list (one header line).
    /// Empty elements (`"1.0,"`, `"1.0, , 1.1"`) are skipped.
    pub fn parse_list<'a>(
        versions: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<Self>, NegotiationError> {
        //= spec#7
        //# A recipient MUST ignore empty list elements (`1.0,` or
        //# `1.0, , 1.1`), as RFC 9110 §5.6.1 requires.
        versions
            .into_iter()
            .flat_map(|v| v.split(','))
            .filter(|v| !v.trim().is_empty())
            .map(str::parse)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn seeds_example_picks_highest_common() {
        // Client: 1.0; server: 1.0, 1.1 → 1.0.
        assert_eq!(negotiate(&[v("1.0")], &[v("1.0"), v("1.1")]), Ok(v("1.0")));
        assert_eq!(
            negotiate(&[v("1.0"), v("1.1")], &[v("1.0"), v("1.1")]),
            Ok(v("1.1"))
        );
    }

    #[test]
    fn newer_minor_falls_back_within_major() {
        assert_eq!(negotiate(&[v("1.3")], &[v("1.0"), v("1.1")]), Ok(v("1.1")));
        assert_eq!(negotiate(&[v("1.0")], &[v("1.2")]), Ok(v("1.0")));
    }

    #[test]
    fn unknown_major_is_unsupported() {
        let err = negotiate(&[v("2.0")], SUPPORTED_VERSIONS).unwrap_err();
        assert!(matches!(err, NegotiationError::Unsupported { .. }));
        assert!(err.to_string().contains("2.0"));
        assert!(negotiate(&[], SUPPORTED_VERSIONS).is_err());
    }

    #[test]
    fn parses_header_lists() {
        assert_eq!(
            Version::parse_list(["1.0, 1.1"]).unwrap(),
            vec![v("1.0"), v("1.1")]
        );
        assert_eq!(v("1"), v("1.0"));
        assert_eq!(v("1.0.7"), v("1.0"));
        assert!("one".parse::<Version>().is_err());
        assert!("1.x".parse::<Version>().is_err());
        assert!("1.0.0.0".parse::<Version>().is_err());
    }

    #[test]
    fn header_lists_skip_empty_elements() {
        // RFC 9110 §5.6.1: a recipient accepts and ignores empty elements.
        assert_eq!(Version::parse_list(["1.0,"]).unwrap(), vec![v("1.0")]);
        assert_eq!(
            Version::parse_list(["1.0, , 1.1", ",", "", " ,1.2"]).unwrap(),
            vec![v("1.0"), v("1.1"), v("1.2")]
        );
        assert_eq!(Version::parse_list([" , "]).unwrap(), vec![]);
        assert!(Version::parse_list(["1.0, x"]).is_err());
    }

    #[test]
    fn signs_are_malformed() {
        for s in ["+1.+0", "+1.0", "1.+0", "-1.0", "1.-0", "1.0.+7", "1.0.-7"] {
            assert!(s.parse::<Version>().is_err(), "{s}");
            assert!(Version::parse_list([s]).is_err(), "{s}");
        }
    }
}
