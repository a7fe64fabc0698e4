//! Strategy memory (`ctx.remember`) ↔ state.json. state.json stores plain float lists, so an
//! entry's ids (when the script keyed values by example) travel under `<key>#ids`.
use crate::strategy::context::{Memory, Remembered};
use std::collections::BTreeMap;

const IDS_SUFFIX: &str = "#ids";

pub fn to_state(memory: &Memory) -> BTreeMap<String, Vec<f64>> {
    let mut out = BTreeMap::new();
    for (key, r) in memory {
        out.insert(key.clone(), r.values.clone());
        if let Some(ids) = &r.ids {
            // Ids are row indices, far below 2^53, so f64 holds them exactly.
            out.insert(
                format!("{key}{IDS_SUFFIX}"),
                ids.iter().map(|&i| i as f64).collect(),
            );
        }
    }
    out
}

pub fn from_state(stored: &BTreeMap<String, Vec<f64>>) -> Memory {
    let mut memory = Memory::new();
    for (key, values) in stored {
        if key.ends_with(IDS_SUFFIX) || key.starts_with("__") {
            continue;
        }
        let ids = stored
            .get(&format!("{key}{IDS_SUFFIX}"))
            .map(|v| v.iter().map(|&x| x as u64).collect());
        memory.insert(
            key.clone(),
            Remembered {
                ids,
                values: values.clone(),
            },
        );
    }
    memory
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_ids_and_values() {
        let mut m = Memory::new();
        m.insert(
            "mnlp".into(),
            Remembered {
                ids: Some(vec![3, 9]),
                values: vec![0.5, -1.0],
            },
        );
        m.insert(
            "plain".into(),
            Remembered {
                ids: None,
                values: vec![1.0],
            },
        );
        assert_eq!(from_state(&to_state(&m)), m);
    }
}
