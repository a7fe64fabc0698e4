//! The values a script gets from `ctx` besides vectors: pool and labeled views (`View`), the
//! generations `ctx.generate` returns (`Generations`) and the seeded `Rng`.
use super::context::*;
use crate::strategy::host::{GenerationRecord, Generations};
use crate::strategy::sandbox::within_data_limits;
use crate::strategy::types::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rhai::{Array, Dynamic, Engine, NativeCallContext, FLOAT, INT};
use std::sync::Arc;

fn first_sample(g: &GenerationsRef) -> impl Iterator<Item = &GenerationRecord> {
    g.0.per_item.iter().map(|s| &s[0])
}

fn mean(v: &[f32]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
}

/// Per item, the texts of its first `n` samples.
fn samples(g: &GenerationsRef, n: usize) -> Array {
    g.0.per_item
        .iter()
        .map(|s| {
            let texts: Vec<String> = s.iter().take(n).map(|r| r.text.clone()).collect();
            Dynamic::from_array(strings_to_array(&texts))
        })
        .collect()
}

/// The generations made of each item's sample `j`; `j` must be below every item's count.
fn sample_at(g: &GenerationsRef, j: INT) -> RhaiResult<GenerationsRef> {
    let Some(fewest) = g.0.per_item.iter().map(Vec::len).min() else {
        return Ok(GenerationsRef(Arc::new(Generations::default())));
    };
    let Some(j) = usize::try_from(j).ok().filter(|&j| j < fewest) else {
        return err(format!(
            "Generations.sample({j}): each item has {fewest} samples, so `j` is 0 to {}; ask \
             `ctx.generate` for more with its option `n`",
            fewest - 1
        ));
    };
    let per_item = g.0.per_item.iter().map(|s| vec![s[j].clone()]).collect();
    Ok(GenerationsRef(Arc::new(Generations { per_item })))
}

pub fn register_view(engine: &mut Engine) {
    engine.register_type_with_name::<View>("View");
    engine
        .register_fn("len", |v: &mut View| v.0.len() as INT)
        .register_fn("ids", |v: &mut View| {
            IntVec::new(v.0.iter().map(|e| e.id as i64).collect())
        })
        .register_fn("inputs", |cx: NativeCallContext, v: &mut View| {
            let texts: Vec<String> = v.0.iter().map(|e| e.input.clone()).collect();
            within_data_limits(&cx, strings_to_array(&texts))
        })
        .register_fn("outputs", |cx: NativeCallContext, v: &mut View| {
            let texts: Vec<String> = v.0.iter().map(|e| e.output.clone()).collect();
            within_data_limits(&cx, strings_to_array(&texts))
        })
        .register_fn("take", |v: &mut View, idx: IntVec| -> RhaiResult<View> {
            let mut out = Vec::with_capacity(idx.0.len());
            for &i in idx.0.iter() {
                out.push(v.0[position(i, v.0.len(), "View.take")?].clone());
            }
            Ok(View(Arc::new(out)))
        })
        // `n` items drawn without replacement (all of them when n ≥ len), kept in pool order.
        .register_fn("subsample", |v: &mut View, n: INT, seed: INT| {
            let n = n.max(0) as usize;
            if n >= v.0.len() {
                return v.clone();
            }
            let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(seed as u64));
            let mut pick = rand::seq::index::sample(&mut rng, v.0.len(), n).into_vec();
            pick.sort_unstable();
            View(Arc::new(pick.into_iter().map(|i| v.0[i].clone()).collect()))
        })
        .register_fn("to_string", |v: &mut View| {
            format!("View({} items)", v.0.len())
        })
        .register_fn("to_debug", |v: &mut View| {
            format!("View({} items)", v.0.len())
        });
}

pub fn register_generations(engine: &mut Engine) {
    engine.register_type_with_name::<GenerationsRef>("Generations");
    engine
        .register_fn("len", |g: &mut GenerationsRef| g.0.per_item.len() as INT)
        .register_fn("texts", |cx: NativeCallContext, g: &mut GenerationsRef| {
            let texts: Vec<String> = first_sample(g).map(|r| r.text.clone()).collect();
            within_data_limits(&cx, strings_to_array(&texts))
        })
        .register_fn("sum_logprob", |g: &mut GenerationsRef| {
            FloatVec::new(
                first_sample(g)
                    .map(|r| r.token_logprobs.iter().map(|&x| x as f64).sum())
                    .collect(),
            )
        })
        .register_fn("mean_logprob", |g: &mut GenerationsRef| {
            FloatVec::new(first_sample(g).map(|r| mean(&r.token_logprobs)).collect())
        })
        .register_fn("mean_entropy", |g: &mut GenerationsRef| {
            FloatVec::new(first_sample(g).map(|r| mean(&r.entropies)).collect())
        })
        // Tokens generated per item, for length penalties on `sum_logprob`.
        .register_fn("lengths", |g: &mut GenerationsRef| {
            FloatVec::new(
                first_sample(g)
                    .map(|r| r.token_logprobs.len() as f64)
                    .collect(),
            )
        })
        // Each item's sample `j` as the first, so every method above reads that sample.
        .register_fn(
            "sample",
            |g: &mut GenerationsRef, j: INT| -> RhaiResult<GenerationsRef> { sample_at(g, j) },
        )
        .register_fn(
            "token_logprobs",
            |cx: NativeCallContext, g: &mut GenerationsRef| {
                let per_item: Array = first_sample(g)
                    .map(|r| {
                        Dynamic::from(FloatVec::new(
                            r.token_logprobs.iter().map(|&x| x as f64).collect(),
                        ))
                    })
                    .collect();
                within_data_limits(&cx, per_item)
            },
        )
        // Per item, the texts of every sample.
        .register_fn(
            "samples",
            |cx: NativeCallContext, g: &mut GenerationsRef| {
                within_data_limits(&cx, samples(g, usize::MAX))
            },
        )
        .register_fn(
            "samples",
            |cx: NativeCallContext, g: &mut GenerationsRef, n: INT| {
                within_data_limits(&cx, samples(g, n.max(0) as usize))
            },
        );
}

pub fn register_rng(engine: &mut Engine) {
    engine.register_type_with_name::<Rng>("Rng");
    engine
        // `k` distinct positions out of 0..n, uniformly.
        .register_fn(
            "sample",
            |r: &mut Rng, n: INT, k: INT| -> RhaiResult<IntVec> {
                let n = n.max(0) as usize;
                let k = (k.max(0) as usize).min(n);
                let k = vector_len(k as INT, "rng.sample")?;
                let mut g = r.0.lock().expect("rng lock");
                Ok(IntVec::from_usize(
                    &rand::seq::index::sample(&mut *g, n, k).into_vec(),
                ))
            },
        )
        .register_fn("shuffle", |r: &mut Rng, n: INT| -> RhaiResult<IntVec> {
            use rand::seq::SliceRandom;
            let mut p: Vec<usize> = (0..vector_len(n, "rng.shuffle")?).collect();
            p.shuffle(&mut *r.0.lock().expect("rng lock"));
            Ok(IntVec::from_usize(&p))
        })
        .register_fn("uniform", |r: &mut Rng| -> FLOAT {
            use rand::Rng as _;
            r.0.lock().expect("rng lock").random::<f64>()
        })
        .register_fn("next_seed", |r: &mut Rng| -> INT {
            use rand::Rng as _;
            (r.0.lock().expect("rng lock").random::<u64>() >> 1) as INT
        });
}
