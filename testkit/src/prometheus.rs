//! A private Prometheus (the Debian `prometheus` package, installed by `scripts/services up`)
//! with the repository's configuration and rules from `prometheus/`, scraping a target of the
//! test's choosing every second, and a client for its HTTP query API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use crate::process::Service;

/// The address the repository's configuration scrapes, replaced by the test's target.
const CONFIGURED_TARGET: &str = "127.0.0.1:9464";

/// A running Prometheus; killed on drop, its data deleted.
pub struct Prometheus {
    port: u16,
    dir: PathBuf,
    client: reqwest::Client,
    service: Service,
}

impl Prometheus {
    /// Starts Prometheus (`PROMETHEUS_BIN`, else `prometheus` on `PATH`) scraping `target`
    /// (`host:port`) every second, and waits until it is ready.
    pub async fn start(target: &str) -> Self {
        match Self::try_start(target).await {
            Ok(prometheus) => prometheus,
            Err(err) => panic!("{err:#}"),
        }
    }

    async fn try_start(target: &str) -> anyhow::Result<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../prometheus");
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!("prometheus-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("rules"))?;
        let config = std::fs::read_to_string(repo.join("prometheus.yml"))?;
        anyhow::ensure!(
            config.contains(CONFIGURED_TARGET),
            "prometheus/prometheus.yml no longer scrapes {CONFIGURED_TARGET}"
        );
        let config = config
            .replace(CONFIGURED_TARGET, target)
            .replace("scrape_interval: 5s", "scrape_interval: 1s")
            .replace("evaluation_interval: 5s", "evaluation_interval: 1s");
        std::fs::write(dir.join("prometheus.yml"), config)?;
        for rules in std::fs::read_dir(repo.join("rules"))? {
            let rules = rules?.path();
            std::fs::copy(&rules, dir.join("rules").join(rules.file_name().unwrap()))?;
        }
        let binary = crate::env("PROMETHEUS_BIN", "prometheus");
        let service = Service::new("Prometheus", &binary, dir.join("prometheus.log"))
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .hint("scripts/services up installs it");
        let mut prometheus = Self {
            port,
            dir,
            client: reqwest::Client::new(),
            service,
        };
        prometheus.service.spawn()?;
        let (client, ready) = (
            prometheus.client.clone(),
            format!("{}/-/ready", prometheus.base_url()),
        );
        prometheus
            .service
            .try_wait_for("ready", Duration::from_secs(30), || {
                let request = client.get(&ready).send();
                async move {
                    match request.await {
                        Ok(response) if response.status().is_success() => Ok(()),
                        Ok(response) => Err(format!("ready answered {}", response.status())),
                        Err(err) => Err(err.to_string()),
                    }
                }
            })
            .await?;
        Ok(prometheus)
    }

    /// Such as `http://127.0.0.1:40125`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log, for failure messages.
    pub fn log_path(&self) -> PathBuf {
        self.service.log_path().to_owned()
    }

    /// An instant query through `/api/v1/query`: every series of the result as its labels
    /// and value.
    pub async fn query(&self, promql: &str) -> anyhow::Result<Vec<(serde_json::Value, f64)>> {
        let body: serde_json::Value = self
            .client
            .get(format!("{}/api/v1/query", self.base_url()))
            .query(&[("query", promql)])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::ensure!(body["status"] == "success", "query failed: {body}");
        body["data"]["result"]
            .as_array()
            .context("no result array")?
            .iter()
            .map(|series| {
                let value = series["value"][1]
                    .as_str()
                    .context("no value")?
                    .parse::<f64>()?;
                Ok((series["metric"].clone(), value))
            })
            .collect()
    }

    /// The one value of a query that yields a single series, or `None` when it yields none.
    pub async fn value(&self, promql: &str) -> anyhow::Result<Option<f64>> {
        let series = self.query(promql).await?;
        anyhow::ensure!(series.len() <= 1, "{promql} yields {series:?}");
        Ok(series.first().map(|(_, value)| *value))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.service.kill_now();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
