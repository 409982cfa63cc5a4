//! Fuzzes the order API with schemathesis against the real system, and fails unless it
//! reports 0 findings (`scripts/test api_fuzz` runs this).
//!
//! ```sh
//! cargo run -p testkit --bin fuzz-api                 # start the system, fuzz, stop it
//! cargo run -p testkit --bin fuzz-api -- -- ARGS...   # the same, with ARGS added to `schemathesis run`
//! ```
//!
//! schemathesis, pinned, is installed into `$TOOLS_DIR/venv-fuzz` by
//! `scripts/install-dev-tools schemathesis`, which this runs first (a no-op once installed).
//!
//! The system is the local-runtime binary (order API, trigger emulators, outbox relay) on a
//! scratch database, with a private broker and mail sink (started as `with-test-services
//! --system` starts them, [`testkit::system`], and stopped, the database dropped, at the
//! end), so a run touches neither the orders database nor the broker and sink that
//! `scripts/run` uses. With the demo stock from seed/stock.sql and a few dead letters loaded,
//! `schemathesis run` reads the served /api/openapi.json and runs every check in the
//! examples, coverage, fuzzing and stateful phases, with a fixed seed. Failures, errors and
//! warnings all count as findings.
//!
//! Who calls: guests (no credentials) on the open routes; the demo customer ada@example.com
//! (`scripts/services up` creates it in the local Cognito user pool) on the customer routes,
//! signed in once here: its ID token goes to every operation the document guards with the
//! customerJwt scheme (the `[auth.openapi.customerJwt]` block of testkit/fuzz/schemathesis.toml),
//! which the runtime's gateway checks as API Gateway does, so those routes are fuzzed past
//! the authorizer, and schemathesis' auth checks try them without and with a broken token
//! too. The operator routes (IAM in AWS) are open on 127.0.0.1, as the runtime serves them
//! locally.
//!
//! The abuse limits are off in the fuzzed system: every request comes from one address,
//! which the per-address limit would refuse after its 20th order (429, documented, but then
//! nothing else of an order is fuzzed). The guest's quantity ceiling stays the default (10).
//!
//! The expectations added to the document (422s it describes in words for requests its
//! schema allows: a reused Idempotency-Key, a guest's quantity over the guest ceiling, a
//! customer naming another address) are set in testkit/fuzz/schemathesis.toml and
//! testkit/fuzz/hooks.py.
//!
//! - `FUZZ_SEED`: the generation seed (the same seed and code give the same run; 20251129)
//! - `FUZZ_MAX_EXAMPLES`: test cases per operation and phase: more explores more, slower (150)
//! - `FUZZ_CUSTOMER`: the customer signed in (ada@example.com, a demo customer)
//! - `FUZZ_WORKERS`: concurrent schemathesis workers (1 by default: with 2, a run here once
//!   failed inside Hypothesis on Python 3.11 with "AST constructor recursion depth
//!   mismatch", ast.parse racing across threads)
//! - `RUST_LOG`: the runtime's log filter (warn)

use std::process::ExitCode;
use std::time::Instant;

use testkit::fuzz_api::{Options, run};

const USAGE: &str = "usage: fuzz-api [-- SCHEMATHESIS_RUN_ARGS...]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let extra_args = match args.next().as_deref() {
        None => Vec::new(),
        Some("--") => args.collect(),
        Some(_) => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let passed = match run(&Options::from_env(extra_args)).await {
        Ok(passed) => passed,
        Err(err) => {
            eprintln!("[fuzz-api] {err:#}");
            false
        }
    };
    eprintln!("[fuzz-api] done in {}s", started.elapsed().as_secs());
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
