//! Which device access tokens the embedded server accepts: any, those a pattern produces, or a list read from a
//! file.

use super::ServerError;
use crate::token::TokenPattern;
use std::collections::HashSet;
use std::fmt;
use std::path::Path;

/// The server's token policy. A request whose token the policy rejects is answered 4.01 Unauthorized, as
/// ThingsBoard answers an unknown access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenPolicy {
    /// Every token is a device (created on its first request).
    Any,
    /// The tokens `pattern` renders for indices `0..count`, and nothing else.
    Pattern { pattern: TokenPattern, count: u64 },
    /// Exactly these tokens.
    List(HashSet<String>),
}

impl TokenPolicy {
    /// Whether `token` names a device.
    pub fn accepts(&self, token: &str) -> bool {
        match self {
            TokenPolicy::Any => true,
            TokenPolicy::Pattern { pattern, count } => {
                pattern.index_of(token).is_some_and(|i| i < *count)
            }
            TokenPolicy::List(tokens) => tokens.contains(token),
        }
    }

    /// Reads a token list: one token per line; blank lines and lines starting with `#` are ignored, and
    /// surrounding whitespace is trimmed. Errors name the file (and the line, for a token that cannot stand
    /// in a URI path segment).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ServerError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::TokenFile {
            path: path.to_path_buf(),
            source,
        })?;
        let tokens = parse_list(&text).map_err(|(line, text)| ServerError::TokenFileLine {
            path: path.to_path_buf(),
            line,
            text,
        })?;
        if tokens.is_empty() {
            return Err(ServerError::EmptyTokenFile {
                path: path.to_path_buf(),
            });
        }
        Ok(TokenPolicy::List(tokens))
    }
}

/// Parses a token list's text; on a bad line, its 1-based number and content.
pub(crate) fn parse_list(text: &str) -> Result<HashSet<String>, (usize, String)> {
    let mut tokens = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let token = line.trim();
        if token.is_empty() || token.starts_with('#') {
            continue;
        }
        if token
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '?'))
        {
            return Err((n + 1, token.to_string()));
        }
        tokens.insert(token.to_string());
    }
    Ok(tokens)
}

impl fmt::Display for TokenPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenPolicy::Any => f.write_str("any token"),
            TokenPolicy::Pattern { pattern, count } => {
                write!(f, "{count} tokens of pattern {pattern}")
            }
            TokenPolicy::List(tokens) => write!(f, "{} listed tokens", tokens.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(count: u64) -> TokenPolicy {
        TokenPolicy::Pattern {
            pattern: TokenPattern::parse("dev-{index:05}").unwrap(),
            count,
        }
    }

    #[test]
    fn accepts_per_policy() {
        let list = TokenPolicy::List(["alpha".to_string(), "beta".to_string()].into());
        for (policy, token, accepted) in [
            (TokenPolicy::Any, "anything", true),
            (TokenPolicy::Any, "", true),
            (pattern(10), "dev-00000", true),
            (pattern(10), "dev-00009", true),
            (pattern(10), "dev-00010", false),
            (pattern(10), "dev-9", false),
            (pattern(10), "DEV-00001", false),
            (pattern(0), "dev-00000", false),
            (list.clone(), "alpha", true),
            (list.clone(), "beta", true),
            (list.clone(), "gamma", false),
            (list, "Alpha", false),
        ] {
            assert_eq!(policy.accepts(token), accepted, "{policy} / {token}");
        }
    }

    #[test]
    fn list_ignores_comments_blanks_and_whitespace() {
        let tokens = parse_list("# devices\n\n  A1 \nB2\r\n\t# indented comment\nC3\n").unwrap();
        let want: HashSet<String> = ["A1", "B2", "C3"].map(String::from).into();
        assert_eq!(tokens, want);
    }

    #[test]
    fn rejects_list_line_that_is_no_path_segment() {
        for (text, line) in [("ok\ntwo words\n", 2), ("a/b\n", 1), ("# c\n\nq?x\n", 3)] {
            let (n, bad) = parse_list(text).unwrap_err();
            assert_eq!(n, line, "{text:?}");
            assert!(text.contains(&bad));
        }
    }

    #[test]
    fn from_file_reads_and_names_the_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("tokens.txt");
        std::fs::write(&good, "t1\nt2\n").unwrap();
        let policy = TokenPolicy::from_file(&good).unwrap();
        assert!(policy.accepts("t2") && !policy.accepts("t3"));

        let missing = dir.path().join("absent.txt");
        let err = TokenPolicy::from_file(&missing).unwrap_err();
        assert!(matches!(err, ServerError::TokenFile { .. }));
        assert!(err.to_string().contains("absent.txt"), "{err}");

        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "# nothing\n").unwrap();
        let err = TokenPolicy::from_file(&empty).unwrap_err();
        assert!(matches!(err, ServerError::EmptyTokenFile { .. }));
        assert!(err.to_string().contains("empty.txt"), "{err}");

        let bad = dir.path().join("bad.txt");
        std::fs::write(&bad, "t1\nt 2\n").unwrap();
        let err = TokenPolicy::from_file(&bad).unwrap_err();
        assert!(err.to_string().contains("bad.txt:2"), "{err}");
    }
}
