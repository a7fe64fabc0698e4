//! Keys and values of the tokens decoded so far, per layer, in buffers that grow by doubling.
//!
//! Appending by concatenation copies the whole cache at every step (for SmolLM2 at batch 16
//! and 96 positions, 71 MB per step); writing the new position into spare room copies one
//! position, and attention reads the filled prefix as a view.
use anyhow::Result;
use candle_core::Tensor;

/// One layer's keys and values: `[b, kv_heads, capacity, head_dim]`, the first `len` filled.
#[derive(Debug, Clone)]
pub struct LayerCache {
    k: Tensor,
    v: Tensor,
    len: usize,
}

impl LayerCache {
    /// Append `k`, `v` (`[b, kv_heads, t, head_dim]`) and return views of everything so far.
    pub fn append(
        slot: &mut Option<LayerCache>,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let t = k.dim(2)?;
        let entry = match slot.take() {
            None => LayerCache {
                // Room for 64 more positions before the first doubling.
                k: grown(k, t, t + 64)?,
                v: grown(v, t, t + 64)?,
                len: t,
            },
            Some(mut c) => {
                let capacity = c.k.dim(2)?;
                if c.len + t > capacity {
                    let capacity = (2 * capacity).max(c.len + t);
                    c.k = grown(&c.k, c.len, capacity)?;
                    c.v = grown(&c.v, c.len, capacity)?;
                }
                c.k.slice_set(&k.contiguous()?, 2, c.len)?;
                c.v.slice_set(&v.contiguous()?, 2, c.len)?;
                c.len += t;
                c
            }
        };
        let views = (
            entry.k.narrow(2, 0, entry.len)?,
            entry.v.narrow(2, 0, entry.len)?,
        );
        *slot = Some(entry);
        Ok(views)
    }
}

impl LayerCache {
    /// This one-row cache's filled positions repeated for `rows` rows, with room for `more`.
    fn repeated(&self, rows: usize, more: usize) -> Result<LayerCache> {
        let (one, h, _, d) = self.k.dims4()?;
        if one != 1 {
            anyhow::bail!("only a one-row cache can be repeated; this one has {one} rows");
        }
        // `grown` copies the broadcast view into its buffer: one copy of the prefix per row.
        let expand = |x: &Tensor| -> Result<Tensor> {
            let filled = x
                .narrow(2, 0, self.len)?
                .broadcast_as((rows, h, self.len, d))?;
            grown(&filled, self.len, self.len + more)
        };
        Ok(LayerCache {
            k: expand(&self.k)?,
            v: expand(&self.v)?,
            len: self.len,
        })
    }
}

/// A `[b, h, capacity, d]` buffer whose first `len` positions are those of `x`.
fn grown(x: &Tensor, len: usize, capacity: usize) -> Result<Tensor> {
    let (b, h, _, d) = x.dims4()?;
    let buffer = Tensor::zeros((b, h, capacity, d), x.dtype(), x.device())?;
    buffer.slice_set(&x.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
    Ok(buffer)
}

/// Every layer's cache.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    pub(crate) layers: Vec<Option<LayerCache>>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
        }
    }

    /// A one-row cache (a prompt prefix that every row of a batch shares) repeated for
    /// `rows` rows, each layer with room for `more` positions after it.
    pub fn repeated_rows(&self, rows: usize, more: usize) -> Result<KvCache> {
        let layers = self
            .layers
            .iter()
            .map(|entry| entry.as_ref().map(|c| c.repeated(rows, more)).transpose())
            .collect::<Result<_>>()?;
        Ok(KvCache { layers })
    }

    /// Keep only the batch rows `rows` (finished rows leave the batch).
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        for entry in self.layers.iter_mut().flatten() {
            entry.k = entry.k.index_select(rows, 0)?;
            entry.v = entry.v.index_select(rows, 0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn appended_views_equal_concatenation_across_growth_and_row_selection() -> Result<()> {
        let dev = Device::Cpu;
        let mut slot = None;
        let mut reference: Option<(Tensor, Tensor)> = None;
        // A 5-position prompt, then single steps past the first capacity (5 + 64).
        for step in 0..80 {
            let t = if step == 0 { 5 } else { 1 };
            let k = Tensor::randn(0f32, 1.0, (3, 2, t, 4), &dev)?;
            let v = Tensor::randn(0f32, 1.0, (3, 2, t, 4), &dev)?;
            let (ck, cv) = LayerCache::append(&mut slot, &k, &v)?;
            let (rk, rv) = match reference.take() {
                None => (k, v),
                Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            };
            for (got, want) in [(&ck, &rk), (&cv, &rv)] {
                let diff = (got - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                assert_eq!(diff, 0.0, "step {step}");
            }
            reference = Some((rk, rv));
        }
        let mut cache = KvCache { layers: vec![slot] };
        let rows = Tensor::new(&[2u32, 0], &dev)?;
        cache.select_rows(&rows)?;
        let (rk, _) = reference.expect("filled");
        let k = Tensor::randn(0f32, 1.0, (2, 2, 1, 4), &dev)?;
        let (ck, _) = LayerCache::append(&mut cache.layers[0], &k, &k)?;
        let want = Tensor::cat(&[&rk.index_select(&rows, 0)?, &k], 2)?;
        let diff = (ck - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0);
        assert_eq!(
            cache.layers[0].as_ref().map(|c| c.k.dtype()),
            Some(DType::F32)
        );
        Ok(())
    }

    #[test]
    fn a_repeated_prefix_is_every_row_and_takes_appends() -> Result<()> {
        let dev = Device::Cpu;
        let mut slot = None;
        let k = Tensor::randn(0f32, 1.0, (1, 2, 6, 4), &dev)?;
        let v = Tensor::randn(0f32, 1.0, (1, 2, 6, 4), &dev)?;
        LayerCache::append(&mut slot, &k, &v)?;
        let mut cache = KvCache {
            layers: vec![slot, None],
        }
        .repeated_rows(3, 5)?;
        assert!(cache.layers[1].is_none());
        // Five more positions fit in the room asked for; a sixth makes the buffer grow.
        for step in 0..6 {
            let k_new = Tensor::randn(0f32, 1.0, (3, 2, 1, 4), &dev)?;
            let (ck, cv) = LayerCache::append(&mut cache.layers[0], &k_new, &k_new)?;
            assert_eq!(ck.dim(2)?, 7 + step);
            for row in 0..3 {
                for (got, want) in [(&ck, &k), (&cv, &v)] {
                    let opening = got.narrow(0, row, 1)?.narrow(2, 0, 6)?;
                    let diff = (opening - want)?.abs()?.max_all()?.to_scalar::<f32>()?;
                    assert_eq!(diff, 0.0, "row {row}, step {step}");
                }
                let last = ck.narrow(0, row, 1)?.narrow(2, 6 + step, 1)?;
                let diff = (last - k_new.narrow(0, row, 1)?)?
                    .abs()?
                    .max_all()?
                    .to_scalar::<f32>()?;
                assert_eq!(diff, 0.0);
            }
        }
        let two_rows = KvCache {
            layers: cache.layers.clone(),
        };
        assert!(
            two_rows.repeated_rows(2, 1).is_err(),
            "only one-row caches repeat"
        );
        Ok(())
    }
}
