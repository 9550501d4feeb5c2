//! Variables in scenario files: `${KEY}` takes the value of `run -e KEY=VALUE`, `${ENV:NAME}` the environment
//! variable NAME (CI secrets), `$${` stands for a literal `${`. Substituted in the text before it is parsed,
//! line by line, so lines keep their numbers; each substitution is remembered so that an error located inside
//! one names the variable the value came from, at the column of the `${` in the file as written.

use std::collections::HashMap;

/// Where a substituted value came from, and where it stands in the file as written and in the result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Substitution {
    /// 1-based line.
    pub line: usize,
    /// 1-based column of the `${` in the file as written.
    pub column: usize,
    /// 1-based columns `[start, end)` the value covers in the substituted line.
    pub span: (usize, usize),
    /// How the value is named in errors: `-e TOKEN` or `${ENV:TB_TOKEN}`.
    pub origin: String,
}

/// The text with every variable replaced, and the record of what was replaced where.
#[derive(Clone, Debug, Default)]
pub struct Substituted {
    pub text: String,
    pub subs: Vec<Substitution>,
}

/// A variable that cannot be replaced: 1-based line and column of its `${`, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses one `-e KEY=VALUE`.
pub fn parse_var(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    if !valid_name(k) {
        return Err(format!(
            "`{k}` is not a variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

fn valid_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces `${KEY}` from `vars` and `${ENV:NAME}` from `env` in every line that is not a comment. A value is
/// escaped for the quotes it stands in (`"..."` or `'...'`); in a plain scalar it is inserted as it is. A value
/// holding a line break is refused (it would move every line after it).
pub fn substitute(
    text: &str,
    vars: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Substituted, VarError> {
    if !text.contains('$') {
        return Ok(Substituted {
            text: text.to_string(),
            subs: Vec::new(),
        });
    }
    let vars: HashMap<&str, &str> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut out = String::with_capacity(text.len());
    let mut subs = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') || !line.contains('$') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        let mut done = String::with_capacity(line.len());
        let mut col = 1usize;
        while let Some(i) = rest.find('$') {
            done.push_str(&rest[..i]);
            col += rest[..i].chars().count();
            let after = &rest[i..];
            if let Some(tail) = after.strip_prefix("$${") {
                done.push_str("${");
                col += 3;
                rest = tail;
                continue;
            }
            let Some(body) = after.strip_prefix("${") else {
                done.push('$');
                col += 1;
                rest = &after[1..];
                continue;
            };
            let at = |message: String| VarError {
                line: n + 1,
                column: col,
                message,
            };
            let close = body.find('}').ok_or_else(|| {
                at("`${` is not closed by `}` (write `$${` for a literal `${`)".into())
            })?;
            let name = &body[..close];
            let (value, origin) = match name.strip_prefix("ENV:") {
                Some(var) if valid_name(var) => (
                    env(var).ok_or_else(|| {
                        at(format!("`${{{name}}}`: the environment variable {var} is not set"))
                    })?,
                    format!("${{{name}}}"),
                ),
                _ if valid_name(name) => (
                    vars.get(name).map(|v| v.to_string()).ok_or_else(|| {
                        at(format!(
                            "`${{{name}}}` is not defined: pass -e {name}=VALUE (or write ${{ENV:{name}}} to read the environment)"
                        ))
                    })?,
                    format!("-e {name}"),
                ),
                _ => {
                    return Err(at(format!(
                        "`${{{name}}}` is not a variable: write ${{NAME}} (from -e NAME=VALUE) or ${{ENV:NAME}}"
                    )))
                }
            };
            if value.contains(['\n', '\r']) {
                return Err(at(format!(
                    "`${{{name}}}`: the value of {origin} holds a line break, which cannot stand in one scenario value"
                )));
            }
            let escaped = escape(&value, quote_context(&done));
            let start = done.chars().count() + 1;
            done.push_str(&escaped);
            subs.push(Substitution {
                line: n + 1,
                column: col,
                span: (start, done.chars().count() + 1),
                origin,
            });
            col += name.chars().count() + 3;
            rest = &body[close + 1..];
        }
        done.push_str(rest);
        out.push_str(&done);
    }
    Ok(Substituted { text: out, subs })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    Plain,
    Double,
    Single,
}

/// Whether the end of `before` (a line up to a `${`) is inside a double- or single-quoted scalar.
fn quote_context(before: &str) -> Quote {
    let mut q = Quote::Plain;
    let mut chars = before.chars().peekable();
    while let Some(c) = chars.next() {
        match (q, c) {
            (Quote::Plain, '"') => q = Quote::Double,
            (Quote::Plain, '\'') => q = Quote::Single,
            (Quote::Double, '\\') => {
                chars.next();
            }
            (Quote::Double, '"') => q = Quote::Plain,
            (Quote::Single, '\'') if chars.peek() == Some(&'\'') => {
                chars.next();
            }
            (Quote::Single, '\'') => q = Quote::Plain,
            _ => {}
        }
    }
    q
}

fn escape(value: &str, q: Quote) -> String {
    match q {
        Quote::Plain => value.to_string(),
        Quote::Double => value.replace('\\', "\\\\").replace('"', "\\\""),
        Quote::Single => value.replace('\'', "''"),
    }
}

impl Substituted {
    /// The substitution covering `(line, column)` of the substituted text, if any.
    pub fn at(&self, line: usize, column: usize) -> Option<&Substitution> {
        self.subs
            .iter()
            .find(|s| s.line == line && s.span.0 <= column && column < s.span.1.max(s.span.0 + 1))
    }

    /// The first substitution on `line`, if any (for errors located at the start of a value's line).
    pub fn on_line(&self, line: usize) -> Option<&Substitution> {
        self.subs.iter().find(|s| s.line == line)
    }

    /// Maps a column of the substituted `line` back to the file as written.
    pub fn original_column(&self, line: usize, column: usize) -> usize {
        let mut shift: isize = 0;
        for s in self.subs.iter().filter(|s| s.line == line) {
            if column >= s.span.1 {
                let written = s.origin_len() as isize;
                shift += written - (s.span.1 - s.span.0) as isize;
            } else if column >= s.span.0 {
                return s.column;
            }
        }
        (column as isize + shift).max(1) as usize
    }
}

impl Substitution {
    /// How many characters the `${...}` takes in the file as written.
    fn origin_len(&self) -> usize {
        match self.origin.strip_prefix("-e ") {
            Some(name) => name.chars().count() + 3,
            None => self.origin.chars().count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "TB_TOKEN").then(|| "s3cr\"et".to_string())
    }

    fn vars() -> Vec<(String, String)> {
        vec![
            ("HOST".into(), "tb.example".into()),
            ("N".into(), "12".into()),
        ]
    }

    #[test]
    fn replaces_keys_and_environment_variables_keeping_lines() {
        let text = "target: coaps://${HOST}:5684\n# ${NOT_A_VAR} in a comment\ndevices:\n  count: ${N}\n  token: \"${ENV:TB_TOKEN}\"\n  other: 'it''s ${HOST}'\nprice: $$5 and $${HOST}\n";
        let s = substitute(text, &vars(), &env).unwrap();
        assert_eq!(
            s.text,
            "target: coaps://tb.example:5684\n# ${NOT_A_VAR} in a comment\ndevices:\n  count: 12\n  token: \"s3cr\\\"et\"\n  other: 'it''s tb.example'\nprice: $$5 and ${HOST}\n"
        );
        assert_eq!(s.subs.len(), 4);
        assert_eq!(s.subs[0].origin, "-e HOST");
        assert_eq!((s.subs[0].line, s.subs[0].column), (1, 17));
        assert_eq!(s.subs[2].origin, "${ENV:TB_TOKEN}");
        // `count: 12`: the value's columns map back to the `${` in the file.
        assert_eq!(s.at(4, 10).unwrap().origin, "-e N");
        assert_eq!(s.original_column(4, 10), 10);
        // After the value, columns shift back by the difference in length.
        assert_eq!(s.original_column(1, 28), 25);
    }

    #[test]
    fn rejects_undefined_unclosed_and_multiline_values_naming_the_place() {
        let e = substitute("a: 1\nb: ${MISSING}\n", &vars(), &env).unwrap_err();
        assert_eq!((e.line, e.column), (2, 4));
        assert!(e.message.contains("-e MISSING=VALUE"), "{}", e.message);
        let e = substitute("b: x ${ENV:NOPE_NOT_SET}\n", &[], &env).unwrap_err();
        assert_eq!((e.line, e.column), (1, 6));
        assert!(
            e.message.contains("NOPE_NOT_SET is not set"),
            "{}",
            e.message
        );
        let e = substitute("b: ${HOST\n", &vars(), &env).unwrap_err();
        assert!(e.message.contains("not closed"), "{}", e.message);
        let e = substitute("b: ${a-b}\n", &vars(), &env).unwrap_err();
        assert!(e.message.contains("not a variable"), "{}", e.message);
        let e = substitute("b: ${X}\n", &[("X".into(), "1\n2".into())], &env).unwrap_err();
        assert!(e.message.contains("line break"), "{}", e.message);
    }

    #[test]
    fn parses_key_value_pairs() {
        assert_eq!(parse_var("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_var("A="), Ok(("A".into(), String::new())));
        assert!(parse_var("A").is_err());
        assert!(parse_var("1A=x").is_err());
        assert!(parse_var("A-B=x").is_err());
    }
}
