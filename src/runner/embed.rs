//! Embeddings from the acquisition model itself: the mean of its final hidden states over the
//! input's tokens, L2-normalised (the "acquisition" embedding model of the host API).
use crate::models::decoder::{position_tensor, positions_from_mask};
use crate::models::lm::LanguageModel;
use crate::models::lora::ForwardMode;
use crate::strategy::Matrix;
use anyhow::Result;
use candle_core::{DType, Tensor};

pub fn mean_hidden_states(
    lm: &LanguageModel,
    texts: &[String],
    batch_size: usize,
) -> Result<Matrix> {
    let decoder = lm.decoder();
    let hidden_size = lm.config().hidden_size;
    let pad_id = lm.tokenizer().pad_id;
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            let mut v = lm.encode(t)?;
            if v.is_empty() {
                // An empty text still gets a vector: embed the padding token alone.
                v.push(pad_id);
            }
            v.truncate(decoder.max_positions().min(512));
            Ok(v)
        })
        .collect::<Result<_>>()?;
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut out = Matrix::zeros(texts.len(), hidden_size);
    for chunk in order.chunks(batch_size.max(1)) {
        let longest = chunk.iter().map(|&i| ids[i].len()).max().unwrap_or(1);
        let b = chunk.len();
        let mut flat = Vec::with_capacity(b * longest);
        let mut real = Vec::with_capacity(b);
        let mut weights = Vec::with_capacity(b * longest);
        for &i in chunk {
            let pad = longest - ids[i].len();
            flat.extend(std::iter::repeat_n(pad_id, pad));
            flat.extend(&ids[i]);
            let mask: Vec<bool> = (0..longest).map(|j| j >= pad).collect();
            let n = ids[i].len() as f32;
            weights.extend(mask.iter().map(|&m| if m { 1.0 / n } else { 0.0 }));
            real.push(mask);
        }
        let device = decoder.device();
        let keys = positions_from_mask(&real);
        let ids_t = Tensor::from_vec(flat, (b, longest), device)?;
        let masks = decoder.build_masks(&keys, longest)?;
        let positions = position_tensor(&keys, longest, device)?;
        let hidden = decoder
            .forward_hidden(&ids_t, &positions, &masks, None, ForwardMode::default())?
            .to_dtype(DType::F32)?;
        let w = Tensor::from_vec(weights, (b, longest, 1), device)?;
        let pooled = hidden.broadcast_mul(&w)?.sum(1)?.to_vec2::<f32>()?;
        for (&i, row) in chunk.iter().zip(pooled) {
            out.row_mut(i).copy_from_slice(&row);
        }
    }
    out.l2_normalize_rows();
    Ok(out)
}
