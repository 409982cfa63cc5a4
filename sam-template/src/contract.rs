//! The template contract: what the code says each function must look like in `template.yaml`,
//! and a checker that lists every difference. The expectations are built from the code itself
//! (the config loaders' variable lists, the consumers' topics, the API's routes), so that a
//! rename on either side fails the contract test instead of a deployment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::{EventSource, Template, rate_in_seconds};

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

/// Lists every drift between `template` and `expected`; empty means they agree.
pub fn check(template: &Template, expected: &[Expectation], workspace: &Workspace) -> Vec<Drift> {
    let mut drifts = Vec::new();
    let mut report = |subject: &str, problem: String| {
        drifts.push(Drift {
            subject: subject.to_owned(),
            problem,
        })
    };

    let declared: BTreeSet<&str> = template
        .functions
        .iter()
        .map(|f| f.logical_id.as_str())
        .collect();
    let wanted: BTreeSet<&str> = expected.iter().map(|e| e.logical_id.as_str()).collect();
    for extra in declared.difference(&wanted) {
        report(extra, "is in the template but no code expects it".into());
    }
    for missing in wanted.difference(&declared) {
        report(
            missing,
            "is expected by the code but missing from the template".into(),
        );
    }

    let mut consumer_groups: BTreeMap<String, String> = BTreeMap::new();
    for expectation in expected {
        let id = expectation.logical_id.as_str();
        let Some(function) = template.function(id) else {
            continue;
        };

        match function.binary.as_deref() {
            None => report(id, "has no Metadata.BuildProperties.Binary".into()),
            Some(binary) => {
                if binary != expectation.binary {
                    report(
                        id,
                        format!("builds binary {binary}, expected {}", expectation.binary),
                    );
                }
                if !workspace.binaries.contains(binary) {
                    report(id, format!("binary {binary} is not a workspace binary"));
                }
                if workspace.ambiguous_binaries.contains(binary) {
                    report(
                        id,
                        format!("binary {binary} is defined by more than one workspace package"),
                    );
                }
            }
        }
        match function.code_uri.as_deref() {
            Some(uri) if workspace.workspace_code_uris.contains(uri) => {}
            other => report(
                id,
                format!(
                    "CodeUri {other:?} is not the workspace root (one of {:?})",
                    workspace.workspace_code_uris
                ),
            ),
        }

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
            report(id, format!("sets {name}, which its code does not read"));
        }
        for name in reads.difference(&sets) {
            if !left_at_default.contains(name) {
                report(id, format!("reads {name}, which the template does not set"));
            }
        }
        for name in sets.intersection(&left_at_default) {
            report(
                id,
                format!("sets {name}, which must keep the code's default"),
            );
        }
        for name in sets.intersection(&LOCAL_ONLY_VARIABLES.into_iter().collect()) {
            report(id, format!("sets {name}, which is for local runs only"));
        }

        let mut consumed = BTreeSet::new();
        for (event, msk) in function.msk_events() {
            let at = format!("{id}.{event}");
            if msk.topics.len() != 1 {
                report(
                    &at,
                    format!(
                        "reads {:?}; an MSK trigger reads exactly one topic",
                        msk.topics
                    ),
                );
            }
            for topic in &msk.topics {
                if !workspace.topics.contains(topic) {
                    report(
                        &at,
                        format!("reads topic {topic}, which the system does not have"),
                    );
                }
                consumed.insert(topic.clone());
            }
            if msk.stream.is_none() {
                report(&at, "has no Stream".into());
            }
            if msk.on_failure.is_none() {
                report(&at, "has no DestinationConfig.OnFailure destination".into());
            }
            if msk.batch_size.is_none() {
                report(&at, "has no literal BatchSize".into());
            }
            if msk.maximum_batching_window_secs.is_none() {
                report(&at, "has no literal MaximumBatchingWindowInSeconds".into());
            }
            match msk.starting_position.as_deref() {
                Some(position) if STARTING_POSITIONS.contains(&position) => {}
                other => report(&at, format!("has StartingPosition {other:?}")),
            }
            match &msk.consumer_group_id {
                None => report(&at, "has no literal ConsumerGroupId".into()),
                Some(group) => {
                    if let Some(first) = consumer_groups.insert(group.clone(), at.clone()) {
                        report(&at, format!("shares ConsumerGroupId {group} with {first}"));
                    }
                }
            }
        }
        let consumes: BTreeSet<String> = expectation.consumes.iter().cloned().collect();
        for topic in consumed.difference(&consumes) {
            report(
                id,
                format!("is triggered by {topic}, which its code does not handle"),
            );
        }
        for topic in consumes.difference(&consumed) {
            report(
                id,
                format!("handles {topic}, but no MSK trigger delivers it"),
            );
        }

        let schedules: Vec<&str> = function.schedules().collect();
        match (expectation.schedule_secs, schedules.as_slice()) {
            (None, []) => {}
            (None, found) => report(id, format!("has schedules {found:?} but expects none")),
            (Some(secs), [expression]) => {
                if rate_in_seconds(expression) != Some(secs) {
                    report(
                        id,
                        format!("runs on {expression:?}, expected every {secs} s"),
                    );
                }
            }
            (Some(secs), found) => report(
                id,
                format!("has schedules {found:?}, expected one every {secs} s"),
            ),
        }

        // Each route with the authorizer API Gateway applies to it: its own, else its API's
        // DefaultAuthorizer.
        let routes: BTreeMap<(String, String), Option<String>> = function
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
            .collect();
        for (method, path, api) in function.http_route_apis() {
            let Some(api) = api.and_then(|api| template.http_api(api)) else {
                continue;
            };
            let method = method.to_uppercase();
            if let Some(default) = &api.default_authorizer {
                report(
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
                Some(name) => report(
                    id,
                    format!(
                        "{method} {path} uses authorizer {name}, which {} does not declare",
                        api.logical_id
                    ),
                ),
            }
        }
        let wanted: BTreeSet<(String, String)> = expectation
            .routes
            .iter()
            .map(|(m, p)| (m.to_uppercase(), p.clone()))
            .collect();
        for (method, path) in routes.keys().filter(|route| !wanted.contains(*route)) {
            report(
                id,
                format!("routes {method} {path}, which the API does not serve"),
            );
        }
        for (method, path) in wanted.iter().filter(|route| !routes.contains_key(*route)) {
            report(
                id,
                format!("serves {method} {path}, which the template does not route"),
            );
        }
        for (route, auth) in &routes {
            let wanted = expectation
                .authorized_routes
                .iter()
                .find(|(m, p, _)| m.to_uppercase() == route.0 && *p == route.1)
                .map(|(_, _, authorizer)| authorizer.as_str());
            match (wanted, auth.as_deref()) {
                (None, None) => {}
                (Some(wanted), Some(auth)) if wanted == auth => {}
                (Some(wanted), other) => report(
                    id,
                    format!("{} {} must use {wanted}, has {other:?}", route.0, route.1),
                ),
                (None, Some(other)) => report(
                    id,
                    format!(
                        "{} {} has authorizer {other}, expected none",
                        route.0, route.1
                    ),
                ),
            }
        }
    }

    // Anything else that triggers a function is wiring the code does not know about.
    for function in &template.functions {
        for event in &function.events {
            if let EventSource::Other(kind) = &event.source {
                report(
                    &function.logical_id,
                    format!(
                        "event {} has type {kind}, which the contract does not cover",
                        event.name
                    ),
                );
            }
        }
    }

    drifts.sort();
    drifts
}
