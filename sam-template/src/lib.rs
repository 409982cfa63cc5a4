//! A typed view of the SAM template (`template.yaml`): each function's binary, `CodeUri`,
//! environment variable names and event sources. The local runtime emulates the MSK triggers
//! it finds here, and the contract tests hold the template against the code, so that local
//! and cloud wiring cannot drift apart.
//!
//! CloudFormation intrinsics (`!Ref`, `!GetAtt`, `!Sub`, ...) are kept readable but never
//! resolved: only literal settings are read as values (see [`render`]).
//!
//! - [`Template`], [`Function`], [`Event`], [`EventSource`], [`MskEvent`], [`HttpApi`]: the
//!   typed view.
//! - [`contract`]: compares the view with what the code expects ([`contract::Expectation`])
//!   and lists every [`contract::Drift`].

pub mod contract;

use std::collections::BTreeSet;
use std::path::Path;

use serde_norway::Value;

/// Why the template could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("template is not valid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),
    #[error("{0}")]
    Shape(String),
}

/// The template's serverless functions and HTTP APIs.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub functions: Vec<Function>,
    pub http_apis: Vec<HttpApi>,
}

/// One `AWS::Serverless::HttpApi`: the authorizers its routes can name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpApi {
    pub logical_id: String,
    /// `Auth.DefaultAuthorizer`: what a route without its own `Auth.Authorizer` gets.
    pub default_authorizer: Option<String>,
    /// The names of `Auth.Authorizers`, such as a JWT authorizer.
    pub authorizers: BTreeSet<String>,
    /// `Auth.EnableIamAuthorizer`: routes may name `AWS_IAM`.
    pub iam_authorizer: bool,
}

/// The value of a route's `Auth.Authorizer` that opts it out of the API's `DefaultAuthorizer`.
pub const NO_AUTHORIZER: &str = "NONE";

/// One `AWS::Serverless::Function`, with `Globals` applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub logical_id: String,
    pub code_uri: Option<String>,
    /// `Metadata.BuildProperties.Binary`: which workspace binary cargo-lambda builds.
    pub binary: Option<String>,
    /// Names of the environment variables set (function and `Globals`).
    pub environment: BTreeSet<String>,
    pub events: Vec<Event>,
}

/// One entry of a function's `Events`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub name: String,
    pub source: EventSource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventSource {
    Msk(MskEvent),
    Schedule {
        expression: String,
    },
    HttpApi {
        method: String,
        path: String,
        /// `Auth.Authorizer` as written, such as `AWS_IAM` or `NONE`; `None` when the route
        /// sets none (it then gets its API's `DefaultAuthorizer`, if any: see
        /// [`Template::route_authorizer`]).
        authorizer: Option<String>,
        /// The API the route is on: the logical id of `ApiId: !Ref <id>`, else `ApiId` as
        /// written; `None` for SAM's implicit API.
        api: Option<String>,
    },
    /// Any other event type, by its `Type`.
    Other(String),
}

/// The literal settings of an MSK event source mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MskEvent {
    /// The cluster, as written (usually an intrinsic such as `!GetAtt KafkaCluster.ClusterArn`).
    pub stream: Option<String>,
    pub topics: Vec<String>,
    pub batch_size: Option<u64>,
    pub maximum_batching_window_secs: Option<u64>,
    /// `TRIM_HORIZON` or `LATEST`.
    pub starting_position: Option<String>,
    pub consumer_group_id: Option<String>,
    /// `DestinationConfig.OnFailure.Destination`, as written (where discarded batches go).
    pub on_failure: Option<String>,
}

impl Template {
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, TemplateError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let root: Value = serde_norway::from_str(text)?;
        let globals = &root["Globals"]["Function"];
        let global_env = variable_names(&globals["Environment"]["Variables"]);
        let resources = root["Resources"]
            .as_mapping()
            .ok_or_else(|| TemplateError::Shape("the template has no Resources".to_owned()))?;
        let mut functions = Vec::new();
        let mut http_apis = Vec::new();
        for (id, resource) in resources {
            if resource["Type"].as_str() == Some("AWS::Serverless::HttpApi") {
                http_apis.push(http_api(id.as_str().unwrap_or_default(), resource));
                continue;
            }
            if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
                continue;
            }
            let logical_id = id.as_str().unwrap_or_default().to_owned();
            let properties = &resource["Properties"];
            let mut environment = global_env.clone();
            environment.extend(variable_names(&properties["Environment"]["Variables"]));
            let events = properties["Events"]
                .as_mapping()
                .into_iter()
                .flatten()
                .map(|(name, event)| Event {
                    name: name.as_str().unwrap_or_default().to_owned(),
                    source: event_source(event),
                })
                .collect();
            functions.push(Function {
                code_uri: properties["CodeUri"]
                    .as_str()
                    .or_else(|| globals["CodeUri"].as_str())
                    .map(str::to_owned),
                binary: resource["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .map(str::to_owned),
                logical_id,
                environment,
                events,
            });
        }
        Ok(Self {
            functions,
            http_apis,
        })
    }

    pub fn function(&self, logical_id: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }

    pub fn http_api(&self, logical_id: &str) -> Option<&HttpApi> {
        self.http_apis.iter().find(|a| a.logical_id == logical_id)
    }

    /// The authorizer API Gateway applies to a route on `api` whose own `Auth.Authorizer` is
    /// `authorizer`: that one, else the API's `DefaultAuthorizer`; `None` for an open route
    /// (`NONE`, or nothing on either level).
    pub fn route_authorizer(&self, api: Option<&str>, authorizer: Option<&str>) -> Option<String> {
        let authorizer = match authorizer {
            Some(NO_AUTHORIZER) => return None,
            Some(authorizer) => Some(authorizer),
            None => api
                .and_then(|api| self.http_api(api))
                .and_then(|api| api.default_authorizer.as_deref()),
        };
        authorizer.map(str::to_owned)
    }
}

impl Function {
    /// The function's MSK triggers, in template order.
    pub fn msk_events(&self) -> impl Iterator<Item = (&str, &MskEvent)> {
        self.events.iter().filter_map(|event| match &event.source {
            EventSource::Msk(msk) => Some((event.name.as_str(), msk)),
            _ => None,
        })
    }

    /// The function's HTTP API routes as (method, path, authorizer), the authorizer as the
    /// route writes it.
    pub fn http_routes(&self) -> impl Iterator<Item = (&str, &str, Option<&str>)> {
        self.events.iter().filter_map(|event| match &event.source {
            EventSource::HttpApi {
                method,
                path,
                authorizer,
                ..
            } => Some((method.as_str(), path.as_str(), authorizer.as_deref())),
            _ => None,
        })
    }

    /// The API each HTTP route is on, as (method, path, API), in template order.
    pub fn http_route_apis(&self) -> impl Iterator<Item = (&str, &str, Option<&str>)> {
        self.events.iter().filter_map(|event| match &event.source {
            EventSource::HttpApi {
                method, path, api, ..
            } => Some((method.as_str(), path.as_str(), api.as_deref())),
            _ => None,
        })
    }

    /// The function's schedule expressions, such as `rate(1 minute)`.
    pub fn schedules(&self) -> impl Iterator<Item = &str> {
        self.events.iter().filter_map(|event| match &event.source {
            EventSource::Schedule { expression } => Some(expression.as_str()),
            _ => None,
        })
    }
}

fn variable_names(variables: &Value) -> BTreeSet<String> {
    variables
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(name, _)| name.as_str().map(str::to_owned))
        .collect()
}

fn http_api(logical_id: &str, resource: &Value) -> HttpApi {
    let auth = &resource["Properties"]["Auth"];
    HttpApi {
        logical_id: logical_id.to_owned(),
        default_authorizer: match &auth["DefaultAuthorizer"] {
            Value::Null => None,
            authorizer => Some(render(authorizer)),
        },
        authorizers: auth["Authorizers"]
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(name, _)| name.as_str().map(str::to_owned))
            .collect(),
        iam_authorizer: auth["EnableIamAuthorizer"].as_bool() == Some(true),
    }
}

fn event_source(event: &Value) -> EventSource {
    let properties = &event["Properties"];
    let kind = event["Type"].as_str().unwrap_or_default();
    match kind {
        "MSK" => EventSource::Msk(MskEvent {
            stream: match &properties["Stream"] {
                Value::Null => None,
                stream => Some(render(stream)),
            },
            topics: properties["Topics"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|topic| topic.as_str().map(str::to_owned))
                .collect(),
            batch_size: properties["BatchSize"].as_u64(),
            maximum_batching_window_secs: properties["MaximumBatchingWindowInSeconds"].as_u64(),
            starting_position: properties["StartingPosition"].as_str().map(str::to_owned),
            consumer_group_id: properties["ConsumerGroupId"]
                .as_str()
                .or_else(|| {
                    properties["AmazonManagedKafkaEventSourceConfig"]["ConsumerGroupId"].as_str()
                })
                .map(str::to_owned),
            on_failure: match &properties["DestinationConfig"]["OnFailure"]["Destination"] {
                Value::Null => None,
                destination => Some(render(destination)),
            },
        }),
        "Schedule" | "ScheduleV2" => EventSource::Schedule {
            expression: properties["Schedule"]
                .as_str()
                .or_else(|| properties["ScheduleExpression"].as_str())
                .unwrap_or_default()
                .to_owned(),
        },
        "HttpApi" => EventSource::HttpApi {
            method: properties["Method"].as_str().unwrap_or_default().to_owned(),
            path: properties["Path"].as_str().unwrap_or_default().to_owned(),
            authorizer: properties["Auth"]["Authorizer"].as_str().map(str::to_owned),
            api: match &properties["ApiId"] {
                Value::Null => None,
                Value::Tagged(tagged) if tagged.tag == "!Ref" => Some(render(&tagged.value)),
                api => Some(
                    api["Ref"]
                        .as_str()
                        .map_or_else(|| render(api), str::to_owned),
                ),
            },
        },
        other => EventSource::Other(other.to_owned()),
    }
}

/// A property value as text: a scalar as itself, an intrinsic in its short form
/// (`!GetAtt KafkaCluster.ClusterArn`, `!If [UseScram, ...]`), anything else as flow YAML.
pub fn render(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Mapping(map) => {
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", render(k), render(v)))
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        Value::Tagged(tagged) => format!("{} {}", tagged.tag, render(&tagged.value)),
    }
}

/// The period of a `rate(N unit)` schedule expression, in seconds.
pub fn rate_in_seconds(expression: &str) -> Option<u64> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (amount, unit) = inner.trim().split_once(' ')?;
    let amount: u64 = amount.parse().ok()?;
    let unit_secs = match unit.trim().trim_end_matches('s') {
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        _ => return None,
    };
    Some(amount * unit_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
Globals:
  Function:
    Environment:
      Variables:
        DB_HOST: !GetAtt Database.Endpoint.Address
Resources:
  Database:
    Type: AWS::RDS::DBInstance
  InventoryFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: inventory
    Properties:
      CodeUri: .
      Environment:
        Variables:
          KAFKA_BOOTSTRAP_SERVERS: !Ref Brokers
      Events:
        OrderPlaced:
          Type: MSK
          Properties:
            Stream: !Ref Cluster
            Topics: [order-placed]
            BatchSize: 100
            MaximumBatchingWindowInSeconds: 1
            StartingPosition: TRIM_HORIZON
            ConsumerGroupId: inventory
  RelayFunction:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        EveryMinute:
          Type: Schedule
          Properties:
            Schedule: rate(1 minute)
"#;

    #[test]
    fn functions_carry_binaries_environment_and_triggers() {
        let template = Template::parse(SAMPLE).unwrap();
        let inventory = template.function("InventoryFunction").unwrap();
        assert_eq!(inventory.binary.as_deref(), Some("inventory"));
        assert_eq!(inventory.code_uri.as_deref(), Some("."));
        assert_eq!(
            inventory.environment.iter().collect::<Vec<_>>(),
            ["DB_HOST", "KAFKA_BOOTSTRAP_SERVERS"]
        );
        let (name, msk) = inventory.msk_events().next().unwrap();
        assert_eq!(name, "OrderPlaced");
        assert_eq!(msk.topics, ["order-placed"]);
        assert_eq!(msk.batch_size, Some(100));
        assert_eq!(msk.maximum_batching_window_secs, Some(1));
        assert_eq!(msk.consumer_group_id.as_deref(), Some("inventory"));
        let relay = template.function("RelayFunction").unwrap();
        assert_eq!(relay.schedules().collect::<Vec<_>>(), ["rate(1 minute)"]);
    }

    #[test]
    fn rates_convert_to_seconds() {
        assert_eq!(rate_in_seconds("rate(1 minute)"), Some(60));
        assert_eq!(rate_in_seconds("rate(5 minutes)"), Some(300));
        assert_eq!(rate_in_seconds("cron(0 * * * ? *)"), None);
    }
}
