//! The CI gate in one test binary (one link instead of fourteen): what decides a run's exit code and how CI
//! consumes it.
//! - issue #13: the default health check (`health`), one verdict in every output (`verdicts`), the report
//!   folder checked before the load (`out_folder`), bounded planning (`planning`), figures of a run stopped
//!   early (`stopped_early`), and text that used to mislead (`misleading_text`);
//! - expectations and thresholds (`checks`), the binary's exit codes and errors (`cli`), `validate`
//!   (`validate_gate`), stop signals (`signals`), injected network faults (`faults`), property tests of the
//!   parsers of untrusted input (`properties`);
//! - `run`'s overrides, variables and ad-hoc mode (`overrides`), the README's ThingsBoard walk-through
//!   (`walkthrough`);
//! - the CI pipeline templates (`ci_templates`), the container image build (`containerfile`) and the
//!   Kubernetes manifests (`k8s_manifests`).

#[path = "../common/mod.rs"]
mod common;

mod checks;
mod ci_templates;
mod cli;
mod containerfile;
mod faults;
mod health;
mod k8s_manifests;
mod misleading_text;
mod out_folder;
mod overrides;
mod planning;
mod properties;
mod signals;
mod stopped_early;
mod validate_gate;
mod verdicts;
mod walkthrough;
