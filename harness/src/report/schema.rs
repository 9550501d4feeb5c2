//! The JSON Schema of report.json, generated from the [`Report`] types; `reports/schema.json` is its checked-in
//! copy, which a test keeps equal to [`schema_json`].

use super::model::Report;

/// The schema of report.json, pretty-printed with a trailing newline (the text of `reports/schema.json`).
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Report);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
