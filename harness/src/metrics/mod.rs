//! Measurement: request outcomes, per-device samples, and the collector that turns them into HDR histograms
//! (microseconds, 3 significant digits) and a per-second series, and the live metrics scrapers read.

pub mod collector;
pub mod export;
pub mod outcome;
pub mod records;
pub mod sample;

pub use collector::{Aggregate, Collector, Live, PhaseAgg, SecondPoint, SecondSoFar};
pub use outcome::{Outcome, OutcomeCounts};
pub use sample::{Batch, Sample};
