//! Stopping criteria, in any combination: a number of iterations, a label budget, a money
//! budget and required performance. The run stops at the first criterion met after an
//! iteration; the last query is trimmed so the label budget is never exceeded.
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Money compared with a budget is a sum of float prices: allow for rounding.
const MONEY_EPSILON: f64 = 1e-9;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoppingCriteria {
    /// Query rounds after the initial round: `Some(n)` gives n + 1 evaluated iterations
    /// (iteration 0 trains on the initial set, iterations 1..=n on each query added).
    pub iterations: Option<usize>,
    /// Most labeled examples in total, the initial set included.
    pub label_budget: Option<usize>,
    /// Most dollars the labeller may spend.
    pub money_budget: Option<f64>,
    /// Stop once every listed metric reaches its threshold, on the metric's own scale
    /// (all registered metrics are higher-is-better).
    pub required_performance: BTreeMap<String, f64>,
}

impl From<&crate::config::AlConfig> for StoppingCriteria {
    fn from(al: &crate::config::AlConfig) -> Self {
        StoppingCriteria {
            iterations: al.iterations,
            label_budget: al.label_budget,
            money_budget: al.money_budget,
            required_performance: al.required_performance.clone(),
        }
    }
}

impl StoppingCriteria {
    pub fn is_empty(&self) -> bool {
        self.iterations.is_none()
            && self.label_budget.is_none()
            && self.money_budget.is_none()
            && self.required_performance.is_empty()
    }

    /// Check the criteria can be met: at least one is set, budgets are positive, and every
    /// required metric is among the evaluated `metrics`.
    pub fn validate(&self, metrics: &[String]) -> Result<()> {
        if self.is_empty() {
            bail!(
                "no stopping criterion: set at least one of al.iterations, al.label_budget, \
                 al.money_budget or al.required_performance"
            );
        }
        if self.label_budget == Some(0) {
            bail!("al.label_budget is 0: set a positive number of labels");
        }
        if let Some(m) = self.money_budget {
            if !(m.is_finite() && m > 0.0) {
                bail!("al.money_budget is {m}: set a positive number of dollars");
            }
        }
        for (metric, threshold) in &self.required_performance {
            if !metrics.contains(metric) {
                bail!(
                    "al.required_performance.{metric}: `{metric}` is not evaluated; add it to \
                     eval.metrics (now: {})",
                    metrics.join(", ")
                );
            }
            if !threshold.is_finite() {
                bail!("al.required_performance.{metric} must be a finite number");
            }
        }
        Ok(())
    }

    /// Evaluated iterations the run will do at most, when the iteration count is set.
    pub fn planned_iterations(&self) -> Option<usize> {
        self.iterations.map(|n| n + 1)
    }

    /// Labels the run will collect at most, when it is bounded by iterations or the label
    /// budget (what an experimental-design strategy selects in one go).
    pub fn planned_labels(&self, init_size: usize, query_size: usize, pool: usize) -> usize {
        let by_iterations = self.iterations.map_or(usize::MAX, |n| {
            init_size.saturating_add(n.saturating_mul(query_size))
        });
        by_iterations
            .min(self.label_budget.unwrap_or(usize::MAX))
            .min(pool)
    }
}

/// Where a cell stands after an iteration.
#[derive(Clone, Debug, PartialEq)]
pub struct Progress<'a> {
    /// Iterations evaluated so far (curve rows).
    pub iterations_done: usize,
    pub labeled: usize,
    /// Unlabeled pool examples left.
    pub pool_remaining: usize,
    pub money_spent: f64,
    /// The labeller stopped a call because the next label would exceed the money budget.
    pub labeller_budget_reached: bool,
    /// The last evaluation, `(metric, value)`.
    pub metrics: &'a [(String, f64)],
}

/// Why a cell stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum StopReason {
    Iterations {
        done: usize,
    },
    LabelBudget {
        labeled: usize,
        budget: usize,
    },
    MoneyBudget {
        spent: f64,
        budget: f64,
    },
    /// Every required metric reached its threshold; the values that did.
    Performance {
        values: BTreeMap<String, f64>,
    },
    PoolExhausted,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // `done` counts the initial round too; `al.iterations` counts the queries after it.
            StopReason::Iterations { done } => {
                let queries = done.saturating_sub(1);
                let noun = if queries == 1 { "query" } else { "queries" };
                write!(
                    f,
                    "al.iterations = {queries} reached (the initial set, then {queries} {noun})"
                )
            }
            StopReason::LabelBudget { labeled, budget } => {
                write!(f, "label budget reached ({labeled}/{budget})")
            }
            StopReason::MoneyBudget { spent, budget } => {
                write!(f, "money budget reached (${spent:.4} of ${budget:.4})")
            }
            StopReason::Performance { values } => {
                let v: Vec<String> = values.iter().map(|(m, v)| format!("{m}={v:.4}")).collect();
                write!(f, "required performance reached ({})", v.join(", "))
            }
            StopReason::PoolExhausted => write!(f, "pool exhausted"),
        }
    }
}

/// The first criterion met, checked in this order: performance, label budget, money budget,
/// iterations, empty pool. `None`: run another iteration.
pub fn should_stop(cfg: &StoppingCriteria, progress: &Progress<'_>) -> Option<StopReason> {
    if !cfg.required_performance.is_empty() {
        let mut values = BTreeMap::new();
        let all_reached = cfg.required_performance.iter().all(|(metric, threshold)| {
            let value = progress
                .metrics
                .iter()
                .find(|(m, _)| m == metric)
                .map(|(_, v)| *v);
            match value {
                Some(v) if v >= *threshold => {
                    values.insert(metric.clone(), v);
                    true
                }
                _ => false,
            }
        });
        if all_reached {
            return Some(StopReason::Performance { values });
        }
    }
    if let Some(budget) = cfg.label_budget {
        if progress.labeled >= budget {
            return Some(StopReason::LabelBudget {
                labeled: progress.labeled,
                budget,
            });
        }
    }
    if let Some(budget) = cfg.money_budget {
        if progress.labeller_budget_reached || progress.money_spent >= budget - MONEY_EPSILON {
            return Some(StopReason::MoneyBudget {
                spent: progress.money_spent,
                budget,
            });
        }
    }
    if let Some(planned) = cfg.planned_iterations() {
        if progress.iterations_done >= planned {
            return Some(StopReason::Iterations {
                done: progress.iterations_done,
            });
        }
    }
    if progress.pool_remaining == 0 {
        return Some(StopReason::PoolExhausted);
    }
    None
}

/// How many examples to query next: `query_size`, trimmed so the label budget is never
/// exceeded and to what is left in the pool.
pub fn next_query_size(
    query_size: usize,
    labeled: usize,
    pool_remaining: usize,
    label_budget: Option<usize>,
) -> usize {
    let budget_left = label_budget.map_or(usize::MAX, |b| b.saturating_sub(labeled));
    query_size.min(budget_left).min(pool_remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(iterations_done: usize, labeled: usize, money: f64) -> Progress<'static> {
        Progress {
            iterations_done,
            labeled,
            pool_remaining: 1000,
            money_spent: money,
            labeller_budget_reached: false,
            metrics: &[],
        }
    }

    /// Simulate a run: init 10, query 10, metric rising by 0.1 per iteration, cost $0.01 per
    /// label. Returns (iterations done, labeled, reason) when it stops.
    fn simulate(cfg: &StoppingCriteria) -> (usize, usize, StopReason) {
        let (init, query, pool) = (10, 10, 95);
        let mut labeled = next_query_size(init, 0, pool, cfg.label_budget);
        let mut done = 0;
        loop {
            done += 1;
            let metrics = [("rouge1".to_string(), 0.1 * done as f64)];
            let p = Progress {
                iterations_done: done,
                labeled,
                pool_remaining: pool - labeled,
                money_spent: 0.01 * labeled as f64,
                labeller_budget_reached: false,
                metrics: &metrics,
            };
            if let Some(reason) = should_stop(cfg, &p) {
                return (done, labeled, reason);
            }
            labeled += next_query_size(query, labeled, pool - labeled, cfg.label_budget);
        }
    }

    #[test]
    fn iterations_count_query_rounds_after_the_initial_one() {
        let cfg = StoppingCriteria {
            iterations: Some(3),
            ..Default::default()
        };
        assert_eq!(simulate(&cfg), (4, 40, StopReason::Iterations { done: 4 }));
        assert_eq!(
            StopReason::Iterations { done: 4 }.to_string(),
            "al.iterations = 3 reached (the initial set, then 3 queries)"
        );
        assert_eq!(cfg.planned_iterations(), Some(4));
        assert_eq!(cfg.planned_labels(10, 10, 1000), 40);
        assert_eq!(
            StopReason::Iterations { done: 2 }.to_string(),
            "al.iterations = 1 reached (the initial set, then 1 query)"
        );
    }

    #[test]
    fn label_budget_trims_the_last_query() {
        let cfg = StoppingCriteria {
            label_budget: Some(35),
            ..Default::default()
        };
        // 10, 20, 30, then the last query is trimmed to 5: never above 35.
        assert_eq!(
            simulate(&cfg),
            (
                4,
                35,
                StopReason::LabelBudget {
                    labeled: 35,
                    budget: 35
                }
            )
        );
        assert_eq!(next_query_size(10, 30, 100, Some(35)), 5);
        assert_eq!(next_query_size(10, 35, 100, Some(35)), 0);
        assert_eq!(next_query_size(10, 30, 3, None), 3);
        // An initial set larger than the budget is trimmed too.
        assert_eq!(next_query_size(50, 0, 100, Some(35)), 35);
        assert_eq!(cfg.planned_labels(10, 10, 1000), 35);
    }

    #[test]
    fn money_budget_stops_when_spent_or_labeller_refuses() {
        let cfg = StoppingCriteria {
            money_budget: Some(0.3),
            ..Default::default()
        };
        // $0.01 per label: 30 labels cost 0.30 (with float rounding) → stop at 30.
        let (done, labeled, reason) = simulate(&cfg);
        assert_eq!((done, labeled), (3, 30));
        assert!(matches!(reason, StopReason::MoneyBudget { budget, .. } if budget == 0.3));
        let mut p = progress(1, 10, 0.05);
        assert_eq!(should_stop(&cfg, &p), None);
        p.labeller_budget_reached = true;
        assert!(matches!(
            should_stop(&cfg, &p),
            Some(StopReason::MoneyBudget { .. })
        ));
    }

    #[test]
    fn required_performance_needs_every_threshold() {
        let cfg = StoppingCriteria {
            required_performance: [("rouge1".to_string(), 0.45)].into_iter().collect(),
            ..Default::default()
        };
        // rouge1 = 0.1·done: reaches 0.45 at iteration 5 (0.5).
        let (done, labeled, reason) = simulate(&cfg);
        assert_eq!((done, labeled), (5, 50));
        assert!(
            matches!(reason, StopReason::Performance { ref values } if values["rouge1"] == 0.5)
        );

        let two = StoppingCriteria {
            required_performance: [("rouge1".to_string(), 0.3), ("bleu".to_string(), 20.0)]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let only_rouge = [("rouge1".to_string(), 0.4), ("bleu".to_string(), 19.9)];
        let mut p = progress(3, 30, 0.0);
        p.metrics = &only_rouge;
        assert_eq!(should_stop(&two, &p), None);
        let both = [("rouge1".to_string(), 0.4), ("bleu".to_string(), 20.0)];
        p.metrics = &both;
        assert!(should_stop(&two, &p).is_some());
    }

    #[test]
    fn combined_criteria_stop_at_the_first_met() {
        let cfg = StoppingCriteria {
            iterations: Some(10),
            label_budget: Some(100),
            money_budget: Some(0.25),
            required_performance: [("rouge1".to_string(), 0.9)].into_iter().collect(),
        };
        // Money runs out first: 30 labels cost 0.30 ≥ 0.25.
        let (done, labeled, reason) = simulate(&cfg);
        assert_eq!((done, labeled), (3, 30));
        assert!(matches!(reason, StopReason::MoneyBudget { .. }));
        // The pool running out ends a run with no other limit reached: 95 examples.
        let cfg = StoppingCriteria {
            iterations: Some(100),
            ..Default::default()
        };
        assert_eq!(simulate(&cfg), (10, 95, StopReason::PoolExhausted));
    }

    #[test]
    fn validation_names_the_key() {
        let metrics = vec!["rouge1".to_string()];
        let err = StoppingCriteria::default().validate(&metrics).unwrap_err();
        assert!(err.to_string().contains("no stopping criterion"));
        let cfg = StoppingCriteria {
            required_performance: [("bleu".to_string(), 20.0)].into_iter().collect(),
            ..Default::default()
        };
        let err = cfg.validate(&metrics).unwrap_err().to_string();
        assert!(err.contains("al.required_performance.bleu") && err.contains("eval.metrics"));
        let cfg = StoppingCriteria {
            money_budget: Some(-1.0),
            ..Default::default()
        };
        assert!(cfg
            .validate(&metrics)
            .unwrap_err()
            .to_string()
            .contains("money_budget"));
    }

    #[test]
    fn stop_reason_round_trips_as_json() {
        let r = StopReason::LabelBudget {
            labeled: 35,
            budget: 35,
        };
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"kind":"label_budget","labeled":35,"budget":35}"#);
        assert_eq!(serde_json::from_str::<StopReason>(&json).unwrap(), r);
        assert_eq!(r.to_string(), "label budget reached (35/35)");
    }
}
