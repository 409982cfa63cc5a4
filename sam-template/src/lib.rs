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
//! - [`Secret`], [`DatabaseProxy`], [`IamRole`]: who can read which secret (the database
//!   logins).
//! - [`bundle`]: what `sam build` left for each function (`scripts/test sam_build`).
//! - [`variant`]: a copy of the template with another parameter default (`scripts/test
//!   template`).
//! - [`contract`]: compares the view with what the code expects ([`contract::Expectation`],
//!   [`contract::DatabaseLogins`]) and lists every [`contract::Drift`].

pub mod bundle;
pub mod contract;
pub mod variant;

use std::collections::{BTreeMap, BTreeSet};
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

/// The template's serverless functions and HTTP APIs, and what decides who reads which secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub functions: Vec<Function>,
    pub http_apis: Vec<HttpApi>,
    pub secrets: Vec<Secret>,
    pub database_proxies: Vec<DatabaseProxy>,
    pub iam_roles: Vec<IamRole>,
    /// Each resource (by logical id) and `Globals`, [`render`]ed whole: what [`Template::naming`]
    /// searches.
    rendered: Vec<(String, String)>,
}

/// One `AWS::SecretsManager::Secret` the template creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub logical_id: String,
    pub condition: Option<String>,
    /// `username` of `GenerateSecretString.SecretStringTemplate` (a JSON object).
    pub username: Option<String>,
    /// `GenerateSecretString.GenerateStringKey`: the key the generated string is stored under.
    pub generated_key: Option<String>,
    pub password_length: Option<u64>,
    pub exclude_punctuation: bool,
}

/// One `AWS::RDS::DBProxy` (RDS Proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseProxy {
    pub logical_id: String,
    pub require_tls: bool,
    /// `RoleArn` as written (the role the proxy reads its secrets with).
    pub role_arn: Option<String>,
    /// `Auth`, in template order: the users clients may log in as.
    pub auth: Vec<ProxyAuth>,
}

/// One entry of a proxy's `Auth`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAuth {
    /// `SecretArn` as written, such as `!Ref OrderApiDatabaseSecret`.
    pub secret: Option<String>,
    pub auth_scheme: Option<String>,
    pub iam_auth: Option<String>,
}

/// One `AWS::IAM::Role`: the secrets its inline policies let it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamRole {
    pub logical_id: String,
    /// See [`Function::secret_reads`].
    pub secret_reads: BTreeSet<String>,
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
    /// `Metadata.BuildMethod`, such as `rust-cargolambda`: how `sam build` builds it.
    pub build_method: Option<String>,
    /// `Metadata.BuildProperties.Binary`: which workspace binary cargo-lambda builds.
    pub binary: Option<String>,
    /// Names of the environment variables set (function and `Globals`).
    pub environment: BTreeSet<String>,
    /// The same variables with their values, [`render`]ed (the function's over `Globals`').
    pub variables: BTreeMap<String, String>,
    /// `Layers`, [`render`]ed; empty when it has none.
    pub layers: String,
    /// What its `Policies` allow `secretsmanager:GetSecretValue` on, each resource
    /// [`render`]ed (`!Ref SmtpSecret`, `!GetAtt Database.MasterUserSecret.SecretArn`, `*`).
    /// Both branches of an `!If` count, and so does the SAM policy template
    /// `AWSSecretsManagerGetSecretValuePolicy`; managed policies, named by name or ARN, are
    /// not looked into.
    pub secret_reads: BTreeSet<String>,
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
        let global_variables = variable_values(&globals["Environment"]["Variables"]);
        let resources = root["Resources"]
            .as_mapping()
            .ok_or_else(|| TemplateError::Shape("the template has no Resources".to_owned()))?;
        let mut functions = Vec::new();
        let mut http_apis = Vec::new();
        let mut secrets = Vec::new();
        let mut database_proxies = Vec::new();
        let mut iam_roles = Vec::new();
        let mut rendered = vec![("Globals".to_owned(), render(&root["Globals"]))];
        for (id, resource) in resources {
            let logical_id = id.as_str().unwrap_or_default().to_owned();
            rendered.push((logical_id.clone(), render(resource)));
            let properties = &resource["Properties"];
            match resource["Type"].as_str() {
                Some("AWS::Serverless::HttpApi") => {
                    http_apis.push(http_api(&logical_id, resource));
                    continue;
                }
                Some("AWS::SecretsManager::Secret") => {
                    secrets.push(secret(logical_id, resource));
                    continue;
                }
                Some("AWS::RDS::DBProxy") => {
                    database_proxies.push(database_proxy(logical_id, properties));
                    continue;
                }
                Some("AWS::IAM::Role") => {
                    iam_roles.push(IamRole {
                        logical_id,
                        secret_reads: secret_reads(&properties["Policies"]),
                    });
                    continue;
                }
                Some("AWS::Serverless::Function") => {}
                _ => continue,
            }
            let mut variables = global_variables.clone();
            variables.extend(variable_values(&properties["Environment"]["Variables"]));
            let environment = variables.keys().cloned().collect();
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
                build_method: resource["Metadata"]["BuildMethod"]
                    .as_str()
                    .map(str::to_owned),
                binary: resource["Metadata"]["BuildProperties"]["Binary"]
                    .as_str()
                    .map(str::to_owned),
                logical_id,
                environment,
                variables,
                layers: render(&properties["Layers"]),
                secret_reads: secret_reads(&properties["Policies"]),
                events,
            });
        }
        Ok(Self {
            functions,
            http_apis,
            secrets,
            database_proxies,
            iam_roles,
            rendered,
        })
    }

    pub fn function(&self, logical_id: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }

    pub fn http_api(&self, logical_id: &str) -> Option<&HttpApi> {
        self.http_apis.iter().find(|a| a.logical_id == logical_id)
    }

    pub fn iam_role(&self, logical_id: &str) -> Option<&IamRole> {
        self.iam_roles.iter().find(|r| r.logical_id == logical_id)
    }

    /// The resources (logical ids), and `Globals`, that name `identifier` anywhere: as a
    /// logical id or attribute in an intrinsic, or as a word in a value (see [`names`]).
    pub fn naming(&self, identifier: &str) -> Vec<&str> {
        self.rendered
            .iter()
            .filter(|(_, text)| names(text, identifier))
            .map(|(place, _)| place.as_str())
            .collect()
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

fn variable_values(variables: &Value) -> BTreeMap<String, String> {
    variables
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| name.as_str().map(|name| (name.to_owned(), render(value))))
        .collect()
}

/// Whether `text` (a [`render`]ed value) names `identifier`: has it as one of its words, the
/// runs of letters and digits (`!GetAtt Database.MasterUserSecret.SecretArn` names `Database`
/// and `MasterUserSecret`; `!Sub a=${OrderApiDatabaseSecret}` names `OrderApiDatabaseSecret`).
pub fn names(text: &str, identifier: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| word == identifier)
}

/// The action a function needs to read a secret's value.
const GET_SECRET_VALUE: &str = "secretsmanager:GetSecretValue";

/// The SAM policy template that grants [`GET_SECRET_VALUE`] on its `SecretArn`.
const SAM_SECRET_POLICY: &str = "AWSSecretsManagerGetSecretValuePolicy";

/// Whether an IAM action pattern (`secretsmanager:GetSecretValue`, `secretsmanager:Get*`,
/// `*`) covers [`GET_SECRET_VALUE`]; IAM compares actions without regard to case.
fn allows_get_secret_value(pattern: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let action = GET_SECRET_VALUE.to_ascii_lowercase();
    match pattern.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => pattern == action,
    }
}

/// The resources `policies` (a function's `Policies`, a role's `Policies`, a policy document,
/// a statement or a list of them) allow [`GET_SECRET_VALUE`] on, each [`render`]ed. Both
/// branches of an `!If` count: either may be deployed.
fn secret_reads(policies: &Value) -> BTreeSet<String> {
    let mut reads = BTreeSet::new();
    collect_secret_reads(policies, &mut reads);
    reads
}

fn collect_secret_reads(value: &Value, reads: &mut BTreeSet<String>) {
    match value {
        Value::Sequence(items) => {
            for item in items {
                collect_secret_reads(item, reads);
            }
        }
        Value::Tagged(tagged) if tagged.tag == "!If" => {
            if let Some(branches) = tagged.value.as_sequence() {
                for branch in branches.iter().skip(1) {
                    collect_secret_reads(branch, reads);
                }
            }
        }
        Value::Mapping(map) => {
            if let Some(template) = map.get(SAM_SECRET_POLICY) {
                reads.insert(render(&template["SecretArn"]));
            }
            for key in ["PolicyDocument", "Statement"] {
                if let Some(inner) = map.get(key) {
                    collect_secret_reads(inner, reads);
                }
            }
            let allows = value["Effect"].as_str() == Some("Allow")
                && action_patterns(&value["Action"])
                    .iter()
                    .any(|pattern| allows_get_secret_value(pattern));
            if allows {
                match &value["Resource"] {
                    Value::Sequence(resources) => reads.extend(resources.iter().map(render)),
                    resource => {
                        reads.insert(render(resource));
                    }
                }
            }
        }
        _ => {}
    }
}

fn action_patterns(action: &Value) -> Vec<String> {
    match action {
        Value::Sequence(actions) => actions.iter().map(render).collect(),
        Value::Null => Vec::new(),
        action => vec![render(action)],
    }
}

fn secret(logical_id: String, resource: &Value) -> Secret {
    let generate = &resource["Properties"]["GenerateSecretString"];
    // The template is a JSON object, which is YAML too.
    let username = generate["SecretStringTemplate"]
        .as_str()
        .and_then(|text| serde_norway::from_str::<Value>(text).ok())
        .and_then(|template| template["username"].as_str().map(str::to_owned));
    Secret {
        logical_id,
        condition: resource["Condition"].as_str().map(str::to_owned),
        username,
        generated_key: generate["GenerateStringKey"].as_str().map(str::to_owned),
        password_length: generate["PasswordLength"].as_u64(),
        exclude_punctuation: generate["ExcludePunctuation"].as_bool() == Some(true),
    }
}

fn database_proxy(logical_id: String, properties: &Value) -> DatabaseProxy {
    let text = |value: &Value| match value {
        Value::Null => None,
        value => Some(render(value)),
    };
    DatabaseProxy {
        logical_id,
        require_tls: properties["RequireTLS"].as_bool() == Some(true),
        role_arn: text(&properties["RoleArn"]),
        auth: properties["Auth"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|auth| ProxyAuth {
                secret: text(&auth["SecretArn"]),
                auth_scheme: text(&auth["AuthScheme"]),
                iam_auth: text(&auth["IAMAuth"]),
            })
            .collect(),
    }
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
        assert_eq!(inventory.build_method.as_deref(), Some("rust-cargolambda"));
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

    const POLICIES: &str = r#"
Resources:
  Reader:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          DB_SECRET_ARN: !Ref ReaderSecret
      Policies:
        - Statement:
            - Effect: Allow
              Action: [kms:Decrypt, secretsmanager:GetSecretValue]
              Resource: [!Ref ReaderSecret, !If [Other, !Ref OtherSecret, !Ref AWS::NoValue]]
            - Effect: Deny
              Action: secretsmanager:GetSecretValue
              Resource: !Ref DeniedSecret
            - Effect: Allow
              Action: kafka-cluster:Connect
              Resource: !Ref Cluster
        - !If
          - Scram
          - Statement:
              - Effect: Allow
                Action: secretsmanager:Get*
                Resource: !Ref ScramSecret
          - !Ref AWS::NoValue
        - AWSSecretsManagerGetSecretValuePolicy:
            SecretArn: !Ref TemplateSecret
  ReaderRole:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: all
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: "*"
                Resource: "*"
  ReaderSecret:
    Type: AWS::SecretsManager::Secret
    Properties:
      GenerateSecretString:
        SecretStringTemplate: '{"username": "reader"}'
        GenerateStringKey: password
        PasswordLength: 40
"#;

    #[test]
    fn secret_reads_follow_statements_conditions_and_policy_templates() {
        let template = Template::parse(POLICIES).unwrap();
        let reader = template.function("Reader").unwrap();
        assert_eq!(
            reader.secret_reads,
            [
                "!If [Other, !Ref OtherSecret, !Ref AWS::NoValue]",
                "!Ref ReaderSecret",
                "!Ref ScramSecret",
                "!Ref TemplateSecret",
            ]
            .map(str::to_owned)
            .into()
        );
        assert_eq!(reader.variables["DB_SECRET_ARN"], "!Ref ReaderSecret");
        assert_eq!(
            template.iam_role("ReaderRole").unwrap().secret_reads,
            BTreeSet::from(["*".to_owned()])
        );
        let [secret] = template.secrets.as_slice() else {
            panic!("{:?}", template.secrets);
        };
        assert_eq!(secret.username.as_deref(), Some("reader"));
        assert_eq!(secret.generated_key.as_deref(), Some("password"));
        assert_eq!(secret.password_length, Some(40));
        assert!(!secret.exclude_punctuation);
        assert_eq!(template.naming("OtherSecret"), ["Reader"]);
        assert_eq!(template.naming("Other"), ["Reader"]);
        // Words, not substrings: ReaderSecret does not name Reader.
        assert!(template.naming("Reader").is_empty());
    }

    #[test]
    fn rates_convert_to_seconds() {
        assert_eq!(rate_in_seconds("rate(1 minute)"), Some(60));
        assert_eq!(rate_in_seconds("rate(5 minutes)"), Some(300));
        assert_eq!(rate_in_seconds("cron(0 * * * ? *)"), None);
    }
}
