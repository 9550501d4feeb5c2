//! Text escaping: HTML/XML for the HTML and SVG renderers, Markdown (GitHub-flavoured, table cells included)
//! for summary.md. A leaf: it imports nothing of the crate.

/// Escapes text for HTML element content and quoted attributes (and for XML, so SVG stays well-formed).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Escapes text for Markdown: inline markup (`*`, `_`, `` ` ``, `[`, `]`, `~`, `\`) is backslashed, HTML
/// (`<`, `>`, `&`) becomes entities, `|` is `\|` so a table cell stays one cell, and a line break is `<br>`
/// so a table row stays one line. The result renders as the text itself, in a table cell, a heading or a
/// paragraph.
pub fn markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push_str("<br>");
                }
            }
            '\n' => out.push_str("<br>"),
            _ => out.push(c),
        }
    }
    out
}

/// `text` as a Markdown code span inside a table cell: a backtick fence longer than any run of backticks in
/// it, `|` as `\|` (GitHub splits cells before it reads code spans), line breaks as spaces.
pub fn markdown_code(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    let body = text
        .replace("\r\n", " ")
        .replace(['\n', '\r'], " ")
        .replace('|', "\\|");
    // A space each side keeps a leading or trailing backtick out of the fence (it is stripped on rendering).
    let pad = if body.starts_with('`') || body.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{body}{pad}{fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_text_is_inert_in_a_table_cell() {
        assert_eq!(markdown("a|b"), "a\\|b");
        assert_eq!(
            markdown("<script>x</script> & <b>"),
            "&lt;script&gt;x&lt;/script&gt; &amp; &lt;b&gt;"
        );
        assert_eq!(
            markdown("**bold** _it_ `c` [l](u) ~~s~~"),
            "\\*\\*bold\\*\\* \\_it\\_ \\`c\\` \\[l\\](u) \\~\\~s\\~\\~"
        );
        assert_eq!(markdown("back\\slash"), "back\\\\slash");
        assert_eq!(markdown("two\nlines\r\nthree"), "two<br>lines<br>three");
        assert_eq!(markdown("# not a heading !"), "\\# not a heading \\!");
        assert_eq!(markdown("plain 1.5 ms, ok"), "plain 1.5 ms, ok");
    }

    #[test]
    fn markdown_code_spans_survive_backticks_and_pipes() {
        assert_eq!(markdown_code("coap://h/a"), "`coap://h/a`");
        assert_eq!(markdown_code("a|b"), "`a\\|b`");
        assert_eq!(markdown_code("x`y"), "``x`y``");
        assert_eq!(markdown_code("`q`"), "`` `q` ``");
        assert_eq!(markdown_code("a\nb"), "`a b`");
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>a & 'b' \"c\"</script>"),
            "&lt;script&gt;a &amp; &#39;b&#39; &quot;c&quot;&lt;/script&gt;"
        );
    }
}
