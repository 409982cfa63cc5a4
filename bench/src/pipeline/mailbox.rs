//! The private mail sink's mails, read in arrival order from where the previous read stopped
//! (maildev's `?skip=`), so that each read costs what arrived since, not what the run sent.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::Context;
use serde_json::Value;
use testkit::maildev::Maildev;

/// A reader of one sink that remembers how many mails it has read.
pub struct Mailbox<'a> {
    sink: &'a Maildev,
    client: reqwest::Client,
    seen: AtomicUsize,
}

impl<'a> Mailbox<'a> {
    pub fn new(sink: &'a Maildev) -> Self {
        Self {
            sink,
            client: reqwest::Client::new(),
            seen: AtomicUsize::new(0),
        }
    }

    /// The recipients of the mails that arrived since the last call, and when they were read.
    pub async fn next_recipients(&self) -> anyhow::Result<(HashSet<String>, Instant)> {
        let skip = self.seen.load(Ordering::Relaxed);
        let mails: Vec<Value> = self
            .client
            .get(format!("{}/api/email?skip={skip}", self.sink.api_url()))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("the maildev API did not answer")?
            .json()
            .await
            .context("the maildev API returned no JSON list")?;
        let now = Instant::now();
        self.seen.fetch_add(mails.len(), Ordering::Relaxed);
        let recipients = mails
            .iter()
            .filter_map(|mail| mail["to"].as_array())
            .flatten()
            .filter_map(|to| to["address"].as_str())
            .map(str::to_ascii_lowercase)
            .collect();
        Ok((recipients, now))
    }

    /// Empties the sink, so that later reads (and maildev's memory) stay small.
    pub async fn clear(&self) -> anyhow::Result<()> {
        self.client
            .delete(format!("{}/api/email/all", self.sink.api_url()))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("could not empty the sink")?;
        self.seen.store(0, Ordering::Relaxed);
        Ok(())
    }
}
