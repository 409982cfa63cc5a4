//! The template with another default for one of its parameters, otherwise as written, line
//! for line. The linters of `scripts/test template` read parameter defaults, not overrides,
//! so the resources that only another value deploys (such as those of
//! `OrderApiOnManagedInstances: "true"`) are linted in such a copy (the `template-variant`
//! binary).

use serde_norway::Value;

/// Why the copy could not be made.
#[derive(Debug, thiserror::Error)]
pub enum VariantError {
    #[error("the template has no parameter {0} with a one-line Default")]
    NoDefault(String),
    #[error("{parameter}'s Default is {value:?} already")]
    Unchanged { parameter: String, value: String },
    #[error("{value:?} is not among {parameter}'s AllowedValues")]
    NotAllowed { parameter: String, value: String },
    #[error("the copy does not read back with {parameter}'s Default {value:?}")]
    Unreadable { parameter: String, value: String },
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
}

/// `text` (a template) with `parameter`'s `Default` set to the string `value`: only that line
/// changes, so that the linters' findings point at the same lines as in the original.
pub fn with_parameter_default(
    text: &str,
    parameter: &str,
    value: &str,
) -> Result<String, VariantError> {
    let root: Value = serde_norway::from_str(text)?;
    let declared = &root["Parameters"][parameter];
    let (parameter_name, value_text) = (parameter.to_owned(), value.to_owned());
    if declared["Default"].as_str() == Some(value) {
        return Err(VariantError::Unchanged {
            parameter: parameter_name,
            value: value_text,
        });
    }
    if let Some(allowed) = declared["AllowedValues"].as_sequence()
        && !allowed.iter().any(|v| v.as_str() == Some(value))
    {
        return Err(VariantError::NotAllowed {
            parameter: parameter_name,
            value: value_text,
        });
    }
    let line = default_line(text, parameter)
        .ok_or_else(|| VariantError::NoDefault(parameter.to_owned()))?;
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let indent = lines[line].len() - lines[line].trim_start().len();
    lines[line] = format!("{}Default: {}", &lines[line][..indent], quoted(value));
    let copy = lines.join("\n");
    let reread: Value = serde_norway::from_str(&copy)?;
    if reread["Parameters"][parameter]["Default"].as_str() != Some(value) {
        return Err(VariantError::Unreadable {
            parameter: parameter_name,
            value: value_text,
        });
    }
    Ok(copy)
}

/// The index of the `Default:` line of `parameter` under the top-level `Parameters:`, when it
/// holds its value on the same line.
fn default_line(text: &str, parameter: &str) -> Option<usize> {
    let lines: Vec<&str> = text.split('\n').collect();
    let indent = |line: &str| line.len() - line.trim_start().len();
    let is_content = |line: &str| !line.trim().is_empty() && !line.trim_start().starts_with('#');
    let section = lines.iter().position(|l| l.trim_end() == "Parameters:")?;
    let heading = format!("{parameter}:");
    let start = (section + 1..lines.len())
        .take_while(|&i| !is_content(lines[i]) || indent(lines[i]) > 0)
        .find(|&i| lines[i].trim() == heading)?;
    (start + 1..lines.len())
        .take_while(|&i| !is_content(lines[i]) || indent(lines[i]) > indent(lines[start]))
        .find(|&i| {
            lines[i]
                .trim_start()
                .strip_prefix("Default:")
                .is_some_and(|rest| !rest.trim().is_empty())
        })
}

/// `value` as a YAML double-quoted string, as the template writes its string defaults.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = r#"Parameters:
  Other:
    Type: String
    Default: "false"
  Managed:
    Type: String
    # A comment inside the block.
    Default: "false"
    AllowedValues: ["true", "false"]
  Free:
    Type: String
    Default: a
Resources:
  Managed:
    Default: "false"
"#;

    #[test]
    fn only_the_parameters_default_line_changes() {
        let copy = with_parameter_default(TEMPLATE, "Managed", "true").unwrap();
        let changed: Vec<(usize, &str)> = TEMPLATE
            .lines()
            .zip(copy.lines())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (_, b))| (i, b))
            .collect();
        assert_eq!(changed, [(7, r#"    Default: "true""#)]);
        assert_eq!(copy.lines().count(), TEMPLATE.lines().count());
        assert!(copy.ends_with('\n'));
        assert_eq!(
            with_parameter_default(TEMPLATE, "Free", "b\"c").unwrap(),
            TEMPLATE.replace("Default: a", r#"Default: "b\"c""#)
        );
    }

    #[test]
    fn a_copy_that_changes_nothing_or_breaks_a_rule_is_refused() {
        assert!(matches!(
            with_parameter_default(TEMPLATE, "Managed", "false"),
            Err(VariantError::Unchanged { .. })
        ));
        assert!(matches!(
            with_parameter_default(TEMPLATE, "Managed", "maybe"),
            Err(VariantError::NotAllowed { .. })
        ));
        assert!(matches!(
            with_parameter_default(TEMPLATE, "Missing", "true"),
            Err(VariantError::NoDefault(_))
        ));
    }
}
