//! `state.json`: everything a killed cell needs to continue exactly where it stopped.
//! It is written last in each iteration, so it always describes files that are complete.
use crate::labeller::Label;
use crate::runner::stopping::StopReason;
use anyhow::{bail, Context, Result};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bumped when the layout changes incompatibly; older states are refused with advice.
pub const STATE_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellState {
    pub version: u32,
    pub experiment: String,
    pub strategy: String,
    pub seed: u64,
    /// Iterations whose curve row, selection line and generations file are complete.
    pub iterations_done: usize,
    /// Labeled example ids, in the order they were labeled.
    pub labeled_ids: Vec<u64>,
    /// Labels produced by a non-golden labeller (golden labels are re-read from the dataset,
    /// so this stays empty for them).
    pub labels: Vec<Label>,
    /// Dollars spent on labels so far.
    pub money_spent: f64,
    /// Labeller tokens (input + output) so far.
    pub tokens: u64,
    /// Wall-clock seconds spent in this cell so far, over all sessions.
    pub seconds: f64,
    /// What a strategy keeps between iterations (e.g. last iteration's scores). Non-finite
    /// values are stored as the strings "NaN", "inf", "-inf".
    #[serde(with = "float_map")]
    pub strategy_memory: BTreeMap<String, Vec<f64>>,
    /// The adapter the next iteration continues from, if any.
    pub adapter_path: Option<PathBuf>,
    pub rng: RngState,
    pub finished: bool,
    pub stop_reason: Option<StopReason>,
    /// The strategy script's fingerprint (`script_identity`): resuming with an edited script
    /// is refused. Absent in states written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_sha256: Option<String>,
    /// [`Dataset::fingerprint`](crate::data::Dataset::fingerprint) of the data the cell was
    /// started on: resuming on changed files is refused. Absent in older states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_sha256: Option<String>,
    /// The last iteration labeled fewer examples than its query size (and the pool) allowed:
    /// the label budget trimmed it or the labeller's money ran out part-way. A run under
    /// larger budgets would have labeled more there, so such a cell is not extended.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last_query_cut: bool,
}

impl CellState {
    /// A cell that has done nothing yet.
    pub fn new(experiment: &str, strategy: &str, seed: u64, rng: &ChaCha8Rng) -> Self {
        CellState {
            version: STATE_VERSION,
            experiment: experiment.to_string(),
            strategy: strategy.to_string(),
            seed,
            iterations_done: 0,
            labeled_ids: Vec::new(),
            labels: Vec::new(),
            money_spent: 0.0,
            tokens: 0,
            seconds: 0.0,
            strategy_memory: BTreeMap::new(),
            adapter_path: None,
            rng: RngState::capture(rng),
            finished: false,
            stop_reason: None,
            script_sha256: None,
            data_sha256: None,
            last_query_cut: false,
        }
    }

    pub fn to_json(&self) -> Result<String> {
        let mut s = serde_json::to_string_pretty(self).context("cannot serialise state.json")?;
        s.push('\n');
        Ok(s)
    }

    /// Parse state.json text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<CellState> {
        let state: CellState = serde_json::from_str(text).with_context(|| {
            format!(
                "{} is damaged or from another version of atgen-lab; delete its seed folder \
                 or rerun with --fresh",
                origin.display()
            )
        })?;
        if state.version != STATE_VERSION {
            bail!(
                "{} has state version {} but this atgen-lab writes version {STATE_VERSION}; \
                 rerun with --fresh",
                origin.display(),
                state.version
            );
        }
        if state.iterations_done == 0 && !state.labeled_ids.is_empty() {
            bail!(
                "{}: {} labeled ids but no finished iteration; delete its seed folder or rerun \
                 with --fresh",
                origin.display(),
                state.labeled_ids.len()
            );
        }
        Ok(state)
    }
}

/// A ChaCha8 generator's exact position, so a resumed cell draws the same numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RngState {
    /// The 32-byte key, hex.
    pub key: String,
    pub stream: u64,
    /// Position in 32-bit words (a u128, written as a decimal string: JSON numbers are f64).
    pub word_pos: String,
}

impl RngState {
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        RngState {
            key: hex::encode(rng.get_seed()),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    pub fn restore(&self) -> Result<ChaCha8Rng> {
        use rand::SeedableRng;
        let bytes = hex::decode(&self.key).context("state.json rng.key is not hex")?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("state.json rng.key must be 32 bytes (64 hex digits)"))?;
        let word_pos: u128 = self
            .word_pos
            .parse()
            .context("state.json rng.word_pos is not a whole number")?;
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(self.stream);
        rng.set_word_pos(word_pos);
        Ok(rng)
    }
}

/// Floats that may be NaN or infinite, which JSON numbers cannot hold.
mod float_map {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Num {
        Finite(f64),
        Special(String),
    }

    fn to_num(v: f64) -> Num {
        if v.is_finite() {
            Num::Finite(v)
        } else if v.is_nan() {
            Num::Special("NaN".into())
        } else if v > 0.0 {
            Num::Special("inf".into())
        } else {
            Num::Special("-inf".into())
        }
    }

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<String, Vec<f64>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<&String, Vec<Num>> = map
            .iter()
            .map(|(k, v)| (k, v.iter().map(|x| to_num(*x)).collect()))
            .collect();
        m.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Vec<f64>>, D::Error> {
        let m: BTreeMap<String, Vec<Num>> = BTreeMap::deserialize(d)?;
        m.into_iter()
            .map(|(k, v)| {
                let values = v
                    .into_iter()
                    .map(|n| match n {
                        Num::Finite(x) => Ok(x),
                        Num::Special(s) => match s.as_str() {
                            "NaN" => Ok(f64::NAN),
                            "inf" => Ok(f64::INFINITY),
                            "-inf" => Ok(f64::NEG_INFINITY),
                            other => Err(serde::de::Error::custom(format!(
                                "strategy_memory.{k}: `{other}` is not a number"
                            ))),
                        },
                    })
                    .collect::<Result<Vec<f64>, D::Error>>()?;
                Ok((k, values))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn round_trips_with_rng_position_and_special_floats() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let _: u64 = rng.random();
        let _: u32 = rng.random();
        let mut st = CellState::new("exp", "random", 7, &rng);
        st.iterations_done = 2;
        st.labeled_ids = vec![5, 3, 9];
        st.strategy_memory
            .insert("mnlp".into(), vec![0.5, f64::NAN, f64::NEG_INFINITY]);
        st.stop_reason = Some(StopReason::PoolExhausted);
        let text = st.to_json().unwrap();
        let back = CellState::parse(&text, Path::new("state.json")).unwrap();
        assert_eq!(back.labeled_ids, st.labeled_ids);
        let mem = &back.strategy_memory["mnlp"];
        assert_eq!(mem[0], 0.5);
        assert!(mem[1].is_nan());
        assert_eq!(mem[2], f64::NEG_INFINITY);
        // The restored generator continues with the same numbers.
        let mut restored = back.rng.restore().unwrap();
        let want: Vec<u32> = (0..5).map(|_| rng.random()).collect();
        let got: Vec<u32> = (0..5).map(|_| restored.random()).collect();
        assert_eq!(want, got);
    }

    /// A resumed cell continues from the floats it wrote: a dollar total or a strategy score
    /// read back one ulp off gives another cost column, or another ranking, than an
    /// uninterrupted run. (These values came back one ulp off before serde_json parsed floats
    /// exactly.)
    #[test]
    fn floats_read_back_bit_for_bit() {
        let rng = ChaCha8Rng::seed_from_u64(0);
        let mut st = CellState::new("exp", "random", 0, &rng);
        let values = [
            0.000026549999999999998,
            0.00028619999999999996,
            0.000022649999999999998,
            0.1 + 0.2,
            1.0 / 3.0,
            6.02214076e23,
            f64::MIN_POSITIVE,
        ];
        st.money_spent = values[1];
        st.strategy_memory.insert("scores".into(), values.to_vec());
        let back = CellState::parse(&st.to_json().unwrap(), Path::new("state.json")).unwrap();
        assert_eq!(back.money_spent.to_bits(), st.money_spent.to_bits());
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back.strategy_memory["scores"]), bits(&values));
    }

    #[test]
    fn damaged_or_old_state_gives_advice() {
        let err = format!(
            "{:#}",
            CellState::parse("{\"version\": 1", Path::new("x/state.json")).unwrap_err()
        );
        assert!(
            err.contains("x/state.json") && err.contains("--fresh"),
            "{err}"
        );
        let rng = ChaCha8Rng::seed_from_u64(0);
        let mut st = CellState::new("e", "s", 0, &rng);
        st.version = 0;
        let err = CellState::parse(&st.to_json().unwrap(), Path::new("state.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("version 0"), "{err}");
    }
}
