//! The `coap-harness` binary: parse the command line, build the runtime, run, exit with the code.

use std::process::ExitCode;

/// Thousands of device tasks and DTLS sessions allocate small buffers on every core; mimalloc keeps that off
/// a shared lock (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = coap_harness::cli::Cli::parse_args();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    ExitCode::from(runtime.block_on(coap_harness::app::execute(cli)))
}
