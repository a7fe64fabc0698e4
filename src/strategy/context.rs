//! What a script sees: the `ctx` object (pool and labeled views, k, iteration, parameters, rng,
//! memory across iterations, the host primitives); `script_values` registers the views,
//! generations and rng it hands out.
use crate::data::Example;
use crate::strategy::host::{EmbedModel, GenOpts, Generations, StrategyHost};
use crate::strategy::sandbox::within_data_limits;
use crate::strategy::types::{array_to_strings, err, FloatVec, IntVec, MatrixRef, RhaiResult};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rhai::{Array, Dynamic, Engine, Map, NativeCallContext, INT};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Bounds on `generate` options: beyond them a typo (`n: 1e9`) would allocate until the
/// process aborts, where a clear script error is what the author needs.
const MAX_SAMPLES_PER_ITEM: usize = 1000;
const MAX_NEW_TOKENS: usize = 1 << 16;

/// Values a strategy keeps between iterations (`ctx.remember` / `ctx.recall`); the runner saves
/// them in state.json and hands them back next iteration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Remembered {
    /// When set, `values[i]` belongs to example `ids[i]`, so it survives the pool shrinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<u64>>,
    pub values: Vec<f64>,
}

pub type Memory = BTreeMap<String, Remembered>;

/// Everything one query step needs from the runner.
#[derive(Clone, Debug, Default)]
pub struct SelectionContext {
    pub pool: Vec<Example>,
    pub labeled: Vec<Example>,
    pub k: usize,
    /// 0 for the first query.
    pub iteration: usize,
    pub planned_iterations: usize,
    pub seed: u64,
    /// `[strategy.params]` of the experiment.
    pub params: toml::Table,
    pub max_new_tokens: usize,
    pub memory: Memory,
    /// Where encoder embeddings of the pool are kept between runs, and the key naming the
    /// dataset and encoder (e.g. `aeslc-train@<encoder sha>`); no disk cache when either is None.
    pub embedding_cache_dir: Option<std::path::PathBuf>,
    pub dataset_key: Option<String>,
}

/// A list of examples as a script sees it.
#[derive(Clone, Debug)]
pub struct View(pub Arc<Vec<Example>>);

/// Generations as a script sees them.
#[derive(Clone, Debug)]
pub struct GenerationsRef(pub Arc<Generations>);

/// A seeded ChaCha stream.
#[derive(Clone, Debug)]
pub struct Rng(pub Arc<Mutex<ChaCha8Rng>>);

/// The `ctx` object.
#[derive(Clone)]
pub struct Ctx(pub Arc<CtxInner>);

pub struct CtxInner {
    pub pool: View,
    pub labeled: View,
    pub k: usize,
    pub iteration: usize,
    pub planned_iterations: usize,
    pub seed: u64,
    pub params: toml::Table,
    pub max_new_tokens: usize,
    pub memory: Mutex<Memory>,
    pub logs: Mutex<Vec<String>>,
    rng_calls: AtomicU64,
    host: HostRef,
}

/// A borrowed host with its lifetime erased, because Rhai values must be `'static`.
#[derive(Clone, Copy)]
pub struct HostRef(&'static dyn StrategyHost);

impl HostRef {
    /// # Safety
    /// Every `Ctx` holding the result must be dropped before `host` is. `engine::select` keeps
    /// the engine, the scope and every script value local to its own frame, so no `Ctx` outlives
    /// the call that borrowed the host.
    pub(crate) unsafe fn erase<'a>(host: &'a (dyn StrategyHost + 'a)) -> Self {
        // SAFETY: the caller upholds the contract above; only the lifetime changes.
        Self(unsafe {
            std::mem::transmute::<&'a (dyn StrategyHost + 'a), &'static (dyn StrategyHost + 'static)>(
                host,
            )
        })
    }
}

/// SplitMix64 finaliser: decorrelates seeds that differ in one bit.
pub fn mix_seed(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Ctx {
    pub(crate) fn new(sc: SelectionContext, host: HostRef) -> Self {
        Self(Arc::new(CtxInner {
            pool: View(Arc::new(sc.pool)),
            labeled: View(Arc::new(sc.labeled)),
            k: sc.k,
            iteration: sc.iteration,
            planned_iterations: sc.planned_iterations,
            seed: sc.seed,
            params: sc.params,
            max_new_tokens: sc.max_new_tokens,
            memory: Mutex::new(sc.memory),
            logs: Mutex::new(Vec::new()),
            rng_calls: AtomicU64::new(0),
            host,
        }))
    }

    pub fn host(&self) -> &dyn StrategyHost {
        self.0.host.0
    }

    /// A seed that differs per run seed, iteration and salt.
    pub fn derived_seed(&self, salt: u64) -> u64 {
        mix_seed(mix_seed(self.0.seed ^ mix_seed(self.0.iteration as u64)) ^ salt)
    }

    fn gen_opts(&self, opts: &Map) -> RhaiResult<GenOpts> {
        let mut o = GenOpts {
            max_new_tokens: self.0.max_new_tokens,
            temperature: 0.0,
            top_p: 1.0,
            n: 1,
            seed: self.derived_seed(0x6e6e),
        };
        for (key, v) in opts {
            let num = |v: &Dynamic| -> RhaiResult<f64> {
                v.as_float()
                    .or_else(|_| v.as_int().map(|i| i as f64))
                    .map_err(|t| {
                        format!("generate option `{key}`: expected a number, got {t}").into()
                    })
            };
            let count = |n: f64, most: usize| -> RhaiResult<usize> {
                if (1.0..=most as f64).contains(&n) {
                    Ok(n as usize)
                } else {
                    err(format!("generate option `{key}` is {n}: use 1 to {most}"))
                }
            };
            match key.as_str() {
                "max_new_tokens" => o.max_new_tokens = count(num(v)?, MAX_NEW_TOKENS)?,
                "temperature" => {
                    o.temperature = num(v)?;
                    if !(o.temperature.is_finite() && o.temperature >= 0.0) {
                        return err(format!(
                            "generate option `temperature` is {}: use 0 (greedy) or more",
                            o.temperature
                        ));
                    }
                }
                "top_p" => {
                    o.top_p = num(v)?;
                    if !(o.top_p > 0.0 && o.top_p <= 1.0) {
                        return err(format!(
                            "generate option `top_p` is {}: use a number in (0, 1]",
                            o.top_p
                        ));
                    }
                }
                "n" => o.n = count(num(v)?, MAX_SAMPLES_PER_ITEM)?,
                "seed" => o.seed = num(v)? as u64,
                other => {
                    return err(format!(
                        "unknown generate option `{other}`: use max_new_tokens, temperature, top_p, n or seed"
                    ))
                }
            }
        }
        Ok(o)
    }

    fn generate(&self, view: &View, opts: &Map, base: bool) -> RhaiResult<GenerationsRef> {
        let o = self.gen_opts(opts)?;
        let g = self
            .host()
            .generate(&view.0, &o, base)
            .map_err(|e| format!("generate failed: {e:#}"))?;
        if g.per_item.len() != view.0.len() || g.per_item.iter().any(Vec::is_empty) {
            return err(format!(
                "generate returned {} items for a view of {} (or an item without output)",
                g.per_item.len(),
                view.0.len()
            ));
        }
        Ok(GenerationsRef(g))
    }

    fn embed(&self, texts: &[String], opts: &Map) -> RhaiResult<MatrixRef> {
        let mut model = EmbedModel::Encoder;
        for (key, v) in opts {
            match key.as_str() {
                "model" => {
                    let name = v
                        .clone()
                        .into_string()
                        .map_err(|t| format!("embed option `model`: expected a string, got {t}"))?;
                    model = EmbedModel::parse(&name).map_err(|e| e.to_string())?;
                }
                other => return err(format!("unknown embed option `{other}`: use `model`")),
            }
        }
        let m = self
            .host()
            .embed(texts, model, None)
            .map_err(|e| format!("embed failed: {e:#}"))?;
        Ok(MatrixRef(m))
    }

    fn param(&self, name: &str, default: Dynamic) -> RhaiResult<Dynamic> {
        match self.0.params.get(name) {
            None => Ok(default),
            Some(v) => param_value(name, v, &default).or_else(err),
        }
    }
}

/// A `[strategy.params]` value as the script sees it, type-checked against the default the
/// script passes to `ctx.param` (an integer is accepted where a float is expected; a unit
/// default accepts anything). Also used before a run, on the defaults written in the script.
pub fn param_value(name: &str, v: &toml::Value, default: &Dynamic) -> Result<Dynamic, String> {
    let wrong = |what: &str| {
        format!("[strategy.params] {name} = {v}: expected {what} like the default {default:?}")
    };
    let d = match v {
        toml::Value::Integer(i) if default.is_float() => Dynamic::from_float(*i as f64),
        toml::Value::Integer(i) => Dynamic::from_int(*i),
        toml::Value::Float(_) if default.is_int() => return Err(wrong("an integer")),
        toml::Value::Float(f) => Dynamic::from_float(*f),
        toml::Value::Boolean(b) => Dynamic::from_bool(*b),
        toml::Value::String(s) => Dynamic::from(s.clone()),
        _ => return Err(wrong("a number, boolean or string")),
    };
    if !default.is_unit() && d.type_id() != default.type_id() {
        let what = if default.is_string() {
            "a string"
        } else if default.is_bool() {
            "true or false"
        } else if default.is_int() {
            "an integer"
        } else if default.is_float() {
            "a number"
        } else {
            default.type_name()
        };
        return Err(wrong(what));
    }
    Ok(d)
}

pub fn register(engine: &mut Engine) {
    register_ctx(engine);
    super::script_values::register_view(engine);
    super::script_values::register_generations(engine);
    super::script_values::register_rng(engine);
}

fn register_ctx(engine: &mut Engine) {
    engine.register_type_with_name::<Ctx>("Context");
    engine
        .register_get("pool", |c: &mut Ctx| c.0.pool.clone())
        .register_get("labeled", |c: &mut Ctx| c.0.labeled.clone())
        .register_get("k", |c: &mut Ctx| c.0.k as INT)
        .register_get("iteration", |c: &mut Ctx| c.0.iteration as INT)
        .register_get("planned_iterations", |c: &mut Ctx| {
            c.0.planned_iterations as INT
        })
        .register_get("seed", |c: &mut Ctx| c.0.seed as INT)
        .register_get("max_new_tokens", |c: &mut Ctx| c.0.max_new_tokens as INT)
        .register_fn("param", |c: &mut Ctx, name: &str, default: Dynamic| {
            c.param(name, default)
        })
        // A fresh stream per call, derived from the run seed and iteration.
        .register_fn("rng", |c: &mut Ctx| {
            let n = c.0.rng_calls.fetch_add(1, Ordering::Relaxed);
            Rng(Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(
                c.derived_seed(0x726e67 + n),
            ))))
        })
        .register_fn("rng", |c: &mut Ctx, salt: INT| {
            Rng(Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(
                c.derived_seed(salt as u64),
            ))))
        })
        .register_fn("log", |c: &mut Ctx, msg: Dynamic| {
            let line = msg.to_string();
            if std::env::var_os("LAB_VERBOSE").is_some() {
                eprintln!("[strategy] {line}");
            }
            c.0.logs.lock().expect("log lock").push(line);
        })
        .register_fn("generate", |c: &mut Ctx, v: View, o: Map| {
            c.generate(&v, &o, false)
        })
        .register_fn("generate", |c: &mut Ctx, v: View| {
            c.generate(&v, &Map::new(), false)
        })
        .register_fn("base_generate", |c: &mut Ctx, v: View, o: Map| {
            c.generate(&v, &o, true)
        })
        .register_fn(
            "score",
            |cx: NativeCallContext, c: &mut Ctx, v: View, outputs: Array| -> RhaiResult<Array> {
                let outs = array_to_strings(&outputs, "score outputs")?;
                if outs.len() != v.0.len() {
                    return err(format!(
                        "score: {} outputs for a view of {} items",
                        outs.len(),
                        v.0.len()
                    ));
                }
                let s = c
                    .host()
                    .score(&v.0, &outs)
                    .map_err(|e| format!("score failed: {e:#}"))?;
                let per_item = s
                    .into_iter()
                    .map(|t| Dynamic::from(FloatVec::new(t.into_iter().map(f64::from).collect())))
                    .collect();
                within_data_limits(&cx, per_item)
            },
        )
        .register_fn("embed", |c: &mut Ctx, v: View, o: Map| {
            let texts: Vec<String> = v.0.iter().map(|e| e.input.clone()).collect();
            c.embed(&texts, &o)
        })
        .register_fn("embed", |c: &mut Ctx, v: View| {
            let texts: Vec<String> = v.0.iter().map(|e| e.input.clone()).collect();
            c.embed(&texts, &Map::new())
        })
        .register_fn(
            "embed",
            |c: &mut Ctx, t: Array, o: Map| -> RhaiResult<MatrixRef> {
                c.embed(&array_to_strings(&t, "embed texts")?, &o)
            },
        )
        .register_fn("embed", |c: &mut Ctx, t: Array| -> RhaiResult<MatrixRef> {
            c.embed(&array_to_strings(&t, "embed texts")?, &Map::new())
        })
        .register_fn("remember", |c: &mut Ctx, key: &str, v: FloatVec| {
            let r = Remembered {
                ids: None,
                values: v.0.as_ref().clone(),
            };
            c.0.memory
                .lock()
                .expect("memory lock")
                .insert(key.into(), r);
        })
        // Values keyed by example id, so they can be looked up after the pool shrinks. Ids
        // already remembered under `key` are updated and the others kept, so values gathered
        // over several iterations (a new pool_subsample draw each time) add up.
        .register_fn(
            "remember",
            |c: &mut Ctx, key: &str, ids: IntVec, v: FloatVec| -> RhaiResult<()> {
                if ids.0.len() != v.0.len() {
                    return err(format!("remember {key:?}: ids and values differ in length"));
                }
                let mut memory = c.0.memory.lock().expect("memory lock");
                let entry = memory.entry(key.into()).or_insert_with(|| Remembered {
                    ids: Some(Vec::new()),
                    values: Vec::new(),
                });
                if entry.ids.is_none() {
                    // Remembered without ids before: the keyed values replace it.
                    *entry = Remembered {
                        ids: Some(Vec::new()),
                        values: Vec::new(),
                    };
                }
                let known = entry.ids.as_mut().expect("keyed entry");
                let mut at: std::collections::HashMap<u64, usize> =
                    known.iter().enumerate().map(|(p, &id)| (id, p)).collect();
                for (&id, &value) in ids.0.iter().zip(v.0.iter()) {
                    let id = id as u64;
                    match at.get(&id) {
                        Some(&p) => entry.values[p] = value,
                        None => {
                            at.insert(id, known.len());
                            known.push(id);
                            entry.values.push(value);
                        }
                    }
                }
                Ok(())
            },
        )
        // The remembered vector, or () when nothing was remembered under `key`.
        .register_fn("recall", |c: &mut Ctx, key: &str| -> Dynamic {
            match c.0.memory.lock().expect("memory lock").get(key) {
                Some(r) => Dynamic::from(FloatVec::new(r.values.clone())),
                None => Dynamic::UNIT,
            }
        })
        // Values for `ids` (NaN where an id was not remembered), or () when nothing was.
        .register_fn(
            "recall",
            |c: &mut Ctx, key: &str, ids: IntVec| -> RhaiResult<Dynamic> {
                let mem = c.0.memory.lock().expect("memory lock");
                let Some(r) = mem.get(key) else {
                    return Ok(Dynamic::UNIT);
                };
                let Some(rid) = &r.ids else {
                    return err(format!("recall {key:?}: it was remembered without ids"));
                };
                let by_id: std::collections::HashMap<u64, f64> =
                    rid.iter().copied().zip(r.values.iter().copied()).collect();
                Ok(Dynamic::from(FloatVec::new(
                    ids.0
                        .iter()
                        .map(|&i| by_id.get(&(i as u64)).copied().unwrap_or(f64::NAN))
                        .collect(),
                )))
            },
        );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut e = Engine::new();
        crate::strategy::types::register(&mut e);
        register(&mut e);
        e
    }

    #[test]
    fn subsample_is_seeded_and_keeps_pool_order() {
        let v = View(Arc::new(
            (0..50)
                .map(|i| Example {
                    id: i,
                    input: format!("x{i}"),
                    output: String::new(),
                    references: vec![String::new()],
                })
                .collect(),
        ));
        let e = engine();
        let mut scope = rhai::Scope::new();
        scope.push("v", v);
        let a: IntVec = e
            .eval_with_scope(&mut scope, "v.subsample(10, 3).ids()")
            .unwrap();
        let b: IntVec = e
            .eval_with_scope(&mut scope, "v.subsample(10, 3).ids()")
            .unwrap();
        let c: IntVec = e
            .eval_with_scope(&mut scope, "v.subsample(10, 4).ids()")
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.0.len(), 10);
        assert!(a.0.windows(2).all(|w| w[0] < w[1]));
        let all: IntVec = e
            .eval_with_scope(&mut scope, "v.subsample(99, 3).ids()")
            .unwrap();
        assert_eq!(all.0.len(), 50);
    }

    #[test]
    fn derived_seeds_differ_by_iteration_and_salt() {
        let a = mix_seed(mix_seed(1 ^ mix_seed(0)) ^ 5);
        let b = mix_seed(mix_seed(1 ^ mix_seed(1)) ^ 5);
        let c = mix_seed(mix_seed(1 ^ mix_seed(0)) ^ 6);
        assert!(a != b && a != c && b != c);
    }
}
