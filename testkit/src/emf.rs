//! Checks a log line against the CloudWatch Embedded Metric Format specification, as
//! CloudWatch Logs would before extracting metrics from it, and reads its values back.
//!
//! The rules checked (specification, "Embedded metric format specification"): the root is an
//! object with an `_aws` member holding a millisecond `Timestamp` and a non-empty
//! `CloudWatchMetrics` array; each directive has a `Namespace` (1 to 1024 characters, not
//! only whitespace), `Dimensions` (an array of dimension sets, each an array of at most 30
//! names of root members whose values are strings) and `Metrics` (at most 100, each with a
//! `Name` of a root member whose value is a number or an array of at most 100 numbers, an
//! optional `Unit` from CloudWatch's list and an optional `StorageResolution` of 1 or 60).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// CloudWatch's standard units.
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// One metric of a valid EMF line: its namespace, name, dimensions and values.
#[derive(Debug, Clone, PartialEq)]
pub struct EmfMetric {
    pub namespace: String,
    pub name: String,
    pub unit: Option<String>,
    /// The dimension names and values of the first dimension set.
    pub dimensions: BTreeMap<String, String>,
    pub values: Vec<f64>,
}

/// Parses `line` as an EMF document and checks it; returns its metrics, or what is wrong.
pub fn parse(line: &str) -> Result<Vec<EmfMetric>, String> {
    let root: Value = serde_json::from_str(line).map_err(|err| format!("not JSON: {err}"))?;
    let root = root.as_object().ok_or("the root is not an object")?;
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no _aws object")?;
    let timestamp = aws
        .get("Timestamp")
        .and_then(Value::as_u64)
        .ok_or("_aws.Timestamp is not a non-negative integer")?;
    // Milliseconds since the epoch: after 2001 and before 2286.
    if !(1_000_000_000_000..10_000_000_000_000).contains(&timestamp) {
        return Err(format!(
            "_aws.Timestamp {timestamp} is not in epoch milliseconds"
        ));
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics is not an array")?;
    if directives.is_empty() {
        return Err("_aws.CloudWatchMetrics is empty".into());
    }
    let mut metrics = Vec::new();
    for directive in directives {
        metrics.extend(directive_metrics(root, directive)?);
    }
    Ok(metrics)
}

fn directive_metrics(
    root: &Map<String, Value>,
    directive: &Value,
) -> Result<Vec<EmfMetric>, String> {
    let directive = directive
        .as_object()
        .ok_or("a directive is not an object")?;
    let namespace = directive
        .get("Namespace")
        .and_then(Value::as_str)
        .ok_or("Namespace is not a string")?;
    if namespace.trim().is_empty() || namespace.chars().count() > 1024 {
        return Err(format!("Namespace {namespace:?} is empty or too long"));
    }
    let first_set = first_dimension_set(root, directive)?;
    let definitions = directive
        .get("Metrics")
        .and_then(Value::as_array)
        .ok_or("Metrics is not an array")?;
    if definitions.len() > 100 {
        return Err(format!(
            "{} metrics in one directive (max 100)",
            definitions.len()
        ));
    }
    let mut metrics = Vec::new();
    for definition in definitions {
        let (name, unit, values) = metric(root, definition)?;
        metrics.push(EmfMetric {
            namespace: namespace.to_owned(),
            name,
            unit,
            dimensions: first_set.clone(),
            values,
        });
    }
    Ok(metrics)
}

/// The first dimension set of `directive`, each name with its value in the root; every set
/// is checked (at most 30 names, each with a string value in the root).
fn first_dimension_set(
    root: &Map<String, Value>,
    directive: &Map<String, Value>,
) -> Result<BTreeMap<String, String>, String> {
    let sets = directive
        .get("Dimensions")
        .and_then(Value::as_array)
        .ok_or("Dimensions is not an array")?;
    let mut first_set = BTreeMap::new();
    for (index, set) in sets.iter().enumerate() {
        let set = set.as_array().ok_or("a dimension set is not an array")?;
        if set.len() > 30 {
            return Err(format!(
                "a dimension set has {} dimensions (max 30)",
                set.len()
            ));
        }
        for name in set {
            let name = name.as_str().ok_or("a dimension name is not a string")?;
            let value = root
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("dimension {name:?} has no string member in the root"))?;
            if index == 0 {
                first_set.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    Ok(first_set)
}

/// One metric definition of a directive: its name, unit and the values the root holds.
fn metric(
    root: &Map<String, Value>,
    definition: &Value,
) -> Result<(String, Option<String>, Vec<f64>), String> {
    let definition = definition.as_object().ok_or("a metric is not an object")?;
    let name = definition
        .get("Name")
        .and_then(Value::as_str)
        .ok_or("a metric Name is not a string")?;
    if name.is_empty() || name.chars().count() > 1024 {
        return Err(format!("metric name {name:?} is empty or too long"));
    }
    let unit = match definition.get("Unit") {
        None => None,
        Some(Value::String(unit)) if UNITS.contains(&unit.as_str()) => Some(unit.clone()),
        Some(other) => return Err(format!("{name}: Unit {other} is not a CloudWatch unit")),
    };
    match definition.get("StorageResolution") {
        None => {}
        Some(resolution) if resolution == 1 || resolution == 60 => {}
        Some(other) => return Err(format!("{name}: StorageResolution {other} is not 1 or 60")),
    }
    let values = match root.get(name) {
        Some(Value::Number(number)) => vec![number.as_f64().unwrap_or(f64::NAN)],
        Some(Value::Array(values)) => {
            if values.len() > 100 {
                return Err(format!("{name}: {} values (max 100)", values.len()));
            }
            values
                .iter()
                .map(|value| {
                    value
                        .as_f64()
                        .ok_or(format!("{name}: {value} is not a number"))
                })
                .collect::<Result<_, _>>()?
        }
        _ => return Err(format!("metric {name:?} has no numeric member in the root")),
    };
    Ok((name.to_owned(), unit, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the specification.
    const EXAMPLE: &str = r#"{
      "_aws": {
        "Timestamp": 1574109732004,
        "CloudWatchMetrics": [{
          "Namespace": "lambda-function-metrics",
          "Dimensions": [["functionVersion"]],
          "Metrics": [{"Name": "time", "Unit": "Milliseconds", "StorageResolution": 60}]
        }]
      },
      "functionVersion": "$LATEST",
      "time": 100,
      "requestId": "989ffbf8-9ace-4817-a57c-e4dd734019ee"
    }"#;

    #[test]
    fn the_specifications_example_is_valid_and_reads_back() {
        let metrics = parse(EXAMPLE).unwrap();
        assert_eq!(
            metrics,
            [EmfMetric {
                namespace: "lambda-function-metrics".into(),
                name: "time".into(),
                unit: Some("Milliseconds".into()),
                dimensions: [("functionVersion".into(), "$LATEST".into())].into(),
                values: vec![100.0],
            }]
        );
    }

    fn broken(edit: impl FnOnce(&mut Value)) -> String {
        let mut document: Value = serde_json::from_str(EXAMPLE).unwrap();
        edit(&mut document);
        parse(&document.to_string()).unwrap_err()
    }

    #[test]
    fn documents_breaking_the_specification_are_refused_with_the_reason() {
        assert!(broken(|d| d["_aws"]["Timestamp"] = "now".into()).contains("Timestamp"));
        assert!(broken(|d| d["_aws"]["Timestamp"] = 1574109732.into()).contains("milliseconds"));
        assert!(
            broken(|d| d["_aws"]["CloudWatchMetrics"] = serde_json::json!([])).contains("empty")
        );
        assert!(
            broken(|d| d["_aws"]["CloudWatchMetrics"][0]["Namespace"] = " ".into())
                .contains("Namespace")
        );
        assert!(broken(|d| d["functionVersion"] = 1.into()).contains("functionVersion"));
        assert!(broken(|d| d["time"] = "100".into()).contains("time"));
        assert!(
            broken(|d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Parsecs".into())
                .contains("Unit")
        );
        assert!(
            broken(
                |d| d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["StorageResolution"] = 5.into()
            )
            .contains("StorageResolution")
        );
        assert!(broken(|d| d["time"] = serde_json::json!(vec![1; 101])).contains("max 100"));
        assert!(
            broken(|d| {
                let names: Vec<String> = (0..31).map(|n| format!("d{n}")).collect();
                for name in &names {
                    d[name] = "x".into();
                }
                d["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = serde_json::json!([names]);
            })
            .contains("max 30")
        );
        assert!(parse("not json").unwrap_err().contains("not JSON"));
    }
}
