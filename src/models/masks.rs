//! Attention masks and rotary positions of left-padded batches: which keys each query sees
//! (causal, padding-aware, optionally windowed) and the position of every real token.
use anyhow::Result;
use candle_core::{DType, Device, Tensor};

/// Added to masked attention scores; finite so fully masked (padding) query rows stay finite.
const MASKED: f32 = -1.0e30;

/// Additive attention masks `[b, 1, t, T]` for the global and (if any) sliding-window layers.
#[derive(Debug, Clone)]
pub struct Masks {
    pub global: Tensor,
    pub sliding: Option<Tensor>,
}

impl Masks {
    /// `key_positions[row][j]` is the position of key `j` or `None` for padding; the queries are
    /// the last `t` keys. Causal, padding-aware, and windowed by position so a left-padded row
    /// sees exactly what it would see alone.
    pub fn build(
        key_positions: &[Vec<Option<u32>>],
        t: usize,
        window: Option<usize>,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let b = key_positions.len();
        let total = key_positions.first().map_or(0, |r| r.len());
        let make = |window: Option<usize>| -> Result<Tensor> {
            let mut data = vec![MASKED; b * t * total];
            for (r, keys) in key_positions.iter().enumerate() {
                for i in 0..t {
                    let qi = total - t + i;
                    let q_pos = keys[qi];
                    for (j, k_pos) in keys.iter().enumerate().take(qi + 1) {
                        let Some(k_pos) = k_pos else { continue };
                        if let (Some(w), Some(q)) = (window, q_pos) {
                            if q.saturating_sub(*k_pos) as usize >= w {
                                continue;
                            }
                        }
                        data[(r * t + i) * total + j] = 0.0;
                    }
                }
            }
            Ok(Tensor::from_vec(data, (b, 1, t, total), device)?.to_dtype(dtype)?)
        };
        Ok(Self {
            global: make(None)?,
            sliding: window.map(|w| make(Some(w))).transpose()?,
        })
    }
}

/// Positions and key layout of a left-padded batch: `mask[row][j]` is true for real tokens.
/// Positions count real tokens only (padding gets position 0).
pub fn positions_from_mask(mask: &[Vec<bool>]) -> Vec<Vec<Option<u32>>> {
    mask.iter()
        .map(|row| {
            let mut next = 0u32;
            row.iter()
                .map(|real| {
                    real.then(|| {
                        next += 1;
                        next - 1
                    })
                })
                .collect()
        })
        .collect()
}

/// The `[b, t]` u32 position tensor for the last `t` keys.
pub fn position_tensor(keys: &[Vec<Option<u32>>], t: usize, device: &Device) -> Result<Tensor> {
    let b = keys.len();
    let mut data = Vec::with_capacity(b * t);
    for row in keys {
        data.extend(row[row.len() - t..].iter().map(|p| p.unwrap_or(0)));
    }
    Ok(Tensor::from_vec(data, (b, t), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_causal_padding_aware_and_windowed_by_position() -> Result<()> {
        let keys = positions_from_mask(&[vec![false, true, true, true, true]]);
        assert_eq!(keys[0], vec![None, Some(0), Some(1), Some(2), Some(3)]);
        let masks = Masks::build(&keys, 2, Some(2), DType::F32, &Device::Cpu)?;
        let open = |m: &Tensor| -> Result<Vec<Vec<bool>>> {
            Ok(m.squeeze(0)?
                .squeeze(0)?
                .to_vec2::<f32>()?
                .into_iter()
                .map(|r| r.into_iter().map(|v| v == 0.0).collect())
                .collect())
        };
        let (f, t) = (false, true);
        assert_eq!(
            open(&masks.global)?,
            vec![vec![f, t, t, t, f], vec![f, t, t, t, t]]
        );
        let sliding = masks.sliding.as_ref().expect("window given");
        assert_eq!(
            open(sliding)?,
            vec![vec![f, f, t, t, f], vec![f, f, f, t, t]]
        );
        let tensor = position_tensor(&keys, 2, &Device::Cpu)?;
        assert_eq!(tensor.to_vec2::<u32>()?, vec![vec![2, 3]]);
        Ok(())
    }
}
