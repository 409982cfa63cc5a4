//! The template contract: `template.yaml` against what the code reads, handles and serves.
//! Every expectation below is derived from the code (config loaders, consumers, the OpenAPI
//! document generated from the API's routes), so renaming either side fails here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sam_template::contract::{
    DatabaseLogins, Drift, Expectation, IAM_AUTHORIZER, MASTER_SECRET, Workspace, check,
    check_database_logins,
};
use sam_template::{Template, render};
use shared::db::Role;
use shared::events::{EventType, topics};
use shared::metrics::{labels, names};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template_text() -> String {
    std::fs::read_to_string(repo_root().join("template.yaml")).expect("template.yaml exists")
}

/// The binaries of the workspace's default members, as cargo sees them: `sam build` runs
/// `cargo lambda build --bin <name>` at the root without `-p`, which picks among those.
fn workspace() -> Workspace {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(repo_root())
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "cargo metadata: {output:?}");
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut binaries = BTreeSet::new();
    let mut ambiguous_binaries = BTreeSet::new();
    let default_members = metadata["workspace_default_members"].as_array().unwrap();
    let bins = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|package| default_members.contains(&package["id"]))
        .flat_map(|package| package["targets"].as_array().unwrap())
        .filter(|target| {
            target["kind"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == "bin")
        })
        .map(|target| target["name"].as_str().unwrap().to_owned());
    for bin in bins {
        if !binaries.insert(bin.clone()) {
            ambiguous_binaries.insert(bin);
        }
    }
    // cargo-lambda builds from the directory holding the workspace manifest.
    let manifest = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("[workspace]"),
        "template.yaml sits at the workspace root"
    );
    Workspace {
        binaries,
        ambiguous_binaries,
        workspace_code_uris: [".", "./"].map(str::to_owned).into(),
        topics: topics::ALL.map(str::to_owned).into(),
    }
}

/// (METHOD, path) of every operation in the committed OpenAPI document, which the order API
/// generates from its routes (and its own test keeps in sync).
fn api_routes() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("openapi.json")).unwrap();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// The topics the notification function mails about: the events it has a mail for.
fn notification_topics() -> Vec<String> {
    [
        EventType::OrderPlaced,
        EventType::OrderConfirmed,
        EventType::OrderRejected,
        EventType::OrderReserved,
        EventType::OrderPaid,
        EventType::OrderPaymentFailed,
        EventType::OrderCancelled,
    ]
    .into_iter()
    .filter(|kind| notification::content::NoticeKind::for_event(*kind).is_some())
    .map(|kind| kind.topic().to_owned())
    .collect()
}

/// The relay's period: docs/architecture.md runs it every minute.
const RELAY_PERIOD: Duration = Duration::from_secs(60);

/// The JWT authorizer of the customer routes, declared on the order API.
const CUSTOMER_AUTHORIZER: &str = "CustomerJwt";

/// The API's three audiences (docs/access.md), visible in the path: operators under
/// `/api/admin/`, signed-in customers under `/api/me/`, guests everywhere else.
fn audience_authorizer(path: &str) -> Option<&'static str> {
    if path.starts_with("/api/admin/") {
        Some(IAM_AUTHORIZER)
    } else if path == "/api/me" || path.starts_with("/api/me/") {
        Some(CUSTOMER_AUTHORIZER)
    } else {
        None
    }
}

/// Every route of the order API with the authorizer of its audience. This list is the
/// template's side of the contract written out; `the_template_matches_the_code` holds the
/// template against the routes the API serves (openapi.json), so the two cannot part.
#[rustfmt::skip]
const ORDER_API_ROUTES: [(&str, &str, Option<&str>); 18] = [
    // Guests: no authorizer.
    ("POST", "/api/orders", None),
    ("GET", "/api/orders/{id}", None),
    ("GET", "/api/stock", None),
    ("GET", "/api/stock/{productName}", None),
    ("GET", "/api/health", None),
    ("GET", "/api/openapi.json", None),
    // Customers: a JWT of the customer provider.
    ("POST", "/api/me/orders", Some(CUSTOMER_AUTHORIZER)),
    ("GET", "/api/me/orders", Some(CUSTOMER_AUTHORIZER)),
    ("GET", "/api/me/orders/{id}", Some(CUSTOMER_AUTHORIZER)),
    ("POST", "/api/me/orders/{id}/cancel", Some(CUSTOMER_AUTHORIZER)),
    ("DELETE", "/api/me", Some(CUSTOMER_AUTHORIZER)),
    // Operators: SigV4-signed requests of an IAM principal.
    ("GET", "/api/admin/orders", Some(IAM_AUTHORIZER)),
    ("GET", "/api/admin/orders/{id}", Some(IAM_AUTHORIZER)),
    ("POST", "/api/admin/orders/{id}/cancel", Some(IAM_AUTHORIZER)),
    ("PUT", "/api/admin/stock/{productName}", Some(IAM_AUTHORIZER)),
    ("POST", "/api/admin/customers/erase", Some(IAM_AUTHORIZER)),
    ("GET", "/api/admin/dead-letters", Some(IAM_AUTHORIZER)),
    ("POST", "/api/admin/dead-letters/{id}/replay", Some(IAM_AUTHORIZER)),
];

/// Variables order-api reads that the template leaves unset, so that they keep the code's
/// default: `ABUSE_LIMITS=off` is for benchmarks only (docs/access.md, "Abuse limits").
const ORDER_API_LEFT_AT_DEFAULT: [&str; 1] = ["ABUSE_LIMITS"];

/// order-api on classic Lambda (`OrderApiFunction`) and on a capacity provider
/// (`OrderApiManagedFunction`, with `OrderApiOnManagedInstances`): the code expects the same of
/// both.
fn order_api_expectation(logical_id: &str) -> Expectation {
    let routes = api_routes();
    let authorized_routes = routes
        .iter()
        .filter_map(|(method, path)| {
            audience_authorizer(path)
                .map(|authorizer| (method.clone(), path.clone(), authorizer.to_owned()))
        })
        .collect();
    Expectation {
        logical_id: logical_id.into(),
        binary: "order-api".into(),
        // The config loader's variables include the abuse limits' (order_api::limits).
        reads: order_api::config::OrderApiConfig::variables(),
        left_at_default: ORDER_API_LEFT_AT_DEFAULT.map(str::to_owned).into(),
        routes,
        authorized_routes,
        ..Expectation::default()
    }
}

fn expectations() -> Vec<Expectation> {
    vec![
        order_api_expectation("OrderApiFunction"),
        order_api_expectation("OrderApiManagedFunction"),
        Expectation {
            logical_id: "InventoryFunction".into(),
            binary: "inventory".into(),
            reads: inventory::InventoryConfig::variables(),
            // The inventory decides placed orders and settles their payments
            // (docs/architecture.md).
            consumes: vec![
                topics::ORDER_PLACED.into(),
                topics::ORDER_PAID.into(),
                topics::ORDER_PAYMENT_FAILED.into(),
            ],
            ..Expectation::default()
        },
        Expectation {
            logical_id: "PaymentFunction".into(),
            binary: "payment".into(),
            reads: payment::PaymentConfig::variables(),
            // Charges reserved orders, refunds cancelled ones (docs/payments.md).
            consumes: vec![
                topics::ORDER_RESERVED.into(),
                topics::ORDER_CANCELLED.into(),
            ],
            ..Expectation::default()
        },
        Expectation {
            logical_id: "NotificationFunction".into(),
            binary: "notification".into(),
            reads: notification::NotificationConfig::variables(),
            consumes: notification_topics(),
            ..Expectation::default()
        },
        Expectation {
            logical_id: "OutboxRelayFunction".into(),
            binary: "outbox-relay".into(),
            reads: outbox_relay::RelayConfig::variables(),
            schedule_secs: Some(RELAY_PERIOD.as_secs()),
            ..Expectation::default()
        },
        Expectation {
            logical_id: "DbMigrateFunction".into(),
            binary: "db-migrate".into(),
            reads: db_migrate::MigrateConfig::variables(),
            ..Expectation::default()
        },
    ]
}

fn drifts_of(text: &str) -> Vec<Drift> {
    let template = Template::parse(text).expect("the template parses");
    check(&template, &expectations(), &workspace())
}

fn assert_reports(drifts: &[Drift], subject: &str, fragment: &str) {
    assert!(
        drifts
            .iter()
            .any(|d| d.subject == subject && d.problem.contains(fragment)),
        "expected a drift for {subject} mentioning {fragment:?}, got: {drifts:#?}"
    );
}

/// Applies one edit to the real template, failing if the text to replace is not there.
fn edited(from: &str, to: &str) -> String {
    let text = template_text();
    assert!(
        text.contains(from),
        "template.yaml no longer contains {from:?}"
    );
    text.replacen(from, to, 1)
}

#[test]
fn the_template_matches_the_code() {
    let drifts = drifts_of(&template_text());
    let listing: Vec<String> = drifts.iter().map(ToString::to_string).collect();
    assert!(
        drifts.is_empty(),
        "template.yaml drifted:\n{}",
        listing.join("\n")
    );
}

#[test]
fn a_renamed_environment_variable_is_reported_both_ways() {
    let drifts = drifts_of(&edited("RELAY_BATCH_SIZE:", "RELAY_BATCHSIZE:"));
    assert_reports(
        &drifts,
        "OutboxRelayFunction",
        "sets RELAY_BATCHSIZE, which its code does not read",
    );
    assert_reports(
        &drifts,
        "OutboxRelayFunction",
        "reads RELAY_BATCH_SIZE, which the template does not set",
    );
    assert_eq!(drifts.len(), 2, "{drifts:#?}");
}

#[test]
fn a_variable_renamed_in_globals_is_reported_for_every_function() {
    let drifts = drifts_of(&edited(
        "        DB_NAME: orders\n",
        "        DB_NAMES: orders\n",
    ));
    for function in [
        "OrderApiFunction",
        "OrderApiManagedFunction",
        "InventoryFunction",
        "NotificationFunction",
        "OutboxRelayFunction",
        "PaymentFunction",
        "DbMigrateFunction",
    ] {
        assert_reports(
            &drifts,
            function,
            "reads DB_NAME, which the template does not set",
        );
    }
}

#[test]
fn a_local_only_variable_in_the_template_is_reported() {
    let drifts = drifts_of(&edited(
        "          SMTP_TIMEOUT_MS: \"10000\"\n",
        "          SMTP_TIMEOUT_MS: \"10000\"\n          SMTP_PASSWORD: hunter2\n",
    ));
    assert_reports(
        &drifts,
        "NotificationFunction",
        "SMTP_PASSWORD, which is for local runs only",
    );
}

#[test]
fn a_topic_the_system_does_not_have_is_reported() {
    let drifts = drifts_of(&edited(
        "Topics: [order-rejected]",
        "Topics: [order-shipped]",
    ));
    assert_reports(
        &drifts,
        "NotificationFunction.OrderRejected",
        "order-shipped, which the system does not have",
    );
    assert_reports(
        &drifts,
        "NotificationFunction",
        "handles order-rejected, but no MSK trigger delivers it",
    );
}

#[test]
fn a_trigger_for_a_topic_the_consumer_ignores_is_reported() {
    let drifts = drifts_of(&edited(
        "Topics: [order-placed]",
        "Topics: [order-confirmed]",
    ));
    assert_reports(
        &drifts,
        "InventoryFunction",
        "triggered by order-confirmed, which its code does not handle",
    );
}

#[test]
fn a_trigger_without_an_on_failure_queue_is_reported() {
    let drifts = drifts_of(&edited(
        "                Destination: !GetAtt InventoryFailureQueue.Arn\n",
        "",
    ));
    assert_reports(
        &drifts,
        "InventoryFunction.OrderPlaced",
        "no DestinationConfig.OnFailure",
    );
}

#[test]
fn a_changed_schedule_is_reported() {
    let drifts = drifts_of(&edited("rate(1 minute)", "rate(5 minutes)"));
    assert_reports(&drifts, "OutboxRelayFunction", "expected every 60 s");
}

#[test]
fn a_binary_that_is_not_in_the_workspace_is_reported() {
    let drifts = drifts_of(&edited("Binary: inventory", "Binary: inventory-v2"));
    assert_reports(
        &drifts,
        "InventoryFunction",
        "binary inventory-v2 is not a workspace binary",
    );
}

#[test]
fn a_binary_name_two_packages_define_is_reported() {
    let template = Template::parse(&template_text()).unwrap();
    let mut workspace = workspace();
    workspace
        .ambiguous_binaries
        .insert("notification".to_owned());
    let drifts = check(&template, &expectations(), &workspace);
    assert_reports(
        &drifts,
        "NotificationFunction",
        "defined by more than one workspace package",
    );
}

#[test]
fn a_code_uri_outside_the_workspace_root_is_reported() {
    let text = template_text().replacen(
        "      CodeUri: .\n",
        "      CodeUri: functions/db-migrate\n",
        1,
    );
    assert_reports(
        &drifts_of(&text),
        "OrderApiFunction",
        "is not the workspace root",
    );
}

#[test]
fn an_admin_route_without_iam_is_reported() {
    let drifts = drifts_of(&edited(
        "            Path: /api/admin/stock/{productName}\n            Auth:\n              Authorizer: AWS_IAM\n",
        "            Path: /api/admin/stock/{productName}\n",
    ));
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "PUT /api/admin/stock/{productName} must use AWS_IAM, has None",
    );
}

#[test]
fn a_dead_letter_route_without_iam_is_reported() {
    let drifts = drifts_of(&edited(
        "            Path: /api/admin/dead-letters/{id}/replay\n            Auth:\n              Authorizer: AWS_IAM\n",
        "            Path: /api/admin/dead-letters/{id}/replay\n",
    ));
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "POST /api/admin/dead-letters/{id}/replay must use AWS_IAM",
    );
}

#[test]
fn an_admin_route_with_the_customer_authorizer_is_reported() {
    let drifts = drifts_of(&edited(
        "            Path: /api/admin/orders/{id}\n            Auth:\n              Authorizer: AWS_IAM\n",
        "            Path: /api/admin/orders/{id}\n            Auth:\n              Authorizer: CustomerJwt\n",
    ));
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "GET /api/admin/orders/{id} must use AWS_IAM, has Some(\"CustomerJwt\")",
    );
}

#[test]
fn a_customer_route_without_the_jwt_authorizer_is_reported() {
    let drifts = drifts_of(&edited(
        "            Path: /api/me/orders/{id}/cancel\n            Auth:\n              Authorizer: CustomerJwt\n",
        "            Path: /api/me/orders/{id}/cancel\n",
    ));
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "POST /api/me/orders/{id}/cancel must use CustomerJwt, has None",
    );
}

#[test]
fn a_customer_route_opted_out_with_none_is_reported() {
    let drifts = drifts_of(&edited(
        "            Path: /api/me/orders/{id}\n            Auth:\n              Authorizer: CustomerJwt\n",
        "            Path: /api/me/orders/{id}\n            Auth:\n              Authorizer: NONE\n",
    ));
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "GET /api/me/orders/{id} must use CustomerJwt, has None",
    );
}

#[test]
fn a_guest_route_with_an_authorizer_is_reported() {
    let drifts = drifts_of(&edited(
        "            Path: /api/stock/{productName}\n",
        "            Path: /api/stock/{productName}\n            Auth:\n              Authorizer: CustomerJwt\n",
    ));
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "GET /api/stock/{productName} has authorizer CustomerJwt, expected none",
    );
}

/// A DefaultAuthorizer would reach every route that names none: the guest routes.
#[test]
fn a_default_authorizer_on_the_api_is_reported() {
    let drifts = drifts_of(&edited(
        "      Auth:\n        EnableIamAuthorizer: true\n",
        "      Auth:\n        DefaultAuthorizer: CustomerJwt\n        EnableIamAuthorizer: true\n",
    ));
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "GET /api/health has authorizer CustomerJwt, expected none",
    );
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "whose DefaultAuthorizer CustomerJwt every route without its own gets",
    );
}

#[test]
fn an_authorizer_the_api_does_not_declare_is_reported() {
    let drifts = drifts_of(&edited(
        "          CustomerJwt:\n",
        "          ShopperJwt:\n",
    ));
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "POST /api/me/orders uses authorizer CustomerJwt, which OrderHttpApi does not declare",
    );
}

#[test]
fn a_route_of_the_old_api_is_reported() {
    // PUT /api/stock/{productName} moved to /api/admin/stock/{productName}, with no fallback.
    let drifts = drifts_of(&edited(
        "            Path: /api/admin/stock/{productName}\n",
        "            Path: /api/stock/{productName}\n",
    ));
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "routes PUT /api/stock/{productName}, which the API does not serve",
    );
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "serves PUT /api/admin/stock/{productName}, which the template does not route",
    );
}

#[test]
fn the_benchmark_switch_in_the_template_is_reported() {
    let drifts = drifts_of(&edited(
        "          LIMIT_WINDOW_SECS: !Ref LimitWindowSecs\n",
        "          LIMIT_WINDOW_SECS: !Ref LimitWindowSecs\n          ABUSE_LIMITS: \"off\"\n",
    ));
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "sets ABUSE_LIMITS, which must keep the code's default",
    );
}

/// Both order-api functions route exactly the three audiences' routes, each with its
/// audience's authorizer (this one does not read openapi.json).
#[test]
fn every_route_has_its_audiences_authorizer() {
    let template = Template::parse(&template_text()).unwrap();
    let wanted: BTreeSet<(String, String, Option<String>)> = ORDER_API_ROUTES
        .iter()
        .map(|(method, path, authorizer)| {
            assert_eq!(*authorizer, audience_authorizer(path), "{method} {path}");
            (
                (*method).to_owned(),
                (*path).to_owned(),
                authorizer.map(str::to_owned),
            )
        })
        .collect();
    for id in ["OrderApiFunction", "OrderApiManagedFunction"] {
        let function = template.function(id).unwrap();
        let routed: BTreeSet<(String, String, Option<String>)> = function
            .events
            .iter()
            .filter_map(|event| match &event.source {
                sam_template::EventSource::HttpApi {
                    method,
                    path,
                    authorizer,
                    api,
                } => Some((
                    method.to_uppercase(),
                    path.clone(),
                    template.route_authorizer(api.as_deref(), authorizer.as_deref()),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(routed, wanted, "{id}");
    }
    for api in &template.http_apis {
        assert_eq!(api.default_authorizer, None, "{}", api.logical_id);
        assert!(api.iam_authorizer, "{}", api.logical_id);
        assert_eq!(
            api.authorizers,
            BTreeSet::from([CUSTOMER_AUTHORIZER.to_owned()]),
            "{}",
            api.logical_id
        );
    }
}

#[test]
fn a_route_the_api_does_not_serve_is_reported() {
    let drifts = drifts_of(&edited("Path: /api/health", "Path: /api/healthz"));
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "routes GET /api/healthz, which the API does not serve",
    );
    assert_reports(
        &drifts,
        "OrderApiFunction",
        "serves GET /api/health, which the template does not route",
    );
}

#[test]
fn a_renamed_function_is_reported() {
    let text = template_text().replace("OutboxRelayFunction", "RelayFunction");
    let drifts = drifts_of(&text);
    assert_reports(&drifts, "RelayFunction", "no code expects it");
    assert_reports(&drifts, "OutboxRelayFunction", "missing from the template");
}

#[test]
fn msk_triggers_declare_every_setting_the_local_runtime_reads() {
    let template = Template::parse(&template_text()).unwrap();
    let mut groups = BTreeSet::new();
    for function in &template.functions {
        for (event, msk) in function.msk_events() {
            assert_eq!(
                msk.stream.as_deref(),
                Some("!GetAtt KafkaCluster.ClusterArn"),
                "{event}"
            );
            assert!(msk.batch_size.is_some() && msk.maximum_batching_window_secs.is_some());
            let queue = msk.on_failure.as_deref().unwrap_or_default();
            assert!(
                queue.starts_with("!GetAtt ") && queue.ends_with("FailureQueue.Arn"),
                "{queue}"
            );
            assert_eq!(msk.starting_position.as_deref(), Some("TRIM_HORIZON"));
            assert!(groups.insert(msk.consumer_group_id.clone().unwrap()));
        }
    }
    assert_eq!(
        groups.len(),
        9,
        "inventory's three, notification's four and payment's two triggers: {groups:?}"
    );
}

#[test]
fn the_relays_grace_period_is_shorter_than_its_schedule() {
    // A row left behind is picked up at most min_age + one period after it was written.
    let min_age = outbox_relay::RelayLimits::default().min_age;
    assert!(min_age < RELAY_PERIOD, "{min_age:?}");
}

/// The template's raw YAML, for what the typed view leaves out (conditions, policies).
fn raw_template() -> serde_norway::Value {
    serde_norway::from_str(&template_text()).unwrap()
}

fn condition_of(root: &serde_norway::Value, logical_id: &str) -> String {
    root["Resources"][logical_id]["Condition"]
        .as_str()
        .unwrap_or_else(|| panic!("{logical_id} has no Condition"))
        .to_owned()
}

/// `OrderApiOnManagedInstances` deploys exactly one of the two order-api functions, each behind
/// an API deployed with it, and both carry the same settings: only the compute differs.
#[test]
fn exactly_one_order_api_is_deployed_and_both_are_alike() {
    let root = raw_template();
    let conditions = &root["Conditions"];
    let classic = condition_of(&root, "OrderApiFunction");
    let managed = condition_of(&root, "OrderApiManagedFunction");
    assert_eq!(
        render(&conditions[managed.as_str()]),
        "!Equals [!Ref OrderApiOnManagedInstances, true]"
    );
    assert_eq!(
        render(&conditions[classic.as_str()]),
        format!("!Not [!Condition {managed}]")
    );
    assert_eq!(condition_of(&root, "OrderApiCapacityProvider"), managed);

    let template = Template::parse(&template_text()).unwrap();
    for (function, condition) in [
        ("OrderApiFunction", &classic),
        ("OrderApiManagedFunction", &managed),
    ] {
        let events = &root["Resources"][function]["Properties"]["Events"];
        let mut apis = BTreeSet::new();
        for (_, event) in events.as_mapping().unwrap() {
            apis.insert(render(&event["Properties"]["ApiId"]));
        }
        assert_eq!(apis.len(), 1, "{function} routes to one API: {apis:?}");
        let api = apis.pop_first().unwrap();
        let api = api.strip_prefix("!Ref ").unwrap();
        assert_eq!(
            &condition_of(&root, api),
            condition,
            "{function}'s API {api}"
        );
        assert!(template.function(function).unwrap().http_routes().count() > 0);
    }

    let properties = |id: &str| &root["Resources"][id]["Properties"];
    for key in [
        "Environment",
        "Policies",
        "Timeout",
        "LoggingConfig",
        "Layers",
        "CodeUri",
    ] {
        assert_eq!(
            properties("OrderApiFunction")[key],
            properties("OrderApiManagedFunction")[key],
            "{key} differs between the two order-api functions"
        );
    }
    let routes = |id: &str| -> Vec<_> {
        template
            .function(id)
            .unwrap()
            .http_routes()
            .map(|(method, path, auth)| {
                (method.to_owned(), path.to_owned(), auth.map(str::to_owned))
            })
            .collect()
    };
    assert_eq!(
        routes("OrderApiFunction"),
        routes("OrderApiManagedFunction")
    );
    assert_eq!(
        render(&properties("OrderApiManagedFunction")["CapacityProviderConfig"]["Arn"]),
        "!GetAtt OrderApiCapacityProvider.Arn"
    );
    // The two APIs are alike too (the parser resolves YAML aliases, so this compares values).
    assert_eq!(
        properties("OrderHttpApi"),
        properties("OrderApiManagedHttpApi"),
        "the two order APIs differ"
    );
}

/// The SAM transform adds a function's routes to the very API object its events name: two APIs
/// sharing one properties object through a YAML alias would each receive both functions' routes,
/// and the transform refuses the template ("API method 'get' defined multiple times"). So no
/// resource's `Properties` may be a YAML anchor or alias; each is written out.
#[test]
fn no_resource_shares_its_properties_through_a_yaml_alias() {
    let text = template_text();
    let mut resource = "a resource";
    for line in text.lines() {
        if let Some(id) = line
            .strip_prefix("  ")
            .filter(|rest| !rest.starts_with([' ', '#']))
            .and_then(|rest| rest.strip_suffix(':'))
        {
            resource = id;
        }
        if let Some(properties) = line.strip_prefix("    Properties:") {
            let properties = properties.trim_start();
            assert!(
                !properties.starts_with(['&', '*']),
                "{resource}'s Properties are a YAML anchor or alias ({properties}): write them out"
            );
        }
    }
}

/// The connection budget db-migrate checks counts order-api's environments times their pool
/// when it runs on the capacity provider: MaxVCpuCount environments of one vCPU each.
#[test]
fn the_budget_counts_the_capacity_providers_environments() {
    let root = raw_template();
    let resources = &root["Resources"];
    let budget = render(
        &resources["DbMigrateFunction"]["Properties"]["Environment"]["Variables"]["CONNECTION_BUDGET"],
    );
    assert!(
        budget.contains("!Sub ${OrderApiManagedMaxVCpu}x${OrderApiEnvironmentPoolSize}"),
        "{budget}"
    );
    assert_eq!(
        render(
            &resources["OrderApiCapacityProvider"]["Properties"]["ScalingConfig"]["MaxVCpuCount"]
        ),
        "!Ref OrderApiManagedMaxVCpu"
    );
    let managed = &resources["OrderApiManagedFunction"]["Properties"];
    // One vCPU per environment: the smallest environment (2 GB) at 2 GB per vCPU.
    assert_eq!(managed["MemorySize"].as_u64(), Some(2048));
    assert_eq!(
        managed["CapacityProviderConfig"]["ExecutionEnvironmentMemoryGiBPerVCpu"].as_u64(),
        Some(2)
    );
    assert_eq!(
        render(&managed["Environment"]["Variables"]["DB_MAX_CONNECTIONS"]),
        "!If [OrderApiIsManaged, !Ref OrderApiEnvironmentPoolSize, !Ref OrderApiPoolSize]"
    );
}

/// Every MSK trigger polls on its own (one batch per partition at a time), so every consumer
/// group has its own entry in the connection budget db-migrate checks: a trigger added without
/// one would open connections nobody counted.
#[test]
fn every_msk_trigger_has_its_entry_in_the_connection_budget() {
    let root = raw_template();
    let budget = render(
        &root["Resources"]["DbMigrateFunction"]["Properties"]["Environment"]["Variables"]["CONNECTION_BUDGET"],
    );
    let template = Template::parse(&template_text()).unwrap();
    let mut triggers = 0;
    for function in &template.functions {
        for (event, msk) in function.msk_events() {
            let group = msk.consumer_group_id.clone().unwrap();
            let entry = format!("{group}=${{TopicPartitions}}x${{ConsumerPoolSize}}");
            assert!(budget.contains(&entry), "{event}: no `{entry}` in {budget}");
            triggers += 1;
        }
    }
    assert_eq!(triggers, 9);
}

/// The customer authorizer validates the tokens of the stack's Cognito user pool and app
/// client, or of the OpenID Connect provider the two parameters name (then no pool is made).
#[test]
fn the_customer_authorizer_trusts_the_pool_or_the_given_provider() {
    let root = raw_template();
    let resources = &root["Resources"];
    let conditions = &root["Conditions"];
    assert_eq!(
        render(&conditions["UseExternalCustomerOidc"]),
        "!And [!Not [!Equals [!Ref CustomerOidcIssuerUrl, ]], !Not [!Equals [!Ref CustomerOidcAudience, ]]]"
    );
    assert_eq!(
        render(&conditions["CreateCustomerUserPool"]),
        "!Not [!Condition UseExternalCustomerOidc]"
    );
    for id in ["CustomerUserPool", "CustomerUserPoolClient"] {
        assert_eq!(condition_of(&root, id), "CreateCustomerUserPool");
    }
    for parameter in ["CustomerOidcIssuerUrl", "CustomerOidcAudience"] {
        assert_eq!(root["Parameters"][parameter]["Default"].as_str(), Some(""));
    }

    for api in ["OrderHttpApi", "OrderApiManagedHttpApi"] {
        let authorizer = &resources[api]["Properties"]["Auth"]["Authorizers"][CUSTOMER_AUTHORIZER];
        assert_eq!(
            authorizer["IdentitySource"].as_str(),
            Some("$request.header.Authorization"),
            "{api}"
        );
        let jwt = &authorizer["JwtConfiguration"];
        assert_eq!(
            render(&jwt["issuer"]),
            "!If [UseExternalCustomerOidc, !Ref CustomerOidcIssuerUrl, \
             !Sub https://cognito-idp.${AWS::Region}.amazonaws.com/${CustomerUserPool}]",
            "{api}"
        );
        assert_eq!(
            render(&jwt["audience"]),
            "[!If [UseExternalCustomerOidc, !Ref CustomerOidcAudience, !Ref CustomerUserPoolClient]]",
            "{api}"
        );
    }

    let pool = &resources["CustomerUserPool"]["Properties"];
    assert_eq!(render(&pool["UsernameAttributes"]), "[email]");
    assert_eq!(render(&pool["AutoVerifiedAttributes"]), "[email]");
    let client = &resources["CustomerUserPoolClient"]["Properties"];
    assert_eq!(render(&client["UserPoolId"]), "!Ref CustomerUserPool");
    assert_eq!(client["GenerateSecret"].as_bool(), Some(false));
    let flows: BTreeSet<String> = client["ExplicitAuthFlows"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(render)
        .collect();
    assert_eq!(
        flows,
        BTreeSet::from(
            [
                "ALLOW_USER_PASSWORD_AUTH",
                "ALLOW_USER_SRP_AUTH",
                "ALLOW_REFRESH_TOKEN_AUTH"
            ]
            .map(str::to_owned)
        )
    );

    let outputs = &root["Outputs"];
    assert_eq!(
        render(&outputs["CustomerUserPoolId"]["Value"]),
        "!Ref CustomerUserPool"
    );
    assert_eq!(
        render(&outputs["CustomerUserPoolClientId"]["Value"]),
        "!Ref CustomerUserPoolClient"
    );
    for output in ["CustomerUserPoolId", "CustomerUserPoolClientId"] {
        assert_eq!(
            outputs[output]["Condition"].as_str(),
            Some("CreateCustomerUserPool")
        );
    }
    assert!(!outputs["ApiUrl"].is_null());

    // API Gateway validates the tokens: order-api itself needs no Cognito permission.
    for function in ["OrderApiFunction", "OrderApiManagedFunction"] {
        let policies = render(&resources[function]["Properties"]["Policies"]);
        assert!(!policies.contains("cognito"), "{function}: {policies}");
    }
}

/// The abuse limits' parameters default to the code's own defaults, so a stack deployed
/// without overrides behaves as a local run does.
#[test]
fn the_abuse_limits_default_to_the_codes_defaults() {
    let root = raw_template();
    let variables =
        &root["Resources"]["OrderApiFunction"]["Properties"]["Environment"]["Variables"];
    let mut from_parameters = std::collections::HashMap::new();
    for name in order_api::limits::Limits::variables() {
        if ORDER_API_LEFT_AT_DEFAULT.contains(&name.as_str()) {
            continue;
        }
        let value = render(&variables[name.as_str()]);
        let parameter = value
            .strip_prefix("!Ref ")
            .unwrap_or_else(|| panic!("{name} is {value:?}, not a !Ref of a parameter"));
        let default = &root["Parameters"][parameter]["Default"];
        assert!(!default.is_null(), "{parameter} has no Default");
        from_parameters.insert(name.clone(), render(default));
    }
    assert_eq!(
        order_api::limits::Limits::from_source(Some(from_parameters)).unwrap(),
        order_api::limits::Limits::default()
    );
}

/// order-api counts the requests its abuse limits refuse (`requests_refused_total` with
/// `reason=rate_limited`, an EMF metric in the stack's namespace with the label as its one
/// dimension); a surge of them raises an alarm and shows on the dashboard.
#[test]
fn a_surge_of_rate_limited_requests_raises_an_alarm() {
    let root = raw_template();
    let resources = &root["Resources"];
    let alarm = &resources["RateLimitedRequestsAlarm"]["Properties"];
    assert_eq!(
        render(&alarm["Namespace"]),
        "!Sub OrderSystem/${AWS::StackName}"
    );
    assert_eq!(alarm["MetricName"].as_str(), Some(names::REQUESTS_REFUSED));
    assert_eq!(
        render(&alarm["Dimensions"]),
        format!("[{{Name: {}, Value: rate_limited}}]", labels::REASON)
    );
    assert_eq!(alarm["Statistic"].as_str(), Some("Sum"));
    assert_eq!(alarm["Period"].as_u64(), Some(300));
    assert_eq!(
        render(&alarm["Threshold"]),
        "!Ref RateLimitedRequestsThreshold"
    );
    assert!(!root["Parameters"]["RateLimitedRequestsThreshold"]["Default"].is_null());

    let dashboard = render(&resources["OrderFlowDashboard"]["Properties"]["DashboardBody"]);
    for reason in ["unauthorized", "not_found", "rate_limited"] {
        let series = format!(
            "[\"${{Ns}}\", \"{}\", \"{}\", \"{reason}\"",
            names::REQUESTS_REFUSED,
            labels::REASON
        );
        assert!(dashboard.contains(&series), "no {series} on the dashboard");
    }
}

// ------------------------------------------------------------------ database logins

/// The functions that log in as each of the code's database roles (docs/data.md, "Who may do
/// what"); a role added to `shared::db::Role` must be given its functions here.
fn role_functions(role: Role) -> &'static [&'static str] {
    match role {
        Role::OrderApi => &["OrderApiFunction", "OrderApiManagedFunction"],
        Role::Inventory => &["InventoryFunction"],
        Role::Notification => &["NotificationFunction"],
        Role::Payment => &["PaymentFunction"],
        Role::OutboxRelay => &["OutboxRelayFunction"],
    }
}

/// db-migrate's variable with every role's secret, whose passwords it sets.
const ROLE_SECRETS_VARIABLE: &str = "DB_ROLE_SECRET_ARNS";

fn database_logins() -> DatabaseLogins {
    DatabaseLogins {
        roles: Role::ALL
            .into_iter()
            .map(|role| {
                let functions = role_functions(role).iter().map(|f| (*f).to_owned());
                (role.name().to_owned(), functions.collect())
            })
            .collect(),
        owner: "DbMigrateFunction".into(),
        role_secrets_variable: ROLE_SECRETS_VARIABLE.into(),
    }
}

fn login_drifts_of(text: &str) -> Vec<Drift> {
    let template = Template::parse(text).expect("the template parses");
    check_database_logins(&template, &database_logins())
}

/// The template's text of one resource: from its `  <id>:` line to the next resource's.
fn resource_span(text: &str, logical_id: &str) -> std::ops::Range<usize> {
    let header = format!("\n  {logical_id}:\n");
    let start = text
        .find(&header)
        .unwrap_or_else(|| panic!("template.yaml has no resource {logical_id}"))
        + 1;
    let body = start + header.len() - 1;
    let end = text[body..]
        .match_indices("\n  ")
        .map(|(at, _)| body + at + 1)
        .find(|at| {
            let line = &text[*at..];
            !line.starts_with("   ") && !line.starts_with("  #") && !line.starts_with("  \n")
        })
        .unwrap_or(text.len());
    start..end
}

/// Applies one edit inside one resource of the real template, failing if the text to replace
/// is not there.
fn edited_in(logical_id: &str, from: &str, to: &str) -> String {
    let mut text = template_text();
    let span = resource_span(&text, logical_id);
    let resource = &text[span.clone()];
    assert!(
        resource.contains(from),
        "{logical_id} in template.yaml no longer contains {from:?}"
    );
    let resource = resource.replacen(from, to, 1);
    text.replace_range(span, &resource);
    text
}

/// The secret of each role, as the template names it.
fn role_secret(role: Role) -> String {
    let template = Template::parse(&template_text()).unwrap();
    template
        .secrets
        .iter()
        .find(|secret| secret.username.as_deref() == Some(role.name()))
        .unwrap_or_else(|| panic!("no secret for role {}", role.name()))
        .logical_id
        .clone()
}

#[test]
fn every_function_logs_in_as_its_own_role() {
    let drifts = login_drifts_of(&template_text());
    let listing: Vec<String> = drifts.iter().map(ToString::to_string).collect();
    assert!(
        drifts.is_empty(),
        "template.yaml's database logins drifted:\n{}",
        listing.join("\n")
    );
    // One secret per role, five in all, and the proxy's Auth lists each once.
    let template = Template::parse(&template_text()).unwrap();
    let secrets: BTreeSet<String> = Role::ALL.into_iter().map(role_secret).collect();
    assert_eq!(secrets.len(), Role::ALL.len());
    let [proxy] = template.database_proxies.as_slice() else {
        panic!("one RDS Proxy: {:?}", template.database_proxies);
    };
    let auth: Vec<String> = proxy
        .auth
        .iter()
        .map(|auth| auth.secret.clone().unwrap())
        .collect();
    let wanted: Vec<String> = Role::ALL
        .into_iter()
        .map(|role| format!("!Ref {}", role_secret(role)))
        .collect();
    assert_eq!(auth, wanted);
    // db-migrate's code reads the variable that lists them.
    assert!(
        db_migrate::MigrateConfig::variables().contains(&ROLE_SECRETS_VARIABLE.to_owned()),
        "db-migrate does not read {ROLE_SECRETS_VARIABLE}"
    );
}

#[test]
fn the_proxy_letting_clients_log_in_as_the_master_user_is_reported() {
    let drifts = login_drifts_of(&edited_in(
        "DatabaseProxy",
        "SecretArn: !Ref OrderApiDatabaseSecret",
        &format!("SecretArn: {MASTER_SECRET}"),
    ));
    assert_reports(
        &drifts,
        "DatabaseProxy",
        "lets clients log in as the master user",
    );
    assert_reports(
        &drifts,
        "DatabaseProxy",
        "has no Auth entry for !Ref OrderApiDatabaseSecret",
    );
    assert_reports(
        &drifts,
        "DatabaseProxy",
        "names the master secret; only DbMigrateFunction may",
    );
}

#[test]
fn a_role_missing_from_the_proxy_is_reported() {
    let drifts = login_drifts_of(&edited_in(
        "DatabaseProxy",
        "        - AuthScheme: SECRETS\n          SecretArn: !Ref PaymentDatabaseSecret\n          IAMAuth: DISABLED\n          ClientPasswordAuthType: POSTGRES_SCRAM_SHA_256\n",
        "",
    ));
    assert_reports(
        &drifts,
        "DatabaseProxy",
        "has no Auth entry for !Ref PaymentDatabaseSecret",
    );
    assert_eq!(drifts.len(), 1, "{drifts:#?}");

    let drifts = login_drifts_of(&edited_in(
        "DatabaseProxy",
        "SecretArn: !Ref InventoryDatabaseSecret\n          IAMAuth: DISABLED",
        "SecretArn: !Ref InventoryDatabaseSecret\n          IAMAuth: REQUIRED",
    ));
    assert_reports(
        &drifts,
        "DatabaseProxy",
        "Auth for !Ref InventoryDatabaseSecret has IAMAuth Some(\"REQUIRED\")",
    );
}

#[test]
fn the_proxys_role_reading_another_secret_is_reported() {
    let drifts = login_drifts_of(&edited_in(
        "DatabaseProxyRole",
        "                  - !Ref OutboxRelayDatabaseSecret\n",
        &format!(
            "                  - !Ref OutboxRelayDatabaseSecret\n                  - {MASTER_SECRET}\n"
        ),
    ));
    assert_reports(
        &drifts,
        "DatabaseProxyRole",
        "(the role of DatabaseProxy) may read",
    );
    assert_reports(
        &drifts,
        "DatabaseProxyRole",
        "names the master secret; only DbMigrateFunction may",
    );

    // One role's secret fewer is a drift too: the proxy could not log in as that role.
    let drifts = login_drifts_of(&edited_in(
        "DatabaseProxyRole",
        "                  - !Ref NotificationDatabaseSecret\n",
        "",
    ));
    assert_reports(
        &drifts,
        "DatabaseProxyRole",
        "expected exactly the roles' secrets",
    );
}

/// Only db-migrate may read the master secret: not through Globals, not through a function's
/// policy, whether it logs in with it or not.
#[test]
fn a_function_that_may_read_the_master_secret_is_reported() {
    let drifts = login_drifts_of(&edited(
        "        DB_NAME: orders\n",
        &format!("        DB_NAME: orders\n        DB_SECRET_ARN: {MASTER_SECRET}\n"),
    ));
    assert_reports(
        &drifts,
        "Globals",
        "names the master secret; only DbMigrateFunction may",
    );

    let drifts = login_drifts_of(&edited_in(
        "InventoryFunction",
        "              Resource: !Ref InventoryDatabaseSecret\n",
        &format!("              Resource: [!Ref InventoryDatabaseSecret, {MASTER_SECRET}]\n"),
    ));
    assert_reports(
        &drifts,
        "InventoryFunction",
        "may read the master secret; only DbMigrateFunction may",
    );

    // A second statement, under a condition, counts as well.
    let drifts = login_drifts_of(&edited_in(
        "NotificationFunction",
        "      Policies:\n",
        &format!(
            "      Policies:\n        - !If\n          - UseScram\n          - Statement:\n              - Effect: Allow\n                Action: secretsmanager:GetSecretValue\n                Resource: {MASTER_SECRET}\n          - !Ref AWS::NoValue\n"
        ),
    ));
    assert_reports(
        &drifts,
        "NotificationFunction",
        "may read the master secret; only DbMigrateFunction may",
    );

    // So does a wildcard.
    let drifts = login_drifts_of(&edited_in(
        "OutboxRelayFunction",
        "              Resource: !Ref OutboxRelayDatabaseSecret\n",
        "              Resource: \"*\"\n",
    ));
    assert_reports(
        &drifts,
        "OutboxRelayFunction",
        "may read every secret matching *",
    );
}

/// Every function, both order-api declarations included, logs in with its own role's secret
/// and may read no other database secret.
#[test]
fn a_function_with_another_roles_secret_is_reported() {
    for role in Role::ALL {
        let own = role_secret(role);
        let other = role_secret(if role == Role::Payment {
            Role::Inventory
        } else {
            Role::Payment
        });
        for function in role_functions(role) {
            let drifts = login_drifts_of(&edited_in(
                function,
                &format!("DB_SECRET_ARN: !Ref {own}\n"),
                &format!("DB_SECRET_ARN: !Ref {other}\n"),
            ));
            assert_reports(
                &drifts,
                function,
                &format!("logs in with DB_SECRET_ARN Some(\"!Ref {other}\"), expected !Ref {own}"),
            );
            assert_eq!(drifts.len(), 1, "{function}: {drifts:#?}");

            // The policy: the statement that names its own secret names the other's instead.
            let text = template_text();
            let span = resource_span(&text, function);
            let policies = &text[span][..];
            let grant = [
                format!("              Resource: !Ref {own}\n"),
                format!("                - !Ref {own}\n"),
            ]
            .into_iter()
            .find(|grant| policies.contains(grant.as_str()))
            .unwrap_or_else(|| panic!("{function} grants no read of {own}"));
            let drifts =
                login_drifts_of(&edited_in(function, &grant, &grant.replace(&own, &other)));
            assert_reports(
                &drifts,
                function,
                &format!(
                    "may read the database secrets {{\"!Ref {other}\"}}, expected only !Ref {own}"
                ),
            );
        }
    }
}

#[test]
fn db_migrate_without_a_roles_secret_is_reported() {
    let drifts = login_drifts_of(&edited_in(
        "DbMigrateFunction",
        "            payment=${PaymentDatabaseSecret},\n",
        "",
    ));
    assert_reports(&drifts, "DbMigrateFunction", "DB_ROLE_SECRET_ARNS lists");

    let drifts = login_drifts_of(&edited_in(
        "DbMigrateFunction",
        "            inventory=${InventoryDatabaseSecret},\n",
        "            inventory=${NotificationDatabaseSecret},\n",
    ));
    assert_reports(
        &drifts,
        "DbMigrateFunction",
        "expected every role with its secret",
    );

    let drifts = login_drifts_of(&edited_in(
        "DbMigrateFunction",
        "                - !Ref PaymentDatabaseSecret\n",
        "",
    ));
    assert_reports(
        &drifts,
        "DbMigrateFunction",
        "may not read !Ref PaymentDatabaseSecret, which it needs",
    );

    let drifts = login_drifts_of(&edited_in(
        "DbMigrateFunction",
        &format!("DB_SECRET_ARN: {MASTER_SECRET}\n"),
        "DB_SECRET_ARN: !Ref OrderApiDatabaseSecret\n",
    ));
    assert_reports(
        &drifts,
        "DbMigrateFunction",
        &format!("expected {MASTER_SECRET}"),
    );
}

#[test]
fn a_weak_role_secret_is_reported() {
    let drifts = login_drifts_of(&edited_in(
        "PaymentDatabaseSecret",
        "        PasswordLength: 32\n",
        "        PasswordLength: 16\n",
    ));
    assert_reports(&drifts, "PaymentDatabaseSecret", "expected 32 or more");
    let drifts = login_drifts_of(&edited_in(
        "InventoryDatabaseSecret",
        "        ExcludePunctuation: true\n",
        "",
    ));
    assert_reports(&drifts, "InventoryDatabaseSecret", "generates punctuation");
    let drifts = login_drifts_of(&edited_in(
        "OutboxRelayDatabaseSecret",
        "'{\"username\": \"outbox_relay\"}'",
        "'{\"username\": \"relay\"}'",
    ));
    assert_reports(
        &drifts,
        "template",
        "role outbox_relay needs exactly one secret with username outbox_relay",
    );
}

// ------------------------------------------------------------------ verified TLS

/// Where `DatabaseCaLayer` puts RDS's CA bundle in a function.
const CA_BUNDLE: &str = "/opt/global-bundle.pem";

/// What differs from verified TLS to the database: every function that may connect to the
/// instance itself (db-migrate always, the others without the proxy) has RDS's CA bundle
/// (the layer, and `DB_SSL_ROOT_CERT` naming it); through the proxy, a public CA suffices.
fn tls_problems(text: &str) -> Vec<String> {
    let template = Template::parse(text).unwrap();
    let root: serde_norway::Value = serde_norway::from_str(text).unwrap();
    let mut problems = Vec::new();
    let layer = &root["Resources"]["DatabaseCaLayer"];
    if layer["Type"].as_str() != Some("AWS::Serverless::LayerVersion")
        || layer["Properties"]["ContentUri"].as_str() != Some("rds-ca/")
    {
        problems.push(format!(
            "DatabaseCaLayer is not a layer of rds-ca/: {}",
            render(layer)
        ));
    }
    let proxy_or_instance =
        "!If [ProxyIsEnabled, !GetAtt DatabaseProxy.Endpoint, !GetAtt Database.Endpoint.Address]";
    let without_proxy = format!("!If [ProxyIsEnabled, !Ref AWS::NoValue, {CA_BUNDLE}]");
    for function in &template.functions {
        let id = &function.logical_id;
        let variable = |name: &str| function.variables.get(name).cloned().unwrap_or_default();
        let (host, root_cert, layers) = if id == "DbMigrateFunction" {
            (
                "!GetAtt Database.Endpoint.Address".to_owned(),
                CA_BUNDLE.to_owned(),
                "[!Ref DatabaseCaLayer]".to_owned(),
            )
        } else {
            (
                proxy_or_instance.to_owned(),
                without_proxy.clone(),
                "!If [ProxyIsEnabled, !Ref AWS::NoValue, ".to_owned(),
            )
        };
        if variable("DB_HOST") != host {
            problems.push(format!(
                "{id}: DB_HOST is {}, expected {host}",
                variable("DB_HOST")
            ));
        }
        if variable("DB_SSL_ROOT_CERT") != root_cert {
            problems.push(format!(
                "{id}: DB_SSL_ROOT_CERT is {:?}, expected {root_cert}",
                variable("DB_SSL_ROOT_CERT")
            ));
        }
        let has_layer = if id == "DbMigrateFunction" {
            function.layers == layers
        } else {
            function
                .layers
                .contains(&format!("{layers}!Ref DatabaseCaLayer]"))
                || function
                    .layers
                    .contains(&format!("{layers}[!Ref DatabaseCaLayer]]"))
        };
        if !has_layer {
            problems.push(format!(
                "{id}: Layers {} do not hold DatabaseCaLayer when it connects to the instance",
                function.layers
            ));
        }
    }
    problems
}

#[test]
fn rds_ca_is_trusted_wherever_a_function_connects_to_the_instance() {
    let problems = tls_problems(&template_text());
    assert!(problems.is_empty(), "{problems:#?}");
    // The layer's folder: the bundle is fetched into it, never committed.
    let folder = repo_root().join("rds-ca");
    let readme = std::fs::read_to_string(folder.join("README.md")).unwrap();
    assert!(
        readme.contains("https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem")
            && readme.contains("rds-ca/global-bundle.pem"),
        "rds-ca/README.md says where the bundle comes from"
    );
    let ignored = std::fs::read_to_string(folder.join(".gitignore")).unwrap();
    assert!(
        ignored.lines().any(|line| line.trim() == "*.pem"),
        "{ignored}"
    );

    let problems = tls_problems(&edited_in(
        "DbMigrateFunction",
        "      Layers: [!Ref DatabaseCaLayer]\n",
        "",
    ));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("DbMigrateFunction: Layers")),
        "{problems:#?}"
    );
    let problems = tls_problems(&edited_in(
        "PaymentFunction",
        "        - !If [ProxyIsEnabled, !Ref AWS::NoValue, !Ref DatabaseCaLayer]\n",
        "",
    ));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("PaymentFunction: Layers")),
        "{problems:#?}"
    );
    let problems = tls_problems(&edited(
        &format!(
            "        DB_SSL_ROOT_CERT: !If [ProxyIsEnabled, !Ref AWS::NoValue, {CA_BUNDLE}]\n"
        ),
        "",
    ));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("OutboxRelayFunction: DB_SSL_ROOT_CERT")),
        "{problems:#?}"
    );
}

// ------------------------------------------------------------------ topics

/// db-migrate creates every topic of the system that is missing and sets every topic's
/// retention, so its policy covers each of them for both.
#[test]
fn db_migrate_may_create_and_configure_every_topic() {
    let root = raw_template();
    let statements =
        &root["Resources"]["DbMigrateFunction"]["Properties"]["Policies"][0]["Statement"];
    let statement = statements
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["Sid"].as_str() == Some("KafkaTopics"))
        .expect("db-migrate has a KafkaTopics statement");
    let actions: BTreeSet<String> = statement["Action"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(render)
        .collect();
    for action in [
        "kafka-cluster:DescribeTopic",
        "kafka-cluster:CreateTopic",
        "kafka-cluster:DescribeTopicDynamicConfiguration",
        "kafka-cluster:AlterTopicDynamicConfiguration",
    ] {
        assert!(actions.contains(action), "{action}: {actions:?}");
    }
    let resources: BTreeSet<String> = statement["Resource"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(render)
        .collect();
    let wanted: BTreeSet<String> = topics::ALL
        .iter()
        .map(|topic| format!("!Sub ${{KafkaCluster.TopicArnPrefix}}/{topic}"))
        .collect();
    assert_eq!(resources, wanted);
}

/// The topics keep a record for less time than the consumers keep its dedup record, so a
/// redelivered record is always recognised (docs/data.md, "Retention"). CloudFormation rules
/// cannot compare numbers, so the defaults are checked here and the descriptions say it.
#[test]
fn topics_keep_records_shorter_than_the_dedup_records() {
    let root = raw_template();
    let parameters = &root["Parameters"];
    let topic = &parameters["TopicRetentionDays"];
    let dedup = &parameters["DedupRetentionDays"];
    assert!(
        topic["Default"].as_u64().unwrap() < dedup["Default"].as_u64().unwrap(),
        "TopicRetentionDays {:?}, DedupRetentionDays {:?}",
        topic["Default"],
        dedup["Default"]
    );
    assert!(render(&topic["Description"]).contains("shorter than DedupRetentionDays"));
    assert!(render(&dedup["Description"]).contains("longer than TopicRetentionDays"));

    let template = Template::parse(&template_text()).unwrap();
    let variable =
        |function: &str, name: &str| template.function(function).unwrap().variables[name].clone();
    assert_eq!(
        variable("DbMigrateFunction", "TOPIC_RETENTION_DAYS"),
        "!Ref TopicRetentionDays"
    );
    assert_eq!(
        variable("OutboxRelayFunction", "RETENTION_DAYS"),
        "!Ref DedupRetentionDays"
    );
}
