//! A copy of the template, on standard output, with another default for one parameter (see
//! [`sam_template::variant`]):
//!
//!   template-variant PARAMETER VALUE [TEMPLATE]   (default template.yaml)

use std::process::ExitCode;

use sam_template::variant::with_parameter_default;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (parameter, value, path) = match args.as_slice() {
        [parameter, value] => (parameter, value, "template.yaml"),
        [parameter, value, path] => (parameter, value, path.as_str()),
        _ => {
            eprintln!("usage: template-variant PARAMETER VALUE [TEMPLATE]");
            return ExitCode::from(2);
        }
    };
    let copy = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {path}: {error}"))
        .and_then(|text| {
            with_parameter_default(&text, parameter, value)
                .map_err(|error| format!("{path}: {error}"))
        });
    match copy {
        Ok(copy) => {
            print!("{copy}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("template-variant: {error}");
            ExitCode::FAILURE
        }
    }
}
