//! Finds where a field stands in a YAML file, so that errors found after parsing (cross-field rules) still
//! name a line and column. Handles block-style mappings and sequences, which is what scenarios use; when a
//! path cannot be followed it answers with the deepest ancestor it found.

/// One step of a field path: a mapping key or a sequence index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Renders a path as `phases[1].rate`.
pub fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// 1-based line and column of the field at `path`.
pub fn locate(text: &str, path: &[Step]) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    // The region still to search: lines from `from` on, indented deeper than `parent_indent`; when
    // `item_line` is set, line `from` is a sequence item whose first key shares the dash's line.
    let mut from = 0usize;
    let mut parent_indent: isize = -1;
    let mut item_line = false;
    let mut found = None;
    for step in path {
        let mut hit = None;
        let mut seen = 0usize;
        for (n, line) in lines.iter().enumerate().skip(from) {
            let content = line.trim_start();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let mut indent = (line.len() - content.len()) as isize;
            let mut content = content;
            if item_line && n == from {
                // Look past the dash: `- key: value`.
                let rest = content.trim_start_matches('-').trim_start();
                indent += (content.len() - rest.len()) as isize;
                content = rest;
            } else if indent < parent_indent
                || (indent == parent_indent
                    && !(matches!(step, Step::Index(_)) && content.starts_with('-')))
            {
                // Out of the parent's block (a sequence may sit at its key's own indent).
                break;
            }
            match step {
                Step::Key(k) => {
                    if content.starts_with(k.as_str())
                        && content[k.len()..].trim_start().starts_with(':')
                    {
                        hit = Some((n, indent as usize, false));
                        break;
                    }
                }
                Step::Index(i) => {
                    if content.starts_with("- ") || content == "-" {
                        if seen == *i {
                            hit = Some((n, indent as usize, true));
                            break;
                        }
                        seen += 1;
                    }
                }
            }
        }
        let Some((n, col, is_item)) = hit else { break };
        found = Some((n + 1, col + 1));
        parent_indent = col as isize;
        item_line = is_item;
        from = if is_item { n } else { n + 1 };
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
name: x
devices:
  count: 0
  token: dev-{index}
phases:
  - name: a
    duration: 1s
  - duration: 2s
    rate: 10/s
";

    fn k(s: &str) -> Step {
        Step::Key(s.into())
    }

    #[test]
    fn finds_nested_keys_and_items() {
        assert_eq!(locate(DOC, &[k("devices"), k("count")]), Some((3, 3)));
        assert_eq!(
            locate(DOC, &[k("phases"), Step::Index(0), k("duration")]),
            Some((7, 5))
        );
        assert_eq!(
            locate(DOC, &[k("phases"), Step::Index(1), k("duration")]),
            Some((8, 5))
        );
        assert_eq!(
            locate(DOC, &[k("phases"), Step::Index(1), k("rate")]),
            Some((9, 5))
        );
        assert_eq!(locate(DOC, &[k("phases"), Step::Index(1)]), Some((8, 3)));
        assert_eq!(
            render(&[k("phases"), Step::Index(1), k("rate")]),
            "phases[1].rate"
        );
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        assert_eq!(locate(DOC, &[k("devices"), k("bind")]), Some((2, 1)));
        assert_eq!(
            locate(DOC, &[k("phases"), Step::Index(0), k("rate")]),
            Some((6, 3))
        );
        assert_eq!(locate(DOC, &[k("nothing")]), None);
    }
}
