//! Reads what the local runtime emulates from `template.yaml`: every MSK trigger (topics,
//! batch size, batching window, starting position, consumer group) and the relay schedule.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use sam_template::{Template, rate_in_seconds};

use crate::trigger::{StartingPosition, TriggerSpec};

/// An MSK trigger and the binary whose handler it feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredTrigger {
    pub binary: String,
    pub spec: TriggerSpec,
}

/// Everything the runtime takes from the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggers {
    pub msk: Vec<DeclaredTrigger>,
    /// The outbox relay's schedule.
    pub relay_schedule: Duration,
}

/// Lambda's defaults for MSK event source mappings, where the template leaves them out.
const DEFAULT_BATCH_SIZE: u64 = 100;
const DEFAULT_BATCHING_WINDOW_SECS: u64 = 0;

pub fn read(path: &Path) -> anyhow::Result<Triggers> {
    from_template(&Template::from_path(path)?)
}

pub fn from_template(template: &Template) -> anyhow::Result<Triggers> {
    let mut msk = Vec::new();
    let mut relay_schedule = None;
    for function in &template.functions {
        let binary = function
            .binary
            .clone()
            .with_context(|| format!("{} has no BuildProperties.Binary", function.logical_id))?;
        for (event, declared) in function.msk_events() {
            let starting_position = match declared.starting_position.as_deref() {
                Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
                Some("LATEST") => StartingPosition::Latest,
                other => bail!(
                    "{}.{event}: StartingPosition {other:?} is not TRIM_HORIZON or LATEST",
                    function.logical_id
                ),
            };
            msk.push(DeclaredTrigger {
                binary: binary.clone(),
                spec: TriggerSpec {
                    function: format!("{}.{event}", function.logical_id),
                    topics: declared.topics.clone(),
                    batch_size: declared.batch_size.unwrap_or(DEFAULT_BATCH_SIZE) as usize,
                    batching_window: Duration::from_secs(
                        declared
                            .maximum_batching_window_secs
                            .unwrap_or(DEFAULT_BATCHING_WINDOW_SECS),
                    ),
                    starting_position,
                    consumer_group: declared
                        .consumer_group_id
                        .clone()
                        .unwrap_or_else(|| format!("{}-{event}", function.logical_id)),
                },
            });
        }
        if binary == "outbox-relay" {
            let expression = function
                .schedules()
                .next()
                .context("the outbox relay has no schedule")?;
            let seconds = rate_in_seconds(expression)
                .with_context(|| format!("cannot emulate the schedule {expression:?}"))?;
            relay_schedule = Some(Duration::from_secs(seconds));
        }
    }
    if msk.is_empty() {
        bail!("the template declares no MSK triggers");
    }
    Ok(Triggers {
        msk,
        relay_schedule: relay_schedule.context("the template has no outbox-relay function")?,
    })
}
