//! A linear pre-scan of scenario text that refuses nesting deeper than any scenario needs, before the text
//! reaches serde_yaml: 200 KB of `[[[[...` cost serde_yaml 42 s of CPU. It counts flow collections (`[`,
//! `{`) and block nesting (indentation levels plus `- ` entries opened on one line), skipping quoted
//! scalars, comments and block scalars (`|`, `>`), whose text is data.

/// The deepest nesting accepted; scenarios need fewer than ten levels.
pub const MAX_DEPTH: usize = 64;

/// Where the nesting first went deeper than [`MAX_DEPTH`]: line and column (1-based), and what nested.
#[derive(Debug, PartialEq, Eq)]
pub struct TooDeep {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Checks `text` in one pass; `Err` at the first place nesting exceeds [`MAX_DEPTH`].
pub fn check(text: &str) -> Result<(), TooDeep> {
    let too_deep = |line: usize, column: usize, what: &str| {
        TooDeep {
        line,
        column,
        message: format!(
            "{what} nested deeper than {MAX_DEPTH} levels; a scenario needs only a few (is the file generated?)"
        ),
    }
    };
    let mut flow = 0usize;
    // Open block indentation levels.
    let mut indents: Vec<usize> = Vec::new();
    // Inside a quoted scalar (which may span lines): the quote character.
    let mut quote: Option<char> = None;
    // Inside a block scalar: lines indented more than this belong to it.
    let mut block_scalar: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let indent = line.len() - line.trim_start_matches(' ').len();
        let blank = line.trim().is_empty();
        if let Some(parent) = block_scalar {
            if blank || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        if quote.is_none() && flow == 0 && !blank && !line.trim_start().starts_with('#') {
            while indents.last().is_some_and(|&i| i > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
            if indents.len() > MAX_DEPTH {
                return Err(too_deep(line_no, indent + 1, "indentation"));
            }
        }
        let mut dashes = 0usize;
        // Whether the next character starts a token (a value, a flow collection, a quoted scalar).
        let mut token_start = true;
        let mut escaped = false;
        let mut prev_space = true;
        for (col0, c) in line.char_indices() {
            let column = col0 + 1;
            if let Some(q) = quote {
                if escaped {
                    escaped = false;
                } else if q == '"' && c == '\\' {
                    escaped = true;
                } else if q == '\'' && c == '\'' && line[col0 + 1..].starts_with('\'') {
                    escaped = true; // '' is an escaped quote
                } else if c == q {
                    quote = None;
                    token_start = false;
                }
                prev_space = false;
                continue;
            }
            if c == ' ' || c == '\t' {
                prev_space = true;
                continue;
            }
            if c == '#' && prev_space {
                break;
            }
            let at_start = token_start;
            token_start = false;
            match c {
                '"' | '\'' if at_start => quote = Some(c),
                '[' | '{' if at_start || flow > 0 => {
                    flow += 1;
                    token_start = true;
                    if flow > MAX_DEPTH {
                        return Err(too_deep(line_no, column, "`[`/`{` collections"));
                    }
                }
                ']' | '}' if flow > 0 => flow -= 1,
                ',' if flow > 0 => token_start = true,
                '-' | '?' | ':' => {
                    let next_blank = line[col0 + 1..]
                        .chars()
                        .next()
                        .is_none_or(|n| n == ' ' || n == '\t');
                    if next_blank || (c == ':' && flow > 0) {
                        token_start = true;
                        if c == '-' && at_start && flow == 0 {
                            dashes += 1;
                            if indents.len() + dashes > MAX_DEPTH {
                                return Err(too_deep(line_no, column, "`- ` entries"));
                            }
                        }
                    }
                }
                '|' | '>' if at_start && flow == 0 => {
                    block_scalar = Some(indent);
                    break;
                }
                _ => {}
            }
            prev_space = false;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_scenarios_pass() {
        let text = "name: x # [[[[\ntarget: embedded\nrequest:\n  payload: |\n    {\"a\": [[[[[[\n  path: \"a[b\"\n  \
                    list: [1, [2, {a: [3]}], 'it''s [']\nphases:\n  - duration: 1s\n    interval: 1s\n    note: it's [x\n";
        assert_eq!(check(text), Ok(()));
    }

    #[test]
    fn rejects_deep_flow_nesting_where_it_happens() {
        let text = format!("target: embedded\nx: {}\n", "[".repeat(MAX_DEPTH + 1));
        let e = check(&text).unwrap_err();
        assert_eq!((e.line, e.column), (2, 4 + MAX_DEPTH));
        assert!(e.message.contains("nested deeper than 64"), "{}", e.message);
        // Exactly the limit, closed, is fine.
        let ok = format!("x: {}{}\n", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(check(&ok), Ok(()));
    }

    #[test]
    fn rejects_deep_block_nesting() {
        let mut text = String::new();
        for i in 0..=MAX_DEPTH {
            text.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert_eq!(check(&text).unwrap_err().line, MAX_DEPTH + 1);
        let dashes = format!("x:\n{}1\n", "- ".repeat(MAX_DEPTH + 1));
        assert_eq!(check(&dashes).unwrap_err().line, 2);
    }
}
