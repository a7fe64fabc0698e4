//! The active-learning loop of one (experiment, strategy, seed) cell, independent of the
//! model and strategy engine, which plug in through [`CellSteps`].
//!
//! Iteration t: choose ids (the initial set at t = 0), label them, add them, train, evaluate,
//! write the iteration (state.json last), check the stopping criteria. A cell killed at any
//! point continues from its last finished iteration; because selection and training draw
//! their randomness from (seed, iteration), the resumed cell ends with the same curve.
use crate::data::Example;
use crate::labeller::{Label, LabelOutcome, Labeller};
use crate::runner::curve::CurveRow;
use crate::runner::persist::{
    append_iteration, prepare_cell, write_state, CellPaths, GenerationRecord, IterationRecord,
    SelectedLine,
};
use crate::runner::progress::CellProgress;
use crate::runner::state::CellState;
use crate::runner::stopping::{
    next_query_size, should_stop, Progress, StopReason, StoppingCriteria,
};
use anyhow::{bail, Context, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Active learning re-queries every iteration; experimental design selects its whole budget
/// once, from the base model, and is then labeled in cumulative chunks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectionKind {
    Al,
    Ed,
}

/// Everything about a cell except its data, labeller and model.
pub struct CellSpec<'a> {
    pub experiment: &'a str,
    /// The results key of the strategy (its label or name).
    pub strategy: &'a str,
    pub seed: u64,
    pub paths: CellPaths,
    /// The cell's resolved configuration, written to config.toml.
    pub config_toml: &'a str,
    /// Metric names in the order `CellSteps::train_and_evaluate` returns values.
    pub metrics: &'a [String],
    /// Resolved sizes (counts, not fractions).
    pub init_size: usize,
    pub query_size: usize,
    pub stopping: &'a StoppingCriteria,
    pub kind: SelectionKind,
    /// Start over instead of resuming.
    pub fresh: bool,
    /// Keep produced labels in state.json (any labeller other than golden, whose labels are
    /// the dataset's and are re-read on resume).
    pub keep_labels: bool,
    /// Labeled examples a labeller prompt may show.
    pub few_shot: usize,
}

/// What a selection step sees.
pub struct SelectRequest<'a> {
    pub iteration: usize,
    /// How many ids to return (exactly `min(k, unlabeled.len())`).
    pub k: usize,
    pub unlabeled: &'a [&'a Example],
    /// Labeled examples with their labels as outputs, in labeling order.
    pub labeled: &'a [Example],
    /// Kept across iterations and resumes.
    pub memory: &'a mut BTreeMap<String, Vec<f64>>,
    /// Seeded from (cell seed, iteration): the same on a resumed run.
    pub rng: ChaCha8Rng,
}

/// Ids chosen by a strategy, best first, with the score that ranked them when it has one.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub ids: Vec<u64>,
    pub scores: Option<Vec<f64>>,
}

/// A trained model's evaluation on the test subset.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// One value per `CellSpec::metrics`, same order.
    pub metrics: Vec<f64>,
    pub generations: Vec<GenerationRecord>,
    /// The adapter to continue from next iteration.
    pub adapter: Option<PathBuf>,
}

/// The model and strategy side of the loop.
pub trait CellSteps {
    fn select(&mut self, request: SelectRequest<'_>, progress: &CellProgress) -> Result<Selection>;
    /// Train on `labeled` (from `previous_adapter` when given) and evaluate.
    fn train_and_evaluate(
        &mut self,
        iteration: usize,
        labeled: &[Example],
        previous_adapter: Option<&Path>,
        progress: &CellProgress,
    ) -> Result<Evaluation>;
}

/// How a cell ended.
#[derive(Clone, Debug)]
pub struct CellOutcome {
    pub state: CellState,
    /// The cell was already finished: nothing ran.
    pub skipped: bool,
    /// The final line printed for the cell.
    pub summary: String,
}

/// The rng a strategy gets at `iteration`: a function of the cell seed and iteration only.
pub fn iteration_rng(seed: u64, iteration: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(iteration as u64 + 1);
    rng
}

/// Run (or resume) one cell to its stopping criterion.
pub fn run_cell(
    spec: &CellSpec<'_>,
    pool: &[Example],
    labeller: &mut dyn Labeller,
    steps: &mut dyn CellSteps,
) -> Result<CellOutcome> {
    let name = format!("{}/{}/seed-{}", spec.experiment, spec.strategy, spec.seed);
    if pool.is_empty() {
        bail!("{name}: the pool is empty; check data.path and data.pool_size");
    }
    let by_id: HashMap<u64, &Example> = pool.iter().map(|e| (e.id, e)).collect();
    if by_id.len() != pool.len() {
        bail!("{name}: the pool has duplicate example ids");
    }
    let mut state = match prepare_cell(&spec.paths, spec.config_toml, spec.fresh)? {
        Some(s) => s,
        None => CellState::new(
            spec.experiment,
            spec.strategy,
            spec.seed,
            &ChaCha8Rng::seed_from_u64(spec.seed),
        ),
    };
    let progress = CellProgress::new(
        &name,
        spec.stopping.planned_iterations(),
        state.iterations_done,
    );
    if state.finished {
        let summary = progress.finish(
            state.iterations_done,
            state.labeled_ids.len(),
            None,
            state.stop_reason.as_ref(),
        );
        return Ok(CellOutcome {
            state,
            skipped: true,
            summary,
        });
    }
    let mut labels: HashMap<u64, String> = state
        .labels
        .iter()
        .map(|l| (l.id, l.output.clone()))
        .collect();
    let mut last_score = None;
    loop {
        let started = Instant::now();
        let t = state.iterations_done;
        let labeled_set: HashSet<u64> = state.labeled_ids.iter().copied().collect();
        let unlabeled: Vec<&Example> = pool
            .iter()
            .filter(|e| !labeled_set.contains(&e.id))
            .collect();
        let wanted = if t == 0 {
            spec.init_size
        } else {
            spec.query_size
        };
        let k = next_query_size(
            wanted,
            state.labeled_ids.len(),
            unlabeled.len(),
            spec.stopping.label_budget,
        );
        if k == 0 {
            bail!(
                "{name}: iteration {t} would query 0 examples (al.init_size / al.query_size is 0)"
            );
        }
        let labeled_examples =
            build_labeled(&state.labeled_ids, &by_id, &labels, spec.keep_labels)?;
        let selection = match spec.kind {
            SelectionKind::Al => {
                let sel = steps.select(
                    SelectRequest {
                        iteration: t,
                        k,
                        unlabeled: &unlabeled,
                        labeled: &labeled_examples,
                        memory: &mut state.strategy_memory,
                        rng: iteration_rng(spec.seed, t),
                    },
                    &progress,
                )?;
                check_selection(&name, t, &sel, k, &unlabeled)?;
                sel
            }
            SelectionKind::Ed => {
                if state.planned_ids.is_empty() {
                    if spec.stopping.iterations.is_none() && spec.stopping.label_budget.is_none() {
                        bail!(
                            "{name}: an experimental-design strategy selects its whole budget \
                             once; set al.iterations or al.label_budget"
                        );
                    }
                    let budget =
                        spec.stopping
                            .planned_labels(spec.init_size, spec.query_size, pool.len());
                    let sel = steps.select(
                        SelectRequest {
                            iteration: 0,
                            k: budget,
                            unlabeled: &unlabeled,
                            labeled: &labeled_examples,
                            memory: &mut state.strategy_memory,
                            rng: iteration_rng(spec.seed, 0),
                        },
                        &progress,
                    )?;
                    check_selection(&name, 0, &sel, budget, &unlabeled)?;
                    state.planned_ids = sel.ids;
                }
                let done = state.labeled_ids.len();
                let end = (done + k).min(state.planned_ids.len());
                if end == done {
                    // The design is used up: nothing more to add.
                    break finish(
                        &spec.paths,
                        state,
                        StopReason::PoolExhausted,
                        progress,
                        last_score,
                    );
                }
                Selection {
                    ids: state.planned_ids[done..end].to_vec(),
                    scores: None,
                }
            }
        };

        let chosen: Vec<Example> = selection.ids.iter().map(|id| by_id[id].clone()).collect();
        let few_shot: Vec<Example> = labeled_examples
            .iter()
            .take(spec.few_shot)
            .cloned()
            .collect();
        let outcome = labeller
            .label(&chosen, &few_shot)
            .with_context(|| format!("{name}: labelling iteration {t}"))?;
        let budget_reached = matches!(outcome, LabelOutcome::BudgetReached(_));
        let new_labels: Vec<Label> = outcome.labels().to_vec();
        if new_labels.is_empty() {
            let reason = StopReason::MoneyBudget {
                spent: state.money_spent,
                budget: spec.stopping.money_budget.unwrap_or(state.money_spent),
            };
            break finish(&spec.paths, state, reason, progress, last_score);
        }
        let scores_by_id: HashMap<u64, f64> = match &selection.scores {
            Some(s) => selection
                .ids
                .iter()
                .copied()
                .zip(s.iter().copied())
                .collect(),
            None => HashMap::new(),
        };
        let added: Vec<u64> = new_labels.iter().map(|l| l.id).collect();
        for l in &new_labels {
            if !selection.ids.contains(&l.id) {
                bail!(
                    "{name}: the labeller returned id {} that was not asked for",
                    l.id
                );
            }
            state.money_spent += l.cost;
            state.tokens += l.input_tokens + l.output_tokens;
            labels.insert(l.id, l.output.clone());
        }
        state.labeled_ids.extend(&added);
        if spec.keep_labels {
            state.labels.extend(new_labels);
        }
        let labeled_examples =
            build_labeled(&state.labeled_ids, &by_id, &labels, spec.keep_labels)?;
        let eval = steps.train_and_evaluate(
            t,
            &labeled_examples,
            state.adapter_path.as_deref(),
            &progress,
        )?;
        if eval.metrics.len() != spec.metrics.len() {
            bail!(
                "{name}: evaluation returned {} values for {} metrics",
                eval.metrics.len(),
                spec.metrics.len()
            );
        }
        state.adapter_path = eval.adapter.clone();
        state.iterations_done = t + 1;
        state.seconds += started.elapsed().as_secs_f64();
        let metric_pairs: Vec<(String, f64)> = spec
            .metrics
            .iter()
            .cloned()
            .zip(eval.metrics.iter().copied())
            .collect();
        let remaining = pool.len() - state.labeled_ids.len();
        // An ED design that is used up is an exhausted pool for this cell.
        let pool_remaining = match spec.kind {
            SelectionKind::Al => remaining,
            SelectionKind::Ed => state.planned_ids.len() - state.labeled_ids.len(),
        };
        let reason = should_stop(
            spec.stopping,
            &Progress {
                iterations_done: state.iterations_done,
                labeled: state.labeled_ids.len(),
                pool_remaining,
                money_spent: state.money_spent,
                labeller_budget_reached: budget_reached,
                metrics: &metric_pairs,
            },
        );
        state.finished = reason.is_some();
        state.stop_reason = reason;
        let row = CurveRow {
            iteration: t,
            labeled: state.labeled_ids.len(),
            cost: state.money_spent,
            tokens: state.tokens,
            seconds: state.seconds,
            metrics: eval.metrics.clone(),
        };
        let scores = selection.scores.as_ref().map(|_| {
            added
                .iter()
                .map(|id| scores_by_id.get(id).copied().unwrap_or(f64::NAN))
                .collect()
        });
        let selected = SelectedLine::new(t, added, scores);
        append_iteration(
            &spec.paths,
            spec.metrics,
            &IterationRecord {
                curve_row: &row,
                selected: &selected,
                generations: &eval.generations,
            },
            &state,
        )?;
        last_score = metric_pairs.first().cloned();
        progress.finish_iteration(
            state.labeled_ids.len(),
            last_score.as_ref().map(|(m, v)| (m.as_str(), *v)),
        );
        if state.finished {
            let summary = progress.finish(
                state.iterations_done,
                state.labeled_ids.len(),
                last_score.as_ref().map(|(m, v)| (m.as_str(), *v)),
                state.stop_reason.as_ref(),
            );
            break Ok(CellOutcome {
                state,
                skipped: false,
                summary,
            });
        }
    }
}

/// Mark the cell finished without a new iteration (nothing more could be labeled).
fn finish(
    paths: &CellPaths,
    mut state: CellState,
    reason: StopReason,
    progress: CellProgress,
    last_score: Option<(String, f64)>,
) -> Result<CellOutcome> {
    state.finished = true;
    state.stop_reason = Some(reason);
    write_state(paths, &state)?;
    let summary = progress.finish(
        state.iterations_done,
        state.labeled_ids.len(),
        last_score.as_ref().map(|(m, v)| (m.as_str(), *v)),
        state.stop_reason.as_ref(),
    );
    Ok(CellOutcome {
        state,
        skipped: false,
        summary,
    })
}

/// The labeled examples in labeling order, with the produced label as output.
fn build_labeled(
    ids: &[u64],
    by_id: &HashMap<u64, &Example>,
    labels: &HashMap<u64, String>,
    keep_labels: bool,
) -> Result<Vec<Example>> {
    ids.iter()
        .map(|id| {
            let Some(e) = by_id.get(id) else {
                bail!(
                    "labeled id {id} from state.json is not in the pool: the data changed \
                     since the cell started; rerun with --fresh"
                );
            };
            let mut e = (*e).clone();
            if keep_labels {
                let Some(out) = labels.get(id) else {
                    bail!("no stored label for id {id} in state.json; rerun with --fresh");
                };
                e.output = out.clone();
            }
            Ok(e)
        })
        .collect()
}

/// A strategy must return exactly `min(k, |unlabeled|)` distinct unlabeled ids.
fn check_selection(
    name: &str,
    t: usize,
    sel: &Selection,
    k: usize,
    unlabeled: &[&Example],
) -> Result<()> {
    let want = k.min(unlabeled.len());
    if sel.ids.len() != want {
        bail!(
            "{name}: iteration {t}: the strategy returned {} ids, expected {want}",
            sel.ids.len()
        );
    }
    if let Some(scores) = &sel.scores {
        if scores.len() != sel.ids.len() {
            bail!(
                "{name}: iteration {t}: {} scores for {} ids",
                scores.len(),
                sel.ids.len()
            );
        }
    }
    let pool: HashSet<u64> = unlabeled.iter().map(|e| e.id).collect();
    let mut seen = HashSet::new();
    for id in &sel.ids {
        if !pool.contains(id) {
            bail!("{name}: iteration {t}: id {id} is not an unlabeled pool id");
        }
        if !seen.insert(*id) {
            bail!("{name}: iteration {t}: id {id} was returned twice");
        }
    }
    Ok(())
}
