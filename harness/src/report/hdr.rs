//! HdrHistogram's own formats: `latency.hgrm` (the percentile distribution wrk2 prints and HdrHistogram's
//! plotter reads) and `latency.hlog` (an interval log for HistogramLogProcessor and friends: one untagged
//! interval per second, then one tagged interval per phase). Both are rendered from the histograms carried
//! in the [`Report`].

use super::model::Report;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::time::Duration;

/// Report histograms hold microseconds; the .hgrm shows milliseconds, as wrk2 does.
const US_PER_MS: f64 = 1000.0;
/// Percentile ticks per half distance, as wrk2 and HdrHistogram's default.
const TICKS_PER_HALF: u32 = 5;

/// The percentile distribution of the run's corrected request latency, in milliseconds.
pub fn render_hgrm(report: &Report) -> Result<String, String> {
    let h = report.total.latency.histogram()?;
    Ok(percentile_distribution(&h, US_PER_MS))
}

/// HdrHistogram's `outputPercentileDistribution` text for `h`, values divided by `scale`.
pub fn percentile_distribution(h: &Histogram<u64>, scale: f64) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(TICKS_PER_HALF) {
        total += v.count_since_last_iteration();
        let value = v.value_iterated_to() as f64 / scale;
        let q = v.quantile_iterated_to();
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / scale, h.stdev() / scale, h.max() as f64 / scale)
    };
    let _ = writeln!(
        out,
        "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]"
    );
    let _ = writeln!(
        out,
        "#[Max     = {max:12.3}, Total count    = {:12}]",
        h.len()
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_bucket_count(h)
    );
    out
}

/// HdrHistogram's sub-bucket count for the histogram's precision (not exposed by the crate).
fn sub_bucket_count(h: &Histogram<u64>) -> u64 {
    let single_unit = 2 * 10u64.pow(u32::from(h.sigfig()));
    let magnitude = (single_unit as f64).log2().ceil() as u32;
    1u64 << magnitude.max(1)
}

/// An interval log: one untagged interval per second of the run (the series HdrHistogram's log processor
/// and plotters read by default), then one interval per phase (tagged with its name) holding its corrected
/// latency, then one tagged `handshake` with the DTLS handshake latency when the run had handshakes. Values
/// in microseconds; the per-interval max column is in milliseconds. Reports without per-second histograms
/// (from older versions, or merged from shards of older versions) get the tagged intervals only.
pub fn render_hlog(report: &Report) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut builder = IntervalLogWriterBuilder::new();
    builder
        .add_comment(&format!(
            "coap-harness {} scenario {}: corrected request latency per second (untagged) and per phase \
             (tagged), in microseconds",
            report.harness_version, report.scenario.name
        ))
        .with_max_value_divisor(US_PER_MS);
    if let Ok(t) = humantime::parse_rfc3339_weak(&report.started_at) {
        builder.with_start_time(t).with_base_time(t);
    }
    let mut writer = builder
        .begin_log_with(&mut buf, &mut serializer)
        .map_err(|e| format!("cannot write the interval log: {e}"))?;
    let mut intervals = Vec::new();
    for (i, encoded) in report.latency_per_second.iter().enumerate() {
        let h = decode(encoded).map_err(|e| format!("second {i}: {e}"))?;
        let t = report.timeseries.get(i).map_or(i as u64, |p| p.t);
        intervals.push((String::new(), t as f64, 1.0, h));
    }
    for p in &report.phases {
        let h = p
            .requests
            .latency
            .histogram()
            .map_err(|e| format!("phase `{}`: {e}", p.name))?;
        intervals.push((tag_text(&p.name), p.start_s, p.duration_s, h));
    }
    if let Some(hs) = &report.handshakes {
        let h = hs
            .latency
            .histogram()
            .map_err(|e| format!("handshakes: {e}"))?;
        let (start, duration) = (0.0, report.duration_s);
        intervals.push(("handshake".to_string(), start, duration, h));
    }
    for (name, start, duration, h) in &intervals {
        let tag = (!name.is_empty()).then(|| Tag::new(name)).flatten();
        writer
            .write_histogram(h, secs(*start), secs(*duration), tag)
            .map_err(|e| format!("cannot write interval `{name}` at {start}s: {e}"))?;
    }
    Ok(buf)
}

/// A histogram as [`Report::latency_per_second`] holds it: HdrHistogram V2 + DEFLATE, base64.
pub(crate) fn encode(h: &Histogram<u64>) -> String {
    use base64::Engine as _;
    use hdrhistogram::serialization::Serializer as _;
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serializing into memory does not fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The histogram [`encode`] wrote.
pub(crate) fn decode(encoded: &str) -> Result<Histogram<u64>, String> {
    use base64::Engine as _;
    use hdrhistogram::serialization::Deserializer;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| e.to_string())?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| e.to_string())
}

/// Tags may not hold commas, spaces or line breaks.
fn tag_text(name: &str) -> String {
    name.chars()
        .map(|c| {
            if matches!(c, ',' | ' ' | '\r' | '\n') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_distribution_has_wrk2_shape() {
        let mut h = crate::metrics::collector::latency_histogram();
        for v in 1..=1000u64 {
            h.record(v * 10).unwrap();
        }
        let text = percentile_distribution(&h, US_PER_MS);
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines.next().unwrap(), "");
        let first = lines.next().unwrap();
        assert_eq!(
            first,
            "       0.010 0.000000000000          1           1.00"
        );
        assert!(text.contains("#[Max     =       10.007, Total count    =         1000]"));
        assert!(text.contains("#[Buckets =           22, SubBuckets     =         2048]"));
        let last_row = text.lines().rfind(|l| !l.starts_with('#')).unwrap();
        assert!(
            last_row.contains(" 1.000000000000       1000"),
            "{last_row}"
        );
    }

    #[test]
    fn tags_lose_forbidden_characters() {
        assert_eq!(tag_text("ramp up,1"), "ramp_up_1");
        assert!(Tag::new(&tag_text("a b")).is_some());
    }
}
