//! Learning-rate schedules per optimizer step: linear warm-up, then linear or cosine decay to
//! zero, or a constant rate. Same formulas as Hugging Face `transformers`
//! (`get_linear_schedule_with_warmup`, `get_cosine_schedule_with_warmup`,
//! `get_constant_schedule_with_warmup`), so hyper-parameters carry over.
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    #[default]
    Linear,
    Cosine,
    Constant,
}

impl std::str::FromStr for Schedule {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "linear" => Ok(Self::Linear),
            "cosine" => Ok(Self::Cosine),
            "constant" => Ok(Self::Constant),
            _ => anyhow::bail!("unknown schedule {s:?}: use linear, cosine or constant"),
        }
    }
}

/// The learning rate of every optimizer step of one training run.
#[derive(Clone, Debug, PartialEq)]
pub struct LrSchedule {
    pub kind: Schedule,
    pub peak: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl LrSchedule {
    /// `warmup_ratio` of `total_steps` (rounded up, as transformers does) warm up linearly.
    pub fn new(kind: Schedule, peak: f64, total_steps: usize, warmup_ratio: f64) -> Self {
        let warmup_steps = (warmup_ratio * total_steps as f64).ceil() as usize;
        Self {
            kind,
            peak,
            warmup_steps: warmup_steps.min(total_steps),
            total_steps,
        }
    }

    /// Rate for the update with 0-based index `step`. As in transformers, the first update of
    /// a warm-up uses rate 0.
    pub fn lr_at(&self, step: usize) -> f64 {
        self.peak * self.factor(step)
    }

    fn factor(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return step as f64 / self.warmup_steps.max(1) as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = (step - self.warmup_steps) as f64 / decay_steps;
        match self.kind {
            Schedule::Constant => 1.0,
            Schedule::Linear => (1.0 - progress).max(0.0),
            Schedule::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn linear_warmup_then_decay() {
        // 100 steps, 10% warm-up: 0, 0.1, …, 0.9, then 1.0 at step 10 down to 0.0 at step 100.
        let s = LrSchedule::new(Schedule::Linear, 1e-3, 100, 0.1);
        assert_eq!(s.warmup_steps, 10);
        assert!(close(s.lr_at(0), 0.0));
        assert!(close(s.lr_at(5), 0.5e-3));
        assert!(close(s.lr_at(10), 1e-3));
        assert!(close(s.lr_at(55), 0.5e-3));
        assert!(close(s.lr_at(99), 1e-3 / 90.0));
        assert!(close(s.lr_at(100), 0.0));
        assert!(close(s.lr_at(150), 0.0));
    }

    #[test]
    fn cosine_decay_hits_half_at_midpoint() {
        let s = LrSchedule::new(Schedule::Cosine, 2.0, 20, 0.0);
        assert_eq!(s.warmup_steps, 0);
        assert!(close(s.lr_at(0), 2.0));
        assert!(close(s.lr_at(10), 1.0));
        // progress 0.25 → 0.5·(1 + cos(π/4))
        assert!(close(s.lr_at(5), 1.0 + std::f64::consts::FRAC_1_SQRT_2));
        assert!(close(s.lr_at(20), 0.0));
    }

    #[test]
    fn constant_after_warmup_and_ratio_rounds_up() {
        let s = LrSchedule::new(Schedule::Constant, 3.0, 7, 0.2);
        assert_eq!(s.warmup_steps, 2); // ceil(1.4)
        let rates: Vec<f64> = (0..7).map(|i| s.lr_at(i)).collect();
        assert_eq!(rates, vec![0.0, 1.5, 3.0, 3.0, 3.0, 3.0, 3.0]);
    }

    #[test]
    fn parses_names() {
        assert_eq!("Cosine".parse::<Schedule>().unwrap(), Schedule::Cosine);
        assert!("step"
            .parse::<Schedule>()
            .unwrap_err()
            .to_string()
            .contains("linear"));
    }
}
