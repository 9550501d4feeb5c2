//! Device access-token patterns such as `dev-{index:05}`: one token per device index, shared by the scenario
//! (which devices exist) and the embedded server (which tokens it accepts).

use std::fmt;

/// A token pattern: literal text around exactly one `{index}` or `{index:WIDTH}` placeholder
/// (WIDTH zero-pads, as in `{index:05}`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenPattern {
    prefix: String,
    width: usize,
    suffix: String,
}

/// Why a token pattern is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenPatternError {
    /// No `{index}` placeholder: every device would get the same token.
    #[error(
        "token pattern `{0}` has no {{index}} placeholder, so every device would share one token"
    )]
    NoPlaceholder(String),
    /// More than one placeholder, or a placeholder we do not know.
    #[error(
        "token pattern `{0}` must contain exactly one {{index}} or {{index:WIDTH}} placeholder"
    )]
    BadPlaceholder(String),
    /// Characters that cannot appear in a URI path segment unescaped.
    #[error("token pattern `{0}` contains `/`, `?`, `#` or whitespace, which cannot stand in a path segment")]
    BadCharacter(String),
}

impl TokenPattern {
    pub fn parse(pattern: &str) -> Result<Self, TokenPatternError> {
        if pattern
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#') || c.is_whitespace())
        {
            return Err(TokenPatternError::BadCharacter(pattern.into()));
        }
        let Some(open) = pattern.find('{') else {
            return Err(TokenPatternError::NoPlaceholder(pattern.into()));
        };
        let bad = || TokenPatternError::BadPlaceholder(pattern.into());
        let close = pattern[open..].find('}').ok_or_else(bad)? + open;
        let inner = &pattern[open + 1..close];
        let width = match inner.strip_prefix("index") {
            Some("") => 0,
            Some(spec) => spec
                .strip_prefix(':')
                .and_then(|w| w.parse::<usize>().ok())
                .filter(|w| *w <= 20)
                .ok_or_else(bad)?,
            None => return Err(bad()),
        };
        let suffix = &pattern[close + 1..];
        if suffix.contains(['{', '}']) || pattern[..open].contains('}') {
            return Err(bad());
        }
        Ok(TokenPattern {
            prefix: pattern[..open].into(),
            width,
            suffix: suffix.into(),
        })
    }

    /// The token of device `index`.
    pub fn token(&self, index: u64) -> String {
        format!(
            "{}{:0width$}{}",
            self.prefix,
            index,
            self.suffix,
            width = self.width
        )
    }

    /// The device index a token stands for, if the pattern can produce it (the exact inverse of
    /// [`Self::token`]).
    pub fn index_of(&self, token: &str) -> Option<u64> {
        let digits = token
            .strip_prefix(self.prefix.as_str())?
            .strip_suffix(self.suffix.as_str())?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let index: u64 = digits.parse().ok()?;
        (self.token(index) == token).then_some(index)
    }
}

impl fmt::Display for TokenPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.width == 0 {
            write!(f, "{}{{index}}{}", self.prefix, self.suffix)
        } else {
            write!(f, "{}{{index:0{}}}{}", self.prefix, self.width, self.suffix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_inverts() {
        let p = TokenPattern::parse("dev-{index:05}").unwrap();
        assert_eq!(p.token(7), "dev-00007");
        assert_eq!(p.token(123456), "dev-123456");
        assert_eq!(p.index_of("dev-00007"), Some(7));
        assert_eq!(p.index_of("dev-7"), None, "not what the pattern renders");
        assert_eq!(p.index_of("dev-0000x"), None);
        assert_eq!(p.index_of("other-00007"), None);
        let q = TokenPattern::parse("A{index}Z").unwrap();
        assert_eq!(q.token(42), "A42Z");
        assert_eq!(q.index_of("A42Z"), Some(42));
        assert_eq!(q.index_of("A042Z"), None);
        assert_eq!(p.to_string(), "dev-{index:05}");
        assert_eq!(q.to_string(), "A{index}Z");
    }

    #[test]
    fn rejects_bad_patterns() {
        assert!(matches!(
            TokenPattern::parse("fixed"),
            Err(TokenPatternError::NoPlaceholder(_))
        ));
        for bad in [
            "{idx}",
            "{index:x}",
            "{index}{index}",
            "a{index",
            "}{index}",
        ] {
            assert!(
                matches!(
                    TokenPattern::parse(bad),
                    Err(TokenPatternError::BadPlaceholder(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            TokenPattern::parse("a/{index}"),
            Err(TokenPatternError::BadCharacter(_))
        ));
    }
}
