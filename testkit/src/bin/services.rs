//! `scripts/services up|down|status|reset` and `scripts/run`'s work after `up`: the local
//! backing services, started, checked, provisioned and stopped (see
//! [`testkit::local_services`]). The scripts install the tools and then run this binary.
//!
//! ```sh
//! cargo run -p testkit --bin services -- up|down|status|reset
//! cargo run -p testkit --bin services -- run [--no-seed|--seed]
//! ```

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let prefix = if args.first().is_some_and(|command| command == "run") {
        "run"
    } else {
        "services"
    };
    match testkit::local_services::main(&args).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("[{prefix}] error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
