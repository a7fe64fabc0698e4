//! Experimental-design (`ed`) strategies: one query selects the whole label budget from the
//! base model; the order and its scores are kept in the cell's state, and each iteration
//! labels the next slice (a resumed run too).
use crate::config::{Experiment, StrategyConfig};
use crate::data::Example;
use crate::models::lm::LanguageModel;
use crate::runner::cell::{query, ExperimentContext};
use crate::runner::criteria_of;
use crate::runner::state::CellState;
use crate::strategy::engine::SelectTiming;
use anyhow::Result;
use std::collections::HashMap;

/// ED strategies select the whole label budget once, from the base model; the order is kept
/// in the cell's memory so later iterations (and a resumed run) take the next slice.
pub(super) fn ed_order(
    ctx: &ExperimentContext<'_>,
    strategy: &StrategyConfig,
    state: &mut CellState,
    model: &LanguageModel,
    remaining: &[Example],
    labeled: &[Example],
    seed: u64,
) -> Result<(Vec<u64>, Option<SelectTiming>)> {
    const KEY: &str = "__ed_order";
    if let Some(order) = state.strategy_memory.get(KEY) {
        return Ok((order.iter().map(|v| *v as u64).collect(), None));
    }
    let exp = ctx.exp;
    let criteria = criteria_of(exp);
    let pool_n = ctx.dataset.train.len();
    let budget = criteria.planned_labels(
        exp.al.init_size.resolve(pool_n),
        exp.al.query_size.resolve(pool_n),
        pool_n,
    );
    let sel = query(
        ctx, strategy, state, model, remaining, labeled, budget, 0, seed,
    )?;
    state.strategy_memory.insert(
        KEY.to_string(),
        sel.ids.iter().map(|&id| id as f64).collect(),
    );
    if let Some(scores) = &sel.scores {
        state
            .strategy_memory
            .insert(ED_SCORES_KEY.to_string(), scores.clone());
    }
    Ok((sel.ids, Some(sel.timing)))
}

/// Where an `ed` strategy's scores for its order are kept, beside the order itself.
const ED_SCORES_KEY: &str = "__ed_scores";

/// The scores the `ed` query gave to `ids` (each taken from its place in `order`), when the
/// script returned scores; cells started before scores were kept have none.
pub(super) fn ed_scores_of(state: &CellState, order: &[u64], ids: &[u64]) -> Option<Vec<f64>> {
    let scores = state.strategy_memory.get(ED_SCORES_KEY)?;
    if scores.len() != order.len() {
        return None;
    }
    let at: HashMap<u64, f64> = order.iter().copied().zip(scores.iter().copied()).collect();
    ids.iter().map(|id| at.get(id).copied()).collect()
}

/// Why the `pool_subsample` of `strategy`, an `ed` strategy, cannot hold its planned labels
/// on a pool of `pool_n` items (said after the key and its value), if it cannot: it selects
/// the whole budget in one query from one draw, so later iterations would have nothing to
/// label. `lab check` and `lab run` refuse it before any cell trains
/// (`config::check::ed_subsample_problems`).
pub fn ed_subsample_problem(
    exp: &Experiment,
    strategy: &StrategyConfig,
    pool_n: usize,
) -> Option<String> {
    let size = strategy.pool_subsample.as_ref()?;
    let budget = criteria_of(exp).planned_labels(
        exp.al.init_size.resolve(pool_n),
        exp.al.query_size.resolve(pool_n),
        pool_n,
    );
    let drawn = size.resolve(pool_n);
    let key = strategy.key();
    (drawn < budget).then(|| {
        format!(
            "draws {drawn} of the {pool_n} pool items, but `{key}` is an `ed` strategy: it \
             selects all {budget} planned labels (init_size plus iterations × query_size, \
             capped by label_budget and the pool) in one query, from that one draw. Set \
             pool_subsample to at least {budget}, or remove it"
        )
    })
}
