//! The template contract: what the code says each function must look like in `template.yaml`,
//! and a checker that lists every difference. The expectations are built from the code itself
//! (the config loaders' variable lists, the consumers' topics, the API's routes), so that a
//! rename on either side fails the contract test instead of a deployment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::{
    DatabaseProxy, EventSource, Function, MskEvent, ProxyAuth, Secret, Template, names,
    rate_in_seconds,
};

/// The built-in IAM authorizer of an HTTP API (`Auth.EnableIamAuthorizer`).
pub const IAM_AUTHORIZER: &str = "AWS_IAM";

/// Variables a loader reads only on a developer machine; the cloud wiring must not set them.
pub const LOCAL_ONLY_VARIABLES: [&str; 4] = [
    "DATABASE_URL",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "STRIPE_API_KEY",
];

/// The starting positions an MSK trigger may declare.
pub const STARTING_POSITIONS: [&str; 2] = ["TRIM_HORIZON", "LATEST"];

/// What the code expects of one function in the template.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    pub logical_id: String,
    /// The workspace binary the function runs (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    /// Every variable the function's config loader reads (local-only ones are ignored).
    pub reads: Vec<String>,
    /// Those of `reads` that the template must leave unset, so that they keep the code's
    /// default (a switch meant for local runs and benchmarks, say).
    pub left_at_default: Vec<String>,
    /// The topics it consumes, one MSK trigger each.
    pub consumes: Vec<String>,
    /// The period of its schedule, if it runs on one.
    pub schedule_secs: Option<u64>,
    /// Its HTTP routes as (METHOD, path).
    pub routes: Vec<(String, String)>,
    /// Those of `routes` that need an authorizer, as (METHOD, path, authorizer):
    /// [`IAM_AUTHORIZER`] or the name of one of the API's `Auth.Authorizers`. Every other route
    /// must have none, neither its own nor its API's `DefaultAuthorizer`.
    pub authorized_routes: Vec<(String, String, String)>,
}

/// What the checker knows about the workspace.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    /// Every binary target of the workspace's packages.
    pub binaries: BTreeSet<String>,
    /// Binary names that more than one package defines: `cargo lambda build --bin NAME`, which
    /// `sam build` runs at the workspace root, would build (and overwrite) several of them.
    pub ambiguous_binaries: BTreeSet<String>,
    /// `CodeUri` values that point at the workspace root (cargo-lambda builds from there).
    pub workspace_code_uris: BTreeSet<String>,
    /// Every topic the system has (`shared::events::topics::ALL`).
    pub topics: BTreeSet<String>,
}

/// One difference between the template and the code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Drift {
    /// The function's logical id, or `template` for template-wide problems.
    pub subject: String,
    pub problem: String,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.subject, self.problem)
    }
}

/// Collects the drifts the checks find, each under its subject.
#[derive(Debug, Default)]
struct Drifts(Vec<Drift>);

impl Drifts {
    fn report(&mut self, subject: &str, problem: String) {
        self.0.push(Drift {
            subject: subject.to_owned(),
            problem,
        })
    }
}

/// Lists every drift between `template` and `expected`; empty means they agree.
pub fn check(template: &Template, expected: &[Expectation], workspace: &Workspace) -> Vec<Drift> {
    let mut drifts = Drifts::default();
    check_function_set(&mut drifts, template, expected);

    // Consumer group -> the first trigger that uses it, across every function.
    let mut consumer_groups: BTreeMap<String, String> = BTreeMap::new();
    for expectation in expected {
        let Some(function) = template.function(&expectation.logical_id) else {
            continue;
        };
        check_build(&mut drifts, function, expectation, workspace);
        check_environment(&mut drifts, function, expectation);
        check_msk_triggers(
            &mut drifts,
            function,
            expectation,
            workspace,
            &mut consumer_groups,
        );
        check_schedule(&mut drifts, function, expectation);
        check_routes(&mut drifts, template, function, expectation);
    }
    check_unknown_events(&mut drifts, template);

    let mut drifts = drifts.0;
    drifts.sort();
    drifts
}

/// The template declares exactly the functions the code expects, no more and no fewer.
fn check_function_set(drifts: &mut Drifts, template: &Template, expected: &[Expectation]) {
    let declared: BTreeSet<&str> = template
        .functions
        .iter()
        .map(|f| f.logical_id.as_str())
        .collect();
    let wanted: BTreeSet<&str> = expected.iter().map(|e| e.logical_id.as_str()).collect();
    for extra in declared.difference(&wanted) {
        drifts.report(extra, "is in the template but no code expects it".into());
    }
    for missing in wanted.difference(&declared) {
        drifts.report(
            missing,
            "is expected by the code but missing from the template".into(),
        );
    }
}

/// The function builds its own binary, one only its package defines, from the workspace root.
fn check_build(
    drifts: &mut Drifts,
    function: &Function,
    expectation: &Expectation,
    workspace: &Workspace,
) {
    let id = expectation.logical_id.as_str();
    match function.binary.as_deref() {
        None => drifts.report(id, "has no Metadata.BuildProperties.Binary".into()),
        Some(binary) => {
            if binary != expectation.binary {
                drifts.report(
                    id,
                    format!("builds binary {binary}, expected {}", expectation.binary),
                );
            }
            if !workspace.binaries.contains(binary) {
                drifts.report(id, format!("binary {binary} is not a workspace binary"));
            }
            if workspace.ambiguous_binaries.contains(binary) {
                drifts.report(
                    id,
                    format!("binary {binary} is defined by more than one workspace package"),
                );
            }
        }
    }
    match function.code_uri.as_deref() {
        Some(uri) if workspace.workspace_code_uris.contains(uri) => {}
        other => drifts.report(
            id,
            format!(
                "CodeUri {other:?} is not the workspace root (one of {:?})",
                workspace.workspace_code_uris
            ),
        ),
    }
}

/// The template sets exactly the variables the code reads, except those left at the code's
/// default and those for local runs only.
fn check_environment(drifts: &mut Drifts, function: &Function, expectation: &Expectation) {
    let id = expectation.logical_id.as_str();
    let reads: BTreeSet<&str> = expectation
        .reads
        .iter()
        .map(String::as_str)
        .filter(|name| !LOCAL_ONLY_VARIABLES.contains(name))
        .collect();
    let left_at_default: BTreeSet<&str> = expectation
        .left_at_default
        .iter()
        .map(String::as_str)
        .collect();
    let sets: BTreeSet<&str> = function.environment.iter().map(String::as_str).collect();
    for name in sets.difference(&reads) {
        drifts.report(id, format!("sets {name}, which its code does not read"));
    }
    for name in reads.difference(&sets) {
        if !left_at_default.contains(name) {
            drifts.report(id, format!("reads {name}, which the template does not set"));
        }
    }
    for name in sets.intersection(&left_at_default) {
        drifts.report(
            id,
            format!("sets {name}, which must keep the code's default"),
        );
    }
    for name in sets.intersection(&LOCAL_ONLY_VARIABLES.into_iter().collect()) {
        drifts.report(id, format!("sets {name}, which is for local runs only"));
    }
}

/// Each MSK trigger is complete and reads one known topic, in a consumer group of its own
/// (`consumer_groups` remembers the groups of the functions checked before), and the triggers
/// deliver exactly the topics the code handles.
fn check_msk_triggers(
    drifts: &mut Drifts,
    function: &Function,
    expectation: &Expectation,
    workspace: &Workspace,
    consumer_groups: &mut BTreeMap<String, String>,
) {
    let id = expectation.logical_id.as_str();
    let mut consumed = BTreeSet::new();
    for (event, msk) in function.msk_events() {
        let at = format!("{id}.{event}");
        check_msk_trigger(drifts, &at, msk, workspace, consumer_groups);
        consumed.extend(msk.topics.iter().cloned());
    }
    let consumes: BTreeSet<String> = expectation.consumes.iter().cloned().collect();
    for topic in consumed.difference(&consumes) {
        drifts.report(
            id,
            format!("is triggered by {topic}, which its code does not handle"),
        );
    }
    for topic in consumes.difference(&consumed) {
        drifts.report(
            id,
            format!("handles {topic}, but no MSK trigger delivers it"),
        );
    }
}

/// One MSK trigger, reported as `at` (`Function.Event`): one known topic, every setting
/// literal, and a consumer group no other trigger uses.
fn check_msk_trigger(
    drifts: &mut Drifts,
    at: &str,
    msk: &MskEvent,
    workspace: &Workspace,
    consumer_groups: &mut BTreeMap<String, String>,
) {
    if msk.topics.len() != 1 {
        drifts.report(
            at,
            format!(
                "reads {:?}; an MSK trigger reads exactly one topic",
                msk.topics
            ),
        );
    }
    for topic in &msk.topics {
        if !workspace.topics.contains(topic) {
            drifts.report(
                at,
                format!("reads topic {topic}, which the system does not have"),
            );
        }
    }
    if msk.stream.is_none() {
        drifts.report(at, "has no Stream".into());
    }
    if msk.on_failure.is_none() {
        drifts.report(at, "has no DestinationConfig.OnFailure destination".into());
    }
    if msk.batch_size.is_none() {
        drifts.report(at, "has no literal BatchSize".into());
    }
    if msk.maximum_batching_window_secs.is_none() {
        drifts.report(at, "has no literal MaximumBatchingWindowInSeconds".into());
    }
    match msk.starting_position.as_deref() {
        Some(position) if STARTING_POSITIONS.contains(&position) => {}
        other => drifts.report(at, format!("has StartingPosition {other:?}")),
    }
    match &msk.consumer_group_id {
        None => drifts.report(at, "has no literal ConsumerGroupId".into()),
        Some(group) => {
            if let Some(first) = consumer_groups.insert(group.clone(), at.to_owned()) {
                drifts.report(at, format!("shares ConsumerGroupId {group} with {first}"));
            }
        }
    }
}

/// The function runs on the schedule the code expects, or on none.
fn check_schedule(drifts: &mut Drifts, function: &Function, expectation: &Expectation) {
    let id = expectation.logical_id.as_str();
    let schedules: Vec<&str> = function.schedules().collect();
    match (expectation.schedule_secs, schedules.as_slice()) {
        (None, []) => {}
        (None, found) => drifts.report(id, format!("has schedules {found:?} but expects none")),
        (Some(secs), [expression]) => {
            if rate_in_seconds(expression) != Some(secs) {
                drifts.report(
                    id,
                    format!("runs on {expression:?}, expected every {secs} s"),
                );
            }
        }
        (Some(secs), found) => drifts.report(
            id,
            format!("has schedules {found:?}, expected one every {secs} s"),
        ),
    }
}

/// The function's HTTP routes: on APIs without a default authorizer, with authorizers their
/// APIs declare, exactly the routes the API serves, each with the authorizer it needs.
fn check_routes(
    drifts: &mut Drifts,
    template: &Template,
    function: &Function,
    expectation: &Expectation,
) {
    let routes = route_authorizers(template, function);
    check_route_apis(drifts, template, function, &routes);
    check_served_routes(drifts, expectation, &routes);
    check_authorized_routes(drifts, expectation, &routes);
}

/// A function's routes as (METHOD, path), each with the authorizer API Gateway applies to it.
type RouteAuthorizers = BTreeMap<(String, String), Option<String>>;

/// Each route of `function` with the authorizer API Gateway applies to it: its own, else its
/// API's DefaultAuthorizer.
fn route_authorizers(template: &Template, function: &Function) -> RouteAuthorizers {
    function
        .events
        .iter()
        .filter_map(|event| match &event.source {
            EventSource::HttpApi {
                method,
                path,
                authorizer,
                api,
            } => Some((
                (method.to_uppercase(), path.clone()),
                template.route_authorizer(api.as_deref(), authorizer.as_deref()),
            )),
            _ => None,
        })
        .collect()
}

/// No route is on an API with a DefaultAuthorizer, and every authorizer a route uses is one
/// its API declares.
fn check_route_apis(
    drifts: &mut Drifts,
    template: &Template,
    function: &Function,
    routes: &RouteAuthorizers,
) {
    let id = function.logical_id.as_str();
    for (method, path, api) in function.http_route_apis() {
        let Some(api) = api.and_then(|api| template.http_api(api)) else {
            continue;
        };
        let method = method.to_uppercase();
        if let Some(default) = &api.default_authorizer {
            drifts.report(
                id,
                format!(
                    "{method} {path} is on {}, whose DefaultAuthorizer {default} every route \
                     without its own gets",
                    api.logical_id
                ),
            );
        }
        let authorizer = routes
            .get(&(method.clone(), path.to_owned()))
            .cloned()
            .flatten();
        match authorizer.as_deref() {
            None => {}
            Some(IAM_AUTHORIZER) if api.iam_authorizer => {}
            Some(name) if api.authorizers.contains(name) => {}
            Some(name) => drifts.report(
                id,
                format!(
                    "{method} {path} uses authorizer {name}, which {} does not declare",
                    api.logical_id
                ),
            ),
        }
    }
}

/// The template routes exactly the routes the API serves.
fn check_served_routes(drifts: &mut Drifts, expectation: &Expectation, routes: &RouteAuthorizers) {
    let id = expectation.logical_id.as_str();
    let wanted: BTreeSet<(String, String)> = expectation
        .routes
        .iter()
        .map(|(m, p)| (m.to_uppercase(), p.clone()))
        .collect();
    for (method, path) in routes.keys().filter(|route| !wanted.contains(*route)) {
        drifts.report(
            id,
            format!("routes {method} {path}, which the API does not serve"),
        );
    }
    for (method, path) in wanted.iter().filter(|route| !routes.contains_key(*route)) {
        drifts.report(
            id,
            format!("serves {method} {path}, which the template does not route"),
        );
    }
}

/// Each route has the authorizer the code expects of it, and a route that expects none has
/// none.
fn check_authorized_routes(
    drifts: &mut Drifts,
    expectation: &Expectation,
    routes: &RouteAuthorizers,
) {
    let id = expectation.logical_id.as_str();
    for (route, auth) in routes {
        let wanted = expectation
            .authorized_routes
            .iter()
            .find(|(m, p, _)| m.to_uppercase() == route.0 && *p == route.1)
            .map(|(_, _, authorizer)| authorizer.as_str());
        match (wanted, auth.as_deref()) {
            (None, None) => {}
            (Some(wanted), Some(auth)) if wanted == auth => {}
            (Some(wanted), other) => drifts.report(
                id,
                format!("{} {} must use {wanted}, has {other:?}", route.0, route.1),
            ),
            (None, Some(other)) => drifts.report(
                id,
                format!(
                    "{} {} has authorizer {other}, expected none",
                    route.0, route.1
                ),
            ),
        }
    }
}

/// Anything else that triggers a function is wiring the code does not know about.
fn check_unknown_events(drifts: &mut Drifts, template: &Template) {
    for function in &template.functions {
        for event in &function.events {
            if let EventSource::Other(kind) = &event.source {
                drifts.report(
                    &function.logical_id,
                    format!(
                        "event {} has type {kind}, which the contract does not cover",
                        event.name
                    ),
                );
            }
        }
    }
}

/// How the template names the RDS-managed master secret (`Database.MasterUserSecret`).
pub const MASTER_SECRET: &str = "!GetAtt Database.MasterUserSecret.SecretArn";

/// The word that [`crate::names`] finds wherever the master secret is named.
const MASTER_SECRET_WORD: &str = "MasterUserSecret";

/// The least length of a generated database password.
pub const MIN_PASSWORD_LENGTH: u64 = 32;

/// Who logs in to the database as whom (docs/data.md): every function as a database role of
/// its own, with the secret of that role, and one function, the owner, as the master user.
#[derive(Debug, Clone, Default)]
pub struct DatabaseLogins {
    /// Each role with the functions (logical ids) that log in as it.
    pub roles: Vec<(String, Vec<String>)>,
    /// The function that logs in with the master secret and sets every role's password from
    /// its secret (db-migrate).
    pub owner: String,
    /// The owner's variable that lists the roles' secrets as `role=${SecretLogicalId}` pairs,
    /// comma-separated.
    pub role_secrets_variable: String,
}

/// Lists every way the template departs from `logins`; empty means it agrees:
///
/// - each role has exactly one generated secret whose `username` is the role;
/// - each function logs in (`DB_SECRET_ARN`) with its role's secret, and may read no other
///   database secret, the master secret least of all;
/// - only the owner names the master secret (no other resource, no `Globals`), logs in with
///   it, may read every role's secret and lists them all in `role_secrets_variable`;
/// - every RDS Proxy lets clients log in as exactly the roles (one `Auth` entry per role
///   secret, `SECRETS`, no IAM authentication, TLS required), never as the master user, and
///   its role may read exactly those secrets.
pub fn check_database_logins(template: &Template, logins: &DatabaseLogins) -> Vec<Drift> {
    let mut drifts = Drifts::default();
    let role_secrets = check_role_secrets(&mut drifts, template, logins);
    check_function_logins(&mut drifts, template, logins, &role_secrets);

    // Nothing but the owner names the master secret: no other resource, nor Globals.
    for place in template.naming(MASTER_SECRET_WORD) {
        if place != logins.owner {
            drifts.report(
                place,
                format!("names the master secret; only {} may", logins.owner),
            );
        }
    }

    // RDS Proxy: clients log in as the roles, with their secrets, and as nobody else.
    let wanted: BTreeSet<String> = role_secrets
        .values()
        .map(|secret| format!("!Ref {secret}"))
        .collect();
    for proxy in &template.database_proxies {
        check_proxy(&mut drifts, template, proxy, &wanted);
    }

    let mut drifts = drifts.0;
    drifts.sort();
    drifts.dedup();
    drifts
}

/// The secret of each role (role -> secret logical id): the one whose generated value carries
/// the role as username. Reports a role without exactly one such secret, and a secret that is
/// conditional or generates a weak or unusable password.
fn check_role_secrets<'a>(
    drifts: &mut Drifts,
    template: &'a Template,
    logins: &'a DatabaseLogins,
) -> BTreeMap<&'a str, &'a str> {
    let mut role_secrets: BTreeMap<&str, &str> = BTreeMap::new();
    for (role, _) in &logins.roles {
        let secrets: Vec<_> = template
            .secrets
            .iter()
            .filter(|secret| secret.username.as_deref() == Some(role.as_str()))
            .collect();
        let [secret] = secrets.as_slice() else {
            let ids: Vec<&str> = secrets.iter().map(|s| s.logical_id.as_str()).collect();
            drifts.report(
                "template",
                format!("role {role} needs exactly one secret with username {role}, has {ids:?}"),
            );
            continue;
        };
        role_secrets.insert(role, secret.logical_id.as_str());
        check_role_secret(drifts, role, secret);
    }
    role_secrets
}

/// `secret`, the secret of `role`, always exists and generates a long password without
/// punctuation.
fn check_role_secret(drifts: &mut Drifts, role: &str, secret: &Secret) {
    let id = secret.logical_id.as_str();
    if let Some(condition) = &secret.condition {
        drifts.report(
            id,
            format!("has Condition {condition}; role {role} always needs its secret"),
        );
    }
    if secret.generated_key.as_deref() != Some("password") {
        drifts.report(
            id,
            format!(
                "generates {:?}, expected the password (GenerateStringKey: password)",
                secret.generated_key
            ),
        );
    }
    if secret.password_length.unwrap_or_default() < MIN_PASSWORD_LENGTH {
        drifts.report(
            id,
            format!(
                "generates a password of {:?} characters, expected {MIN_PASSWORD_LENGTH} or more",
                secret.password_length
            ),
        );
    }
    if !secret.exclude_punctuation {
        drifts.report(
            id,
            "generates punctuation, which RDS Proxy and PostgreSQL logins may refuse (ExcludePunctuation: true)".into(),
        );
    }
}

/// Every function: its login and the database secrets it may read.
fn check_function_logins(
    drifts: &mut Drifts,
    template: &Template,
    logins: &DatabaseLogins,
    role_secrets: &BTreeMap<&str, &str>,
) {
    let role_of: BTreeMap<&str, &str> = logins
        .roles
        .iter()
        .flat_map(|(role, functions)| functions.iter().map(move |f| (f.as_str(), role.as_str())))
        .collect();
    for (role, functions) in &logins.roles {
        for id in functions {
            if template.function(id).is_none() {
                drifts.report(
                    id,
                    format!("logs in as {role} but is missing from the template"),
                );
            }
        }
    }
    for function in &template.functions {
        let id = function.logical_id.as_str();
        for read in &function.secret_reads {
            if read.contains('*') {
                drifts.report(id, format!("may read every secret matching {read}"));
            }
        }
        let login = FunctionLogin {
            id,
            login: function.variables.get("DB_SECRET_ARN").map(String::as_str),
            database_reads: function
                .secret_reads
                .iter()
                .map(String::as_str)
                .filter(|read| names_database_secret(read, role_secrets))
                .collect(),
        };
        if id == logins.owner {
            check_owner_login(drifts, function, &login, logins, role_secrets);
        } else {
            check_role_login(drifts, &login, logins, &role_of, role_secrets);
        }
    }
}

/// Whether `text` names a database secret: the master secret or a role's.
fn names_database_secret(text: &str, role_secrets: &BTreeMap<&str, &str>) -> bool {
    names(text, MASTER_SECRET_WORD) || role_secrets.values().any(|id| names(text, id))
}

/// How one function logs in to the database.
struct FunctionLogin<'a> {
    /// The function's logical id.
    id: &'a str,
    /// Its `DB_SECRET_ARN`.
    login: Option<&'a str>,
    /// The database secrets (master or a role's) it may read.
    database_reads: BTreeSet<&'a str>,
}

/// The owner logs in with the master secret, may read exactly the master and every role's
/// secret, and lists every role with its secret in `role_secrets_variable`.
fn check_owner_login(
    drifts: &mut Drifts,
    function: &Function,
    login: &FunctionLogin,
    logins: &DatabaseLogins,
    role_secrets: &BTreeMap<&str, &str>,
) {
    let FunctionLogin {
        id,
        login,
        database_reads,
    } = login;
    if *login != Some(MASTER_SECRET) {
        drifts.report(
            id,
            format!("logs in with DB_SECRET_ARN {login:?}, expected {MASTER_SECRET}"),
        );
    }
    let wanted: BTreeSet<String> = std::iter::once(MASTER_SECRET.to_owned())
        .chain(role_secrets.values().map(|secret| format!("!Ref {secret}")))
        .collect();
    for missing in wanted
        .iter()
        .filter(|w| !database_reads.contains(w.as_str()))
    {
        drifts.report(id, format!("may not read {missing}, which it needs"));
    }
    for extra in database_reads.iter().filter(|r| !wanted.contains(**r)) {
        drifts.report(id, format!("may read {extra}, expected exactly {wanted:?}"));
    }
    let listed = function
        .variables
        .get(&logins.role_secrets_variable)
        .map(String::as_str)
        .unwrap_or_default();
    let listed = listed_role_secrets(listed);
    let expected: BTreeMap<String, String> = role_secrets
        .iter()
        .map(|(role, id)| ((*role).to_owned(), (*id).to_owned()))
        .collect();
    if listed != expected {
        drifts.report(
            id,
            format!(
                "{} lists {listed:?}, expected every role with its secret: {expected:?}",
                logins.role_secrets_variable
            ),
        );
    }
}

/// Any other function may not read the master secret, and, if it logs in as a role, logs in
/// with that role's secret and may read no other database secret; a function of no role may
/// neither log in nor read a database secret.
fn check_role_login(
    drifts: &mut Drifts,
    login: &FunctionLogin,
    logins: &DatabaseLogins,
    role_of: &BTreeMap<&str, &str>,
    role_secrets: &BTreeMap<&str, &str>,
) {
    let FunctionLogin {
        id,
        login,
        database_reads,
    } = login;
    if database_reads
        .iter()
        .any(|read| names(read, MASTER_SECRET_WORD))
    {
        drifts.report(
            id,
            format!("may read the master secret; only {} may", logins.owner),
        );
    }
    let Some(role) = role_of.get(id) else {
        if login.is_some() || !database_reads.is_empty() {
            drifts.report(
                id,
                format!(
                    "logs in with {login:?} and may read {database_reads:?}, but logs in as \
                     no role of the database"
                ),
            );
        }
        return;
    };
    let Some(secret) = role_secrets.get(role) else {
        return;
    };
    let own = format!("!Ref {secret}");
    if *login != Some(own.as_str()) {
        drifts.report(
            id,
            format!("logs in with DB_SECRET_ARN {login:?}, expected {own} (role {role})"),
        );
    }
    if *database_reads != BTreeSet::from([own.as_str()]) {
        drifts.report(
            id,
            format!(
                "may read the database secrets {database_reads:?}, expected only {own} (role \
                 {role})"
            ),
        );
    }
}

/// One RDS Proxy: requires TLS, has one `SECRETS` Auth entry for each of `wanted` (the roles'
/// secrets) and none other, and reads them with a role that may read exactly those.
fn check_proxy(
    drifts: &mut Drifts,
    template: &Template,
    proxy: &DatabaseProxy,
    wanted: &BTreeSet<String>,
) {
    let id = proxy.logical_id.as_str();
    if !proxy.require_tls {
        drifts.report(id, "does not require TLS (RequireTLS: true)".into());
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for auth in &proxy.auth {
        check_proxy_auth(drifts, id, auth, wanted, &mut seen);
    }
    for missing in wanted.difference(&seen) {
        drifts.report(id, format!("has no Auth entry for {missing}"));
    }
    let role = proxy
        .role_arn
        .as_deref()
        .and_then(|arn| arn.strip_prefix("!GetAtt "))
        .and_then(|arn| arn.strip_suffix(".Arn"));
    match role.and_then(|role| template.iam_role(role)) {
        None => drifts.report(
            id,
            format!(
                "reads its secrets with {:?}, which is no role of the template",
                proxy.role_arn
            ),
        ),
        Some(role) if role.secret_reads != *wanted => drifts.report(
            &role.logical_id,
            format!(
                "(the role of {id}) may read {:?}, expected exactly the roles' secrets {wanted:?}",
                role.secret_reads
            ),
        ),
        Some(_) => {}
    }
}

/// One Auth entry of proxy `id`: for a role's secret (one of `wanted`), not the master user's,
/// and not a second for the same secret (`seen` holds those of the entries before it); with
/// `SECRETS` and without IAM authentication.
fn check_proxy_auth(
    drifts: &mut Drifts,
    id: &str,
    auth: &ProxyAuth,
    wanted: &BTreeSet<String>,
    seen: &mut BTreeSet<String>,
) {
    let secret = auth.secret.clone().unwrap_or_default();
    if names(&secret, MASTER_SECRET_WORD) {
        drifts.report(id, "lets clients log in as the master user".into());
    } else if !wanted.contains(&secret) {
        drifts.report(
            id,
            format!("has an Auth entry for {secret:?}, which is no role's secret"),
        );
    }
    if !seen.insert(secret.clone()) {
        drifts.report(id, format!("has two Auth entries for {secret}"));
    }
    if auth.auth_scheme.as_deref() != Some("SECRETS") {
        drifts.report(
            id,
            format!(
                "Auth for {secret} has AuthScheme {:?}, expected SECRETS",
                auth.auth_scheme
            ),
        );
    }
    if auth.iam_auth.as_deref() != Some("DISABLED") {
        drifts.report(
            id,
            format!(
                "Auth for {secret} has IAMAuth {:?}, expected DISABLED",
                auth.iam_auth
            ),
        );
    }
}

/// `role=${SecretLogicalId}` pairs of a [`render`](crate::render)ed `!Sub`, as role -> secret;
/// a pair of another shape is kept whole as its role, with an empty secret.
fn listed_role_secrets(rendered: &str) -> BTreeMap<String, String> {
    let text = rendered.strip_prefix("!Sub ").unwrap_or(rendered);
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((role, secret)) => (
                role.trim().to_owned(),
                secret
                    .trim()
                    .strip_prefix("${")
                    .and_then(|secret| secret.strip_suffix('}'))
                    .unwrap_or_default()
                    .to_owned(),
            ),
            None => (pair.to_owned(), String::new()),
        })
        .collect()
}
