//! `scripts/test sam_build`'s report on what `sam build` left (see [`sam_template::bundle`]):
//!
//!   bundle-report [BUILD_DIR [TEMPLATE]]   (defaults .aws-sam/build and template.yaml)
//!
//! Exits 1 when a bootstrap fails the report or is missing, 2 when there is none to make.
//! `LAMBDA_SIZE_LIMIT=raw` holds the raw size, rather than the deflated one, to the limit.

use std::path::PathBuf;
use std::process::ExitCode;

use sam_template::Template;
use sam_template::bundle::{self, Limit, Report};

fn main() -> ExitCode {
    match report() {
        Ok(report) => {
            print!("{}", report.render());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("bundle-report: {error}");
            ExitCode::from(2)
        }
    }
}

fn report() -> Result<Report, bundle::Error> {
    let mut args = std::env::args().skip(1);
    let build_dir = args.next().unwrap_or_else(|| ".aws-sam/build".to_owned());
    let template = PathBuf::from(args.next().unwrap_or_else(|| "template.yaml".to_owned()));
    let limit = Limit::from_setting(std::env::var("LAMBDA_SIZE_LIMIT").ok().as_deref())?;
    Ok(Report {
        bootstraps: bundle::read_bootstraps(build_dir.as_ref())?,
        expected: bundle::expected_functions(&Template::from_path(template)?),
        build_dir,
        limit,
    })
}
