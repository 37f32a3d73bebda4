//! The `guildhall-bench` binary: parses the command line and runs a scenario
//! (see the library docs for what each one measures).

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = guildhall_bench::Cli::parse();
    let threads = match &cli.scenario {
        guildhall_bench::Scenario::Worker(_) => 1,
        _ => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("guildhall-bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(guildhall_bench::run(cli)) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guildhall-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
