//! The connection budget (docs/scale.md): for every function, the most instances it can have
//! times its pool size, summed, must fit in the share of the database's `max_connections` the
//! functions may use. CloudFormation cannot add, so the template hands the parts over
//! (`CONNECTION_BUDGET`) and every deploy checks the sum against the real instance here,
//! failing the deploy when it does not fit.

use anyhow::Context as _;
use shared::config::ConfigError;
use sqlx::PgPool;

/// One function's part: `instances` × `pool_size` connections at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub function: String,
    /// 0 when nothing bounds the function's instances (no reserved concurrency).
    pub instances: u32,
    pub pool_size: u32,
}

/// Every function's part, and the percentage of `max_connections` they may use together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub parts: Vec<Part>,
    pub percent: u32,
}

/// The budget does not fit the database.
#[derive(Debug, thiserror::Error)]
#[error(
    "the connection budget does not fit the database: the functions may open {demand} \
     connections ({breakdown}), but {percent}% of its max_connections ({max_connections}) is \
     {share}; lower OrderApiMaxInstances or the pool sizes, or choose a larger \
     DatabaseInstanceClass (docs/scale.md)"
)]
pub struct OverBudget {
    pub demand: u64,
    pub breakdown: String,
    pub percent: u32,
    pub max_connections: u32,
    pub share: u64,
}

impl Budget {
    /// Parses `function=<instances>x<pool size>` entries separated by commas (white space
    /// allowed); `variable` names the setting in errors.
    pub fn parse(text: &str, percent: u32, variable: &str) -> Result<Self, ConfigError> {
        let bad = |problem: String| ConfigError::new(variable, problem);
        let mut parts = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (function, size) = entry.split_once('=').ok_or_else(|| {
                bad(format!(
                    "`{entry}` is not <function>=<instances>x<pool size>"
                ))
            })?;
            let (instances, pool_size) = size.split_once('x').ok_or_else(|| {
                bad(format!(
                    "`{entry}` is not <function>=<instances>x<pool size>"
                ))
            })?;
            let number = |value: &str| {
                value
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| bad(format!("`{entry}`: `{value}` is not a whole number")))
            };
            let part = Part {
                function: function.trim().to_owned(),
                instances: number(instances)?,
                pool_size: number(pool_size)?,
            };
            if part.pool_size == 0 {
                return Err(bad(format!(
                    "`{entry}`: a pool holds at least one connection"
                )));
            }
            parts.push(part);
        }
        if parts.is_empty() {
            return Err(bad("names no function".to_owned()));
        }
        if !(1..=100).contains(&percent) {
            return Err(ConfigError::new(
                "CONNECTION_BUDGET_PERCENT",
                "must be between 1 and 100",
            ));
        }
        Ok(Self { parts, percent })
    }

    /// The most connections the bounded functions can open together.
    pub fn demand(&self) -> u64 {
        self.parts
            .iter()
            .map(|part| u64::from(part.instances) * u64::from(part.pool_size))
            .sum()
    }

    /// Functions whose instances nothing bounds.
    pub fn unbounded(&self) -> Vec<&str> {
        self.parts
            .iter()
            .filter(|part| part.instances == 0)
            .map(|part| part.function.as_str())
            .collect()
    }

    /// Whether the budget fits a database with `max_connections`.
    pub fn check(&self, max_connections: u32) -> Result<u64, OverBudget> {
        let share = u64::from(max_connections) * u64::from(self.percent) / 100;
        let demand = self.demand();
        if demand <= share {
            return Ok(share - demand);
        }
        let breakdown = self
            .parts
            .iter()
            .map(|p| format!("{} {}x{}", p.function, p.instances, p.pool_size))
            .collect::<Vec<_>>()
            .join(", ");
        Err(OverBudget {
            demand,
            breakdown,
            percent: self.percent,
            max_connections,
            share,
        })
    }
}

/// Checks `budget` against the database's `max_connections`; fails when it does not fit.
#[tracing::instrument(skip_all, err(Display))]
pub async fn enforce(pool: &PgPool, budget: &Budget) -> anyhow::Result<()> {
    let max_connections = sqlx::query_scalar!(
        r#"SELECT current_setting('max_connections')::int4 AS "max_connections!""#
    )
    .fetch_one(pool)
    .await
    .context("could not read the database's max_connections")?;
    let max_connections = u32::try_from(max_connections).unwrap_or(0);
    let spare = budget.check(max_connections)?;
    let unbounded = budget.unbounded();
    if !unbounded.is_empty() {
        tracing::warn!(
            functions = unbounded.join(","),
            "nothing bounds these functions' instances, so the connection budget is not enforced for them"
        );
    }
    tracing::info!(
        demand = budget.demand(),
        max_connections,
        percent = budget.percent,
        spare,
        "the connection budget fits the database"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template's defaults: order-api 20 instances of pool 2, nine MSK triggers of three
    /// partitions and pool 2, the relay.
    const DEFAULTS: &str = "order-api=20x2, inventory=3x2, inventory-order-paid=3x2,
         inventory-order-payment-failed=3x2, notification-order-placed=3x2,
         notification-order-rejected=3x2, notification-order-confirmed=3x2,
         notification-order-cancelled=3x2, payment-order-reserved=3x2,
         payment-order-cancelled=3x2, outbox-relay=2x2";

    #[test]
    fn the_template_defaults_fit_a_small_instance_but_not_a_micro_one() {
        let budget = Budget::parse(DEFAULTS, 80, "CONNECTION_BUDGET").unwrap();
        assert_eq!(budget.demand(), 40 + 9 * 6 + 4);
        // max_connections is LEAST(DBInstanceClassMemory / 9531392, 5000): about 190 on
        // db.t4g.small (80% of it is 152), about 81 on db.t4g.micro (80% is 64).
        assert_eq!(budget.check(190).unwrap(), 152 - 98);
        assert!(budget.check(81).is_err());
    }

    #[test]
    fn a_budget_over_the_share_is_refused_with_its_arithmetic() {
        let budget =
            Budget::parse("order-api=40x4, inventory=3x2", 80, "CONNECTION_BUDGET").unwrap();
        let err = budget.check(81).unwrap_err();
        assert_eq!((err.demand, err.share), (166, 64));
        let message = err.to_string();
        assert!(message.contains("order-api 40x4"), "{message}");
        assert!(message.contains("OrderApiMaxInstances"), "{message}");
    }

    #[test]
    fn an_unbounded_function_adds_nothing_and_is_named() {
        let budget =
            Budget::parse("order-api=0x2, inventory=3x2", 80, "CONNECTION_BUDGET").unwrap();
        assert_eq!(budget.demand(), 6);
        assert_eq!(budget.unbounded(), ["order-api"]);
    }

    #[test]
    fn malformed_entries_are_refused_by_name() {
        for text in [
            "order-api=20",
            "order-api=twentyx2",
            "=",
            "order-api=2x0",
            "",
        ] {
            let err = Budget::parse(text, 80, "CONNECTION_BUDGET").unwrap_err();
            assert_eq!(err.variable, "CONNECTION_BUDGET", "{text}");
        }
        let err = Budget::parse("a=1x1", 0, "CONNECTION_BUDGET").unwrap_err();
        assert_eq!(err.variable, "CONNECTION_BUDGET_PERCENT");
    }
}
