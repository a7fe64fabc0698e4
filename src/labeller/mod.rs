//! Labellers turn selected inputs into training outputs: the golden oracle (dataset labels),
//! LLMs over HTTP, a local model, or a person in the web app.
use crate::data::Example;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// One produced label and what it cost.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Label {
    pub id: u64,
    pub output: String,
    /// Money spent on this label, in dollars (0 for golden labels).
    pub cost: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Wall-clock seconds spent producing this label (annotation time for people: summed
    /// over every save of the item, the first label and each change to it).
    pub seconds: f64,
    /// How many times a person changed the label after first saving it (0 for machines).
    /// Absent in states written before it was kept.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub edits: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// What a labelling call produced. A budget stop keeps everything labeled before it.
#[derive(Clone, Debug, PartialEq)]
pub enum LabelOutcome {
    /// Every requested item was labeled, in request order.
    Complete(Vec<Label>),
    /// The money budget would have been exceeded: these labels were produced before the stop.
    BudgetReached(Vec<Label>),
}

impl LabelOutcome {
    pub fn labels(&self) -> &[Label] {
        match self {
            LabelOutcome::Complete(l) | LabelOutcome::BudgetReached(l) => l,
        }
    }
}

pub trait Labeller: Send {
    /// Short name for logs and results, e.g. `golden` or `openai:gpt-4o-mini`.
    fn name(&self) -> String;
    /// Label `items`. `few_shot` are already labeled examples a prompt may show.
    fn label(&mut self, items: &[Example], few_shot: &[Example]) -> Result<LabelOutcome>;
    /// Dollars spent so far by this labeller in this cell (including cached labels: 0).
    fn spent(&self) -> f64;
    /// Dollars spent so far that bought no label a rerun would find in a cache: empty
    /// replies, replies that never arrived. When `label` fails, the runner adds what this
    /// grew by to the cell's recorded spend before the error ends the cell, so a resumed
    /// run's budget does not count that money as still available.
    fn unlabelled_spent(&self) -> f64 {
        0.0
    }
}

pub mod anthropic;
mod append_log;
pub mod batch;
mod batch_jobs;
mod billing;
pub mod budget;
pub mod cache;
pub mod factory;
pub mod golden;
pub mod human;
pub mod judge;
pub mod live;
pub mod llm;
pub mod llm_config;
pub mod local;
pub mod openai;
pub mod prompt;
pub mod refusals;
pub mod retry;
pub mod spend_log;
pub mod stats;
