//! One cell of an experiment — a (strategy, seed) pair — run as the AL loop:
//! choose ids (initial set, then strategy queries), label them, fine-tune, evaluate, persist,
//! check the stopping criteria. Every iteration is committed atomically; a killed cell resumes
//! from its last finished iteration and reproduces the same selections.
use crate::config::{Experiment, StrategyConfig};
use crate::data::{Dataset, Example};
use crate::labeller::LabelOutcome;
use crate::models::lm::{LanguageModel, LoraSettings};
use crate::runner::adapters;
use crate::runner::crash_point;
use crate::runner::curve::CurveRow;
use crate::runner::ed_order::{ed_order, ed_scores_of};
use crate::runner::evaluate::evaluate;
use crate::runner::finetune::finetune;
use crate::runner::first_iteration::{FirstIteration, FirstIterationKey, FirstIterations};
use crate::runner::host::{LazyEncoder, ModelHost};
use crate::runner::persist::{
    append_iteration, prepare_cell, write_state, CellPaths, IterationRecord, SelectedLine,
};
use crate::runner::profile::IterationTimes;
use crate::runner::progress::CellProgress;
use crate::runner::prompting::Prompter;
use crate::runner::script_identity::{plans_from_stopping, script_fingerprint, script_still_there};
use crate::runner::state::{CellState, RngState};
use crate::runner::stopping::{next_query_size, should_stop, Progress, StopReason};
use crate::runner::{criteria_of, lora_settings_of, memory, Profile};
use crate::strategy::context::SelectionContext;
use crate::strategy::engine::Selection;
use anyhow::{bail, Context, Result};
use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Instant;

/// Everything shared by the cells of one experiment.
pub struct ExperimentContext<'a> {
    pub exp: &'a Experiment,
    pub dataset: &'a Dataset,
    /// The untouched base model (zero-shot generations for strategies that select from it).
    pub base: &'a LanguageModel,
    pub encoder: &'a LazyEncoder,
    pub profile: Option<&'a Profile>,
    /// The `llm_judge` metric's LLM, when `[eval.judge]` is set.
    pub judge: Option<&'a crate::labeller::factory::Judge>,
    /// Iteration 0 as computed by earlier cells, for cells that would compute it again.
    pub first_iterations: &'a FirstIterations,
    /// [`Dataset::fingerprint`] of `dataset`, computed once per experiment.
    pub data_fingerprint: String,
}

/// How a cell ended, for the bench table and the final line per cell.
#[derive(Clone, Debug)]
pub struct CellOutcome {
    pub strategy: String,
    pub seed: u64,
    pub iterations: usize,
    pub labeled: usize,
    pub final_scores: Vec<(String, f64)>,
    pub stop_reason: Option<StopReason>,
    pub seconds: f64,
    /// The cell was already finished before this run.
    pub skipped: bool,
}

/// The kind a script declares: `al` re-queries every iteration, `ed` selects the budget once.
fn script_kind(script: &Path) -> Result<String> {
    Ok(crate::strategy::registry::describe(script)?.kind)
}

/// Derives a seed for (run seed, iteration, purpose) so every random step is reproducible
/// and independent of how many random numbers earlier steps drew.
pub fn derive_seed(seed: u64, iteration: usize, purpose: u64) -> u64 {
    let mut x = seed
        ^ (iteration as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ purpose.wrapping_mul(0xD1B5_4A32_D192_ED03);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub fn run_cell(
    ctx: &ExperimentContext<'_>,
    strategy: &StrategyConfig,
    seed: u64,
    fresh: bool,
) -> Result<CellOutcome> {
    let exp = ctx.exp;
    let paths = CellPaths::new(&exp.results_dir, &exp.name, strategy.key(), seed);
    let config_toml = exp.to_toml_string()?;
    let script = script_still_there(exp, strategy)?;
    let kind = script_kind(&script)?;
    let fingerprint = script_fingerprint(&script)?;
    let plans_ahead = plans_from_stopping(&script, &kind);
    let _lock = crate::runner::persist::lock_cell(&paths)?;
    let resumed = prepare_cell(&paths, &config_toml, fresh, plans_ahead)?;
    let mut state = match resumed {
        Some(s) => s,
        None => CellState::new(
            &exp.name,
            strategy.key(),
            seed,
            &ChaCha8Rng::seed_from_u64(seed),
        ),
    };
    match &state.script_sha256 {
        // Cells started before fingerprints were kept take the script as it is now.
        None => state.script_sha256 = Some(fingerprint),
        Some(old) if *old != fingerprint => bail!(
            "{} (or a lib/ module it imports) changed since {} was started, so its results \
             would mix two versions of the strategy: rerun with --fresh --strategy {} to redo \
             this strategy, or restore the script",
            script.display(),
            paths.dir.display(),
            strategy.key()
        ),
        Some(_) => {}
    }
    match &state.data_sha256 {
        None => state.data_sha256 = Some(ctx.data_fingerprint.clone()),
        Some(old) if *old != ctx.data_fingerprint => bail!(
            "the data of {} changed since {} was started (the files under data.path hold \
             other rows now), so its results would mix two datasets: rerun with --fresh to \
             redo the experiment on the new data, or restore the files",
            exp.name,
            paths.dir.display()
        ),
        Some(_) => {}
    }
    if state.finished {
        // A kill between the last commit and its clean-up leaves older adapters behind.
        adapters::remove_unused(&paths, state.adapter_path.as_deref());
        return Ok(outcome_of(&paths, strategy, seed, &state, true));
    }
    let pool: &[Example] = &ctx.dataset.train;
    let by_id: BTreeMap<u64, &Example> = pool.iter().map(|e| (e.id, e)).collect();
    let criteria = criteria_of(exp);
    let init_size = exp.al.init_size.resolve(pool.len());
    let query_size = exp.al.query_size.resolve(pool.len());
    let prompter = Prompter::new(exp);

    // The experiment's model, shared rather than loaded again for every cell.
    let mut model = ctx.base.clone();
    let lora: LoraSettings = lora_settings_of(exp, seed);
    model.attach_lora(&lora)?;
    if let Some(adapter) = &state.adapter_path {
        adapters::load_for_resume(&mut model, &paths, adapter)?;
    }
    let mut labeller =
        crate::labeller::factory::make_labeller(exp, &paths.dir, state.money_spent, &state.labels)?;
    let mut labeled: Vec<Example> = labeled_examples(&state, &by_id)?;
    let mut rng = state.rng.restore()?;
    let started = Instant::now();
    let seconds_before = state.seconds;
    // What a shared first iteration cost the cell that computed it: counted here too, so a
    // cell's seconds do not depend on which cell ran first.
    let mut credited_seconds = 0.0;
    let bars_label = format!("{}/{}/seed-{seed}", exp.name, strategy.key());
    let bars = CellProgress::new(
        &bars_label,
        criteria.planned_iterations(),
        state.iterations_done,
    );

    loop {
        // The state as last written: selection below may change it (strategy memory) before
        // the iteration is committed.
        let committed = state.clone();
        let t = state.iterations_done;
        let t_iteration = Instant::now();
        let mut times = IterationTimes::default();
        let mut selection_timing = None;
        let taken: HashSet<u64> = state.labeled_ids.iter().copied().collect();
        let remaining: Vec<Example> = pool
            .iter()
            .filter(|e| !taken.contains(&e.id))
            .cloned()
            .collect();

        // 1. Which ids join the labeled set at this iteration. Inference runs on merged
        // weights (one matmul per linear instead of three); training needs them apart.
        let t_select = Instant::now();
        model.merge_lora()?;
        let (ids, scores) = if kind == "ed" {
            let (order, timing) = ed_order(
                ctx, strategy, &mut state, &model, &remaining, &labeled, seed,
            )?;
            selection_timing = timing;
            let k = if t == 0 {
                init_size
            } else {
                next_query_size(
                    query_size,
                    labeled.len(),
                    remaining.len(),
                    criteria.label_budget,
                )
            };
            let next: Vec<u64> = order
                .iter()
                .copied()
                .filter(|id| !taken.contains(id))
                .take(k)
                .collect();
            let scores = ed_scores_of(&state, &order, &next);
            (next, scores)
        } else if t == 0 && !selects_initial_set(strategy) {
            let k = next_query_size(init_size, 0, remaining.len(), criteria.label_budget);
            let mut init_rng = rng.clone();
            let picks = sample(&mut init_rng, remaining.len(), k).into_vec();
            rng = init_rng;
            (picks.into_iter().map(|i| remaining[i].id).collect(), None)
        } else {
            let k = if t == 0 {
                next_query_size(init_size, 0, remaining.len(), criteria.label_budget)
            } else {
                next_query_size(
                    query_size,
                    labeled.len(),
                    remaining.len(),
                    criteria.label_budget,
                )
            };
            let sel = query(
                ctx, strategy, &mut state, &model, &remaining, &labeled, k, t, seed,
            )?;
            selection_timing = Some(sel.timing);
            (sel.ids, sel.scores)
        };
        model.unmerge_lora();
        crash_point::reached("selection-made");
        match &selection_timing {
            Some(timing) => times.add_selection(timing, t_select.elapsed().as_secs_f64()),
            None => times.script += t_select.elapsed().as_secs_f64(),
        }

        // 2. Label them.
        let t_label = Instant::now();
        let items: Vec<Example> = ids
            .iter()
            .map(|id| by_id.get(id).map(|e| (*e).clone()))
            .collect::<Option<Vec<_>>>()
            .context("internal error: a selected id is not in the pool")?;
        let few_shot_n = exp.labeller.few_shot.min(labeled.len());
        let few_shot = &labeled[labeled.len() - few_shot_n..];
        let spent_before = labeller.spent();
        let unlabelled_before = labeller.unlabelled_spent();
        let outcome = match labeller.label(&items, few_shot) {
            Ok(outcome) => outcome,
            Err(e) => {
                // Money the failed call spent without buying a label stays spent: record it
                // with the last committed state, or the resumed run's budget would count it
                // as still available (labels it did buy are in the label cache and counted
                // again when the resumed run takes them from there).
                let lost = labeller.unlabelled_spent() - unlabelled_before;
                if lost > 1e-12 {
                    let mut committed = committed;
                    committed.money_spent += lost;
                    if let Err(w) = write_state(&paths, &committed) {
                        return Err(e.context(format!(
                            "and the ${lost:.6} spent on replies that bought no label could not \
                             be recorded in {} ({w:#})",
                            paths.state().display()
                        )));
                    }
                    crash_point::reached("unlabelled-spend-written");
                }
                return Err(e);
            }
        };
        crash_point::reached("labels-bought");
        let budget_hit = matches!(outcome, LabelOutcome::BudgetReached(_));
        let golden = labeller.name() == "golden";
        for label in outcome.labels() {
            let mut e = (*by_id[&label.id]).clone();
            e.output = label.output.clone();
            state.labeled_ids.push(label.id);
            state.money_spent += label.cost;
            state.tokens += label.input_tokens + label.output_tokens;
            if !golden {
                state.labels.push(label.clone());
            }
            labeled.push(e);
        }
        // Money that bought no label (empty replies before the budget ran out) is still spent.
        let unlabelled =
            labeller.spent() - spent_before - outcome.labels().iter().map(|l| l.cost).sum::<f64>();
        if unlabelled > 1e-9 {
            state.money_spent += unlabelled;
        }
        let added: Vec<u64> = outcome.labels().iter().map(|l| l.id).collect();
        let added_scores = scores.map(|s| {
            ids.iter()
                .zip(s)
                .filter(|(id, _)| added.contains(id))
                .map(|(_, v)| v)
                .collect()
        });
        times.labelling = t_label.elapsed().as_secs_f64();

        // 3–4. Fine-tune on everything labeled so far, evaluate on the fixed test subset; at
        // iteration 0 take both from an earlier cell that computed exactly this.
        let first_key = (t == 0 && crate::models::fused_train::fused("first_iteration"))
            .then(|| FirstIterationKey::new(seed, &labeled));
        let shared_first = first_key
            .as_ref()
            .and_then(|key| ctx.first_iterations.get(key));
        let adapter_dir = paths.dir.join(adapters::relative_dir(t));
        let eval = match &shared_first {
            Some(first) => {
                first.restore_into(&model)?;
                adapters::save_atomically(&model, &adapter_dir)?;
                credited_seconds += first.seconds;
                first.evaluation.clone()
            }
            None => {
                let t_train = Instant::now();
                if exp.train.from_scratch {
                    model.detach_lora();
                    model.attach_lora(&lora)?;
                }
                if !labeled.is_empty() {
                    bars.start_step("train", 0);
                    finetune(
                        &model,
                        &prompter,
                        &labeled,
                        derive_seed(seed, t, 1),
                        Some(bars.step_bar()),
                    )?;
                }
                // One folder per iteration: state.json keeps pointing at the previous one
                // until this iteration commits, so a crash here resumes from the right weights.
                adapters::save_atomically(&model, &adapter_dir)?;
                times.training = t_train.elapsed().as_secs_f64();

                let t_eval = Instant::now();
                bars.start_step("evaluate", 0);
                let embedder = ctx.encoder as &dyn crate::metrics::bertscore::TokenEmbedder;
                model.merge_lora()?;
                let eval = evaluate(
                    &model,
                    &prompter,
                    &ctx.dataset.test,
                    &exp.eval.metrics,
                    Some(embedder),
                    ctx.judge,
                );
                model.unmerge_lora();
                let eval = eval?;
                times.evaluation = t_eval.elapsed().as_secs_f64();
                if let Some(key) = first_key {
                    let first = FirstIteration::capture(
                        format!("{}/seed-{seed}", strategy.key()),
                        &model,
                        &eval,
                        times.training + times.evaluation,
                    )?;
                    ctx.first_iterations.insert(key, first);
                }
                eval
            }
        };

        // 5. Commit the iteration.
        state.iterations_done = t + 1;
        state.seconds = seconds_before + started.elapsed().as_secs_f64() + credited_seconds;
        state.adapter_path = Some(adapters::relative_dir(t));
        state.rng = RngState::capture(&rng);
        let row = CurveRow {
            iteration: t,
            labeled: labeled.len(),
            cost: state.money_spent,
            tokens: state.tokens,
            seconds: state.seconds,
            metrics: eval.scores.iter().map(|(_, v)| *v).collect(),
        };
        let untrimmed = if t == 0 { init_size } else { query_size };
        state.last_query_cut = added.len() < untrimmed.min(remaining.len());
        let selected = SelectedLine::new(t, added.clone(), added_scores);
        let remaining_after = pool.len() - labeled.len();
        let progress = Progress {
            iterations_done: t + 1,
            labeled: labeled.len(),
            pool_remaining: remaining_after,
            money_spent: state.money_spent,
            labeller_budget_reached: budget_hit,
            metrics: &eval.scores,
        };
        let mut stop = should_stop(&criteria, &progress);
        if stop.is_none() && added.is_empty() {
            // Nothing could be labeled (e.g. a budget stop before the first label): stop
            // rather than loop without progress, recorded in the same write as the row.
            stop = Some(StopReason::PoolExhausted);
        }
        if let Some(reason) = &stop {
            state.finished = true;
            state.stop_reason = Some(reason.clone());
        }
        let headline = eval.scores.first().map(|(m, v)| (m.as_str(), *v));
        bars.finish_iteration(labeled.len(), headline);
        append_iteration(
            &paths,
            &exp.eval.metrics,
            &IterationRecord {
                curve_row: &row,
                selected: &selected,
                generations: &eval.records,
            },
            &state,
        )?;
        adapters::remove_unused(&paths, state.adapter_path.as_deref());
        crash_point::reached("adapters-pruned");
        if let Some(p) = ctx.profile {
            times.other = (t_iteration.elapsed().as_secs_f64() - times.total()).max(0.0);
            let mut line = p.record(&bars_label, t, labeled.len(), times);
            if let Some(first) = &shared_first {
                line.push_str(&format!(
                    " (training and evaluation shared with {})",
                    first.computed_by
                ));
            }
            bars.println(&line);
        }
        if stop.is_some() {
            break;
        }
    }
    let out = outcome_of(&paths, strategy, seed, &state, false);
    let headline = out.final_scores.first().map(|(m, v)| (m.as_str(), *v));
    bars.finish(
        out.iterations,
        out.labeled,
        headline,
        out.stop_reason.as_ref(),
    );
    Ok(out)
}

/// Whether an AL strategy chooses the initial set itself, from the base model, instead of
/// drawing it at random from the seed: `params.initial = "strategy"` or `"random"`; unset,
/// HUDS chooses (its paper starts from the base model, and STRATEGIES.md asks for it) and
/// every other strategy draws.
pub(crate) fn selects_initial_set(strategy: &StrategyConfig) -> bool {
    match strategy.params.get("initial").and_then(|v| v.as_str()) {
        Some(v) => v == "strategy",
        None => strategy.name == "huds",
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn query(
    ctx: &ExperimentContext<'_>,
    strategy: &StrategyConfig,
    state: &mut CellState,
    model: &LanguageModel,
    remaining: &[Example],
    labeled: &[Example],
    k: usize,
    iteration: usize,
    seed: u64,
) -> Result<Selection> {
    let exp = ctx.exp;
    let pool = match &strategy.pool_subsample {
        Some(size) => subsample(
            remaining,
            size.resolve(remaining.len()),
            derive_seed(seed, iteration, 2),
        ),
        None => remaining.to_vec(),
    };
    let k = k.min(pool.len());
    // Before any training the acquisition model is the base model.
    let trained = !labeled.is_empty();
    let host = ModelHost {
        model: if trained { model } else { ctx.base },
        base: ctx.base,
        encoder: ctx.encoder,
        prompter: Prompter::new(exp),
        batch_size: exp.model.batch_size,
        state_key: format!("{}-seed{seed}-iter{iteration}", strategy.key()),
    };
    let sctx = SelectionContext {
        pool,
        labeled: labeled.to_vec(),
        k,
        iteration,
        planned_iterations: criteria_of(exp).planned_iterations().unwrap_or(10),
        seed: derive_seed(seed, iteration, 3),
        params: strategy.params.clone(),
        max_new_tokens: exp.model.max_new_tokens,
        memory: memory::from_state(&state.strategy_memory),
        embedding_cache_dir: Some(crate::runner::embedding_cache_dir()),
        dataset_key: crate::runner::dataset_key(exp, ctx.dataset, ctx.encoder),
    };
    let limits = crate::runner::sandbox_limits(exp);
    let sel = crate::strategy::engine::select(&strategy.script_path(), sctx, &host, &limits)
        .with_context(|| {
            format!(
                "strategy `{}` failed at iteration {iteration}",
                strategy.name
            )
        })?;
    state.strategy_memory = memory::to_state(&sel.memory);
    Ok(sel)
}

fn subsample(items: &[Example], n: usize, seed: u64) -> Vec<Example> {
    if n >= items.len() {
        return items.to_vec();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = sample(&mut rng, items.len(), n).into_vec();
    idx.sort_unstable();
    idx.into_iter().map(|i| items[i].clone()).collect()
}

fn labeled_examples(state: &CellState, by_id: &BTreeMap<u64, &Example>) -> Result<Vec<Example>> {
    let produced: BTreeMap<u64, &str> = state
        .labels
        .iter()
        .map(|l| (l.id, l.output.as_str()))
        .collect();
    state
        .labeled_ids
        .iter()
        .map(|id| {
            let e = by_id.get(id).with_context(|| {
                format!("state.json lists id {id}, which is not in the pool: rerun with --fresh")
            })?;
            let mut e = (*e).clone();
            if let Some(out) = produced.get(id) {
                e.output = out.to_string();
            }
            Ok(e)
        })
        .collect()
}

fn outcome_of(
    paths: &CellPaths,
    strategy: &StrategyConfig,
    seed: u64,
    state: &CellState,
    skipped: bool,
) -> CellOutcome {
    let final_scores = crate::runner::curve::Curve::read(&paths.curve())
        .ok()
        .and_then(|c| {
            let last = c.rows.last()?;
            Some(
                c.metrics
                    .iter()
                    .cloned()
                    .zip(last.metrics.iter().copied())
                    .collect(),
            )
        })
        .unwrap_or_default();
    CellOutcome {
        strategy: strategy.key().to_string(),
        seed,
        iterations: state.iterations_done,
        labeled: state.labeled_ids.len(),
        final_scores,
        stop_reason: state.stop_reason.clone(),
        seconds: state.seconds,
        skipped,
    }
}
