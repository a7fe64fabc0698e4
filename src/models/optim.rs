//! AdamW with decoupled weight decay and bias correction (the PyTorch `torch.optim.AdamW`
//! update), over candle `Var`s, taking gradients the caller has already accumulated and
//! clipped; and clipping by global norm.
use candle_core::{Result, Tensor, Var};

#[derive(Clone, Debug, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

struct Slot {
    var: Var,
    decay: bool,
    m: Tensor,
    v: Tensor,
}

pub struct AdamW {
    slots: Vec<Slot>,
    config: AdamWConfig,
    steps: usize,
}

/// transformers' Trainer does not decay biases and norm weights; LoRA matrices are decayed.
fn decays(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    !(lower.ends_with("bias") || lower.contains("norm"))
}

impl AdamW {
    /// `vars` are (name, variable) pairs; names decide which get weight decay.
    pub fn new(vars: &[(String, Var)], config: AdamWConfig) -> Result<Self> {
        let slots = vars
            .iter()
            .map(|(name, var)| {
                Ok(Slot {
                    var: var.clone(),
                    decay: decays(name),
                    m: var.as_tensor().zeros_like()?,
                    v: var.as_tensor().zeros_like()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            slots,
            config,
            steps: 0,
        })
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    /// One update with learning rate `lr`; `grads[i]` belongs to the i-th variable.
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        if grads.len() != self.slots.len() {
            candle_core::bail!(
                "AdamW got {} gradients for {} variables",
                grads.len(),
                self.slots.len()
            );
        }
        self.steps += 1;
        let c = &self.config;
        let t = self.steps as i32;
        let correction1 = 1.0 - c.beta1.powi(t);
        let correction2 = 1.0 - c.beta2.powi(t);
        for (slot, g) in self.slots.iter_mut().zip(grads) {
            slot.m = ((&slot.m * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            slot.v = ((&slot.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let m_hat = (&slot.m / correction1)?;
            let v_hat = (&slot.v / correction2)?;
            let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            let theta = slot.var.as_tensor();
            // Decoupled decay: shrink the weights, independent of the gradient statistics.
            let theta = if slot.decay && c.weight_decay != 0.0 {
                (theta * (1.0 - lr * c.weight_decay))?
            } else {
                theta.clone()
            };
            slot.var.set(&(theta - (update * lr)?)?)?;
        }
        Ok(())
    }
}

/// Euclidean norm of all gradients taken as one vector.
pub fn global_norm(grads: &[Tensor]) -> Result<f64> {
    let mut sum = 0f64;
    for g in grads {
        sum += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(sum.sqrt())
}

/// Scale `grads` so their global norm is at most `max_norm` (PyTorch `clip_grad_norm_`:
/// coefficient `max_norm / (norm + 1e-6)`, applied only when below 1). Returns the norm before
/// clipping. `max_norm <= 0` disables clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    if max_norm > 0.0 {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            for g in grads.iter_mut() {
                *g = (&*g * coef)?;
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let dev = Device::Cpu;
        let mut grads = vec![
            Tensor::new(&[3f32], &dev).unwrap(),
            Tensor::new(&[[4f32, 0.0]], &dev).unwrap(),
        ];
        let norm = clip_grad_norm(&mut grads, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-9);
        let after = global_norm(&grads).unwrap();
        assert!((after - 1.0).abs() < 1e-5, "clipped norm {after}");
        assert!((values(&grads[0])[0] - 0.6).abs() < 1e-6);
        assert!((values(&grads[1])[0] - 0.8).abs() < 1e-6);
        // Below the limit, or disabled: unchanged.
        let mut small = vec![Tensor::new(&[0.3f32, 0.4], &dev).unwrap()];
        clip_grad_norm(&mut small, 1.0).unwrap();
        assert_eq!(values(&small[0]), vec![0.3, 0.4]);
        let mut big = vec![Tensor::new(&[30f32, 40.0], &dev).unwrap()];
        clip_grad_norm(&mut big, 0.0).unwrap();
        assert_eq!(values(&big[0]), vec![30.0, 40.0]);
    }

    /// Two steps checked against the PyTorch AdamW formulas worked out by hand.
    #[test]
    fn adamw_matches_the_reference_update() {
        let dev = Device::Cpu;
        let w = Var::new(&[1.0f32, -2.0], &dev).unwrap();
        let b = Var::new(&[0.5f32], &dev).unwrap();
        let vars = vec![
            ("lora_A.weight".to_string(), w.clone()),
            ("bias".to_string(), b.clone()),
        ];
        let config = AdamWConfig {
            weight_decay: 0.1,
            ..Default::default()
        };
        let mut opt = AdamW::new(&vars, config).unwrap();
        let lr = 0.01;
        let g1 = [0.5f64, -1.0];
        let g2 = [0.25f64, 2.0];
        opt.step(
            &[
                Tensor::new(&[0.5f32, -1.0], &dev).unwrap(),
                Tensor::new(&[1.0f32], &dev).unwrap(),
            ],
            lr,
        )
        .unwrap();
        opt.step(
            &[
                Tensor::new(&[0.25f32, 2.0], &dev).unwrap(),
                Tensor::new(&[1.0f32], &dev).unwrap(),
            ],
            lr,
        )
        .unwrap();
        let mut expect = [1.0f64, -2.0];
        for (i, e) in expect.iter_mut().enumerate() {
            let (mut m, mut v) = (0.0, 0.0);
            for (t, g) in [g1[i], g2[i]].into_iter().enumerate() {
                let t = t as i32 + 1;
                m = 0.9 * m + 0.1 * g;
                v = 0.999 * v + 0.001 * g * g;
                let update =
                    (m / (1.0 - 0.9f64.powi(t))) / ((v / (1.0 - 0.999f64.powi(t))).sqrt() + 1e-8);
                *e = *e * (1.0 - lr * 0.1) - lr * update;
            }
        }
        let got = values(w.as_tensor());
        for i in 0..2 {
            assert!(
                (got[i] as f64 - expect[i]).abs() < 1e-6,
                "{got:?} vs {expect:?}"
            );
        }
        // The bias is not decayed: two unit-gradient steps move it by exactly 2·lr.
        assert!((values(b.as_tensor())[0] - 0.48).abs() < 1e-6);
        assert_eq!(opt.steps(), 2);
    }
}
