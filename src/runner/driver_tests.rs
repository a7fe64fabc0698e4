//! The loop on a fake model and strategy whose outputs are known: resume after a kill gives
//! the same results as an uninterrupted run, each stopping criterion stops where it should,
//! experimental design selects once.
use super::driver::*;
use super::persist::{read_selected, CellPaths, GenerationRecord};
use super::progress::CellProgress;
use super::stopping::{StopReason, StoppingCriteria};
use crate::data::Example;
use crate::labeller::{Label, LabelOutcome, Labeller};
use crate::runner::curve::Curve;
use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};

fn pool() -> Vec<Example> {
    // Ids are not positions: 100, 103, 106, ...
    (0..60)
        .map(|i| {
            let id = 100 + 3 * i as u64;
            Example {
                id,
                input: format!("input {id}"),
                output: format!("gold {id}"),
                references: vec![format!("gold {id}")],
            }
        })
        .collect()
}

#[derive(Default)]
struct FakeSteps {
    select_calls: usize,
    fail_train_at: Option<usize>,
    duplicate_at: Option<usize>,
    /// Outputs of the labeled set at the last training.
    trained_outputs: Vec<String>,
}

impl CellSteps for FakeSteps {
    fn select(&mut self, mut req: SelectRequest<'_>, _: &CellProgress) -> Result<Selection> {
        self.select_calls += 1;
        let mut ids: Vec<u64> = req.unlabeled.iter().map(|e| e.id).collect();
        ids.shuffle(&mut req.rng);
        ids.truncate(req.k);
        if self.duplicate_at == Some(req.iteration) {
            ids[1] = ids[0];
        }
        req.memory
            .entry("seen".into())
            .or_default()
            .push(req.labeled.len() as f64);
        let scores = ids.iter().map(|&id| id as f64 / 1000.0).collect();
        Ok(Selection {
            ids,
            scores: Some(scores),
        })
    }

    fn train_and_evaluate(
        &mut self,
        iteration: usize,
        labeled: &[Example],
        previous: Option<&Path>,
        _: &CellProgress,
    ) -> Result<Evaluation> {
        if self.fail_train_at == Some(iteration) {
            bail!("killed during training");
        }
        let expected = (iteration > 0).then(|| PathBuf::from(format!("adapter-{}", iteration - 1)));
        if previous != expected.as_deref() {
            bail!("iteration {iteration} continued from {previous:?}, expected {expected:?}");
        }
        self.trained_outputs = labeled.iter().map(|e| e.output.clone()).collect();
        let mean_mod =
            labeled.iter().map(|e| (e.id % 7) as f64 / 7.0).sum::<f64>() / labeled.len() as f64;
        let size = labeled.len() as f64 / 100.0;
        let generations = labeled
            .iter()
            .take(2)
            .map(|e| {
                GenerationRecord::new(
                    e.id,
                    e.output.clone(),
                    e.references.clone(),
                    &[("mod", mean_mod), ("size", size)],
                )
            })
            .collect();
        Ok(Evaluation {
            metrics: vec![mean_mod, size],
            generations,
            adapter: Some(PathBuf::from(format!("adapter-{iteration}"))),
        })
    }
}

/// $0.01 per label, refusing labels past its budget like the LLM labellers do.
struct PaidLabeller {
    budget: Option<f64>,
    spent: f64,
}

impl Labeller for PaidLabeller {
    fn name(&self) -> String {
        "paid".into()
    }
    fn label(&mut self, items: &[Example], _: &[Example]) -> Result<LabelOutcome> {
        let mut out = Vec::new();
        for e in items {
            if self.budget.is_some_and(|b| self.spent + 0.01 > b + 1e-9) {
                return Ok(LabelOutcome::BudgetReached(out));
            }
            self.spent += 0.01;
            out.push(Label {
                id: e.id,
                output: format!("label:{}", e.id),
                cost: 0.01,
                input_tokens: 5,
                output_tokens: 2,
                seconds: 0.0,
            });
        }
        Ok(LabelOutcome::Complete(out))
    }
    fn spent(&self) -> f64 {
        self.spent
    }
}

fn metrics() -> Vec<String> {
    vec!["mod".to_string(), "size".to_string()]
}

fn run(
    results: &Path,
    stopping: &StoppingCriteria,
    kind: SelectionKind,
    steps: &mut FakeSteps,
    money: Option<f64>,
) -> Result<CellOutcome> {
    let mut labeller = PaidLabeller {
        budget: money,
        spent: 0.0,
    };
    run_with(results, stopping, kind, steps, &mut labeller, true)
}

fn run_with(
    results: &Path,
    stopping: &StoppingCriteria,
    kind: SelectionKind,
    steps: &mut FakeSteps,
    labeller: &mut dyn Labeller,
    keep_labels: bool,
) -> Result<CellOutcome> {
    std::env::set_var("LAB_QUIET", "1");
    let metrics = metrics();
    let spec = CellSpec {
        experiment: "exp",
        strategy: "fake",
        seed: 5,
        paths: CellPaths::new(results, "exp", "fake", 5),
        config_toml: "seed = 5\n",
        metrics: &metrics,
        init_size: 10,
        query_size: 10,
        stopping,
        kind,
        fresh: false,
        keep_labels,
        few_shot: 2,
    };
    run_cell(&spec, &pool(), labeller, steps)
}

fn labeled_column(results: &Path) -> Vec<usize> {
    let curve = Curve::read(&CellPaths::new(results, "exp", "fake", 5).curve()).unwrap();
    curve.rows.iter().map(|r| r.labeled).collect()
}

fn iterations(n: usize) -> StoppingCriteria {
    StoppingCriteria {
        iterations: Some(n),
        ..Default::default()
    }
}

#[test]
fn resume_after_a_kill_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let killed = tmp.path().join("killed");
    let stop = iterations(4);
    run(
        &whole,
        &stop,
        SelectionKind::Al,
        &mut FakeSteps::default(),
        None,
    )
    .unwrap();

    let mut dying = FakeSteps {
        fail_train_at: Some(2),
        ..Default::default()
    };
    let err = run(&killed, &stop, SelectionKind::Al, &mut dying, None).unwrap_err();
    assert!(err.to_string().contains("killed"));
    assert_eq!(labeled_column(&killed), [10, 20]);
    let out = run(
        &killed,
        &stop,
        SelectionKind::Al,
        &mut FakeSteps::default(),
        None,
    )
    .unwrap();
    assert!(!out.skipped);

    let a = CellPaths::new(&whole, "exp", "fake", 5);
    let b = CellPaths::new(&killed, "exp", "fake", 5);
    let (ca, cb) = (
        Curve::read(&a.curve()).unwrap(),
        Curve::read(&b.curve()).unwrap(),
    );
    assert_eq!(ca.rows.len(), 5);
    for (ra, rb) in ca.rows.iter().zip(&cb.rows) {
        // Everything but wall-clock time is identical.
        assert_eq!(
            (ra.iteration, ra.labeled, ra.cost, ra.tokens, &ra.metrics),
            (rb.iteration, rb.labeled, rb.cost, rb.tokens, &rb.metrics)
        );
    }
    assert_eq!(read_selected(&a).unwrap(), read_selected(&b).unwrap());
    for t in 0..5 {
        assert_eq!(
            std::fs::read_to_string(a.generations(t)).unwrap(),
            std::fs::read_to_string(b.generations(t)).unwrap()
        );
    }
    let sa = super::persist::load_state(&a).unwrap().unwrap();
    let sb = super::persist::load_state(&b).unwrap().unwrap();
    assert_eq!(sa.labeled_ids, sb.labeled_ids);
    assert_eq!(sa.labels, sb.labels);
    assert_eq!(sa.strategy_memory, sb.strategy_memory);
    assert_eq!(sa.strategy_memory["seen"], [0.0, 10.0, 20.0, 30.0, 40.0]);
    assert_eq!(sa.stop_reason, Some(StopReason::Iterations { done: 5 }));
    // Labels come from the labeller, and 50 labels cost $0.50.
    assert!(sa
        .labels
        .iter()
        .all(|l| l.output == format!("label:{}", l.id)));
    assert!((ca.rows[4].cost - 0.5).abs() < 1e-9);
    assert_eq!(ca.rows[4].tokens, 350);

    // A finished cell is skipped.
    let mut steps = FakeSteps::default();
    let again = run(&killed, &stop, SelectionKind::Al, &mut steps, None).unwrap();
    assert!(again.skipped);
    assert_eq!(steps.select_calls, 0);
}

#[test]
fn every_stopping_criterion_stops_where_it_should() {
    let tmp = tempfile::tempdir().unwrap();
    let case = |name: &str, stop: StoppingCriteria, money: Option<f64>| {
        let dir = tmp.path().join(name);
        let out = run(
            &dir,
            &stop,
            SelectionKind::Al,
            &mut FakeSteps::default(),
            money,
        )
        .unwrap();
        (
            labeled_column(&dir),
            out.state.stop_reason.clone().unwrap(),
            out.state,
        )
    };
    let (labeled, reason, _) = case("iterations", iterations(2), None);
    assert_eq!(labeled, [10, 20, 30]);
    assert_eq!(reason, StopReason::Iterations { done: 3 });

    let budget = StoppingCriteria {
        label_budget: Some(35),
        ..Default::default()
    };
    let (labeled, reason, _) = case("labels", budget, None);
    assert_eq!(labeled, [10, 20, 30, 35]);
    assert_eq!(
        reason,
        StopReason::LabelBudget {
            labeled: 35,
            budget: 35
        }
    );

    // The labeller refuses the 26th label: the third iteration trains on 25.
    let money = StoppingCriteria {
        money_budget: Some(0.25),
        ..Default::default()
    };
    let (labeled, reason, state) = case("money", money, Some(0.25));
    assert_eq!(labeled, [10, 20, 25]);
    assert!(matches!(reason, StopReason::MoneyBudget { .. }));
    assert!((state.money_spent - 0.25).abs() < 1e-9);

    // "size" = labeled / 100 reaches 0.3 at 30 labels.
    let perf = StoppingCriteria {
        required_performance: [("size".to_string(), 0.3)].into_iter().collect(),
        ..Default::default()
    };
    let (labeled, reason, _) = case("performance", perf, None);
    assert_eq!(labeled, [10, 20, 30]);
    assert!(matches!(reason, StopReason::Performance { .. }));

    // Nothing else set: the 60-example pool runs out.
    let (labeled, reason, _) = case("pool", iterations(100), None);
    assert_eq!(labeled.last(), Some(&60));
    assert_eq!(reason, StopReason::PoolExhausted);
}

#[test]
fn experimental_design_selects_once_and_adds_cumulative_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let mut steps = FakeSteps::default();
    let out = run(
        tmp.path(),
        &iterations(2),
        SelectionKind::Ed,
        &mut steps,
        None,
    )
    .unwrap();
    assert_eq!(steps.select_calls, 1);
    assert_eq!(labeled_column(tmp.path()), [10, 20, 30]);
    assert_eq!(out.state.planned_ids.len(), 30);
    assert_eq!(out.state.labeled_ids, out.state.planned_ids);
    let sel = read_selected(&CellPaths::new(tmp.path(), "exp", "fake", 5)).unwrap();
    assert_eq!(sel[1].ids, out.state.planned_ids[10..20]);

    // Unbounded designs are refused with advice.
    let unbounded = StoppingCriteria {
        money_budget: Some(1.0),
        ..Default::default()
    };
    let err = run(
        &tmp.path().join("u"),
        &unbounded,
        SelectionKind::Ed,
        &mut FakeSteps::default(),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("al.iterations or al.label_budget"), "{err}");
}

#[test]
fn invalid_selections_fail_with_the_cell_and_iteration() {
    let tmp = tempfile::tempdir().unwrap();
    let mut steps = FakeSteps {
        duplicate_at: Some(1),
        ..Default::default()
    };
    let err = run(
        tmp.path(),
        &iterations(3),
        SelectionKind::Al,
        &mut steps,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("exp/fake/seed-5: iteration 1") && err.contains("twice"),
        "{err}"
    );
}

#[test]
fn golden_labels_are_not_stored_and_come_back_from_the_pool_on_resume() {
    use crate::labeller::golden::GoldenLabeller;
    let tmp = tempfile::tempdir().unwrap();
    let stop = iterations(3);
    let mut dying = FakeSteps {
        fail_train_at: Some(2),
        ..Default::default()
    };
    let mut golden = GoldenLabeller::new();
    assert!(run_with(
        tmp.path(),
        &stop,
        SelectionKind::Al,
        &mut dying,
        &mut golden,
        false
    )
    .is_err());
    let mut steps = FakeSteps::default();
    let out = run_with(
        tmp.path(),
        &stop,
        SelectionKind::Al,
        &mut steps,
        &mut golden,
        false,
    )
    .unwrap();
    assert!(out.state.labels.is_empty());
    assert_eq!(out.state.money_spent, 0.0);
    assert_eq!(steps.trained_outputs.len(), 40);
    let want: Vec<String> = out
        .state
        .labeled_ids
        .iter()
        .map(|id| format!("gold {id}"))
        .collect();
    assert_eq!(steps.trained_outputs, want);
}

#[test]
fn a_resumed_design_is_not_selected_again() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let killed = tmp.path().join("killed");
    let stop = iterations(3);
    let a = run(
        &whole,
        &stop,
        SelectionKind::Ed,
        &mut FakeSteps::default(),
        None,
    )
    .unwrap();
    let mut dying = FakeSteps {
        fail_train_at: Some(1),
        ..Default::default()
    };
    assert!(run(&killed, &stop, SelectionKind::Ed, &mut dying, None).is_err());
    let mut steps = FakeSteps::default();
    let b = run(&killed, &stop, SelectionKind::Ed, &mut steps, None).unwrap();
    assert_eq!(steps.select_calls, 0, "the design survives in state.json");
    assert_eq!(a.state.planned_ids, b.state.planned_ids);
    assert_eq!(a.state.labeled_ids, b.state.labeled_ids);
    assert_eq!(labeled_column(&killed), [10, 20, 30, 40]);
}
