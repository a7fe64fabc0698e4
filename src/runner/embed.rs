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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::decoder_config::Family;

    /// The mean of the final hidden states over `text`'s tokens alone (no padding, no batch),
    /// L2-normalised: what each row must be however the texts are batched.
    fn alone(lm: &LanguageModel, text: &str) -> Result<Vec<f32>> {
        let ids = lm.encode(text)?;
        let n = ids.len();
        let device = lm.decoder().device();
        let keys = positions_from_mask(&[vec![true; n]]);
        let masks = lm.decoder().build_masks(&keys, n)?;
        let positions = position_tensor(&keys, n, device)?;
        let hidden = lm
            .decoder()
            .forward_hidden(
                &Tensor::from_vec(ids, (1, n), device)?,
                &positions,
                &masks,
                None,
                ForwardMode::default(),
            )?
            .to_dtype(DType::F32)?
            .squeeze(0)?
            .to_vec2::<f32>()?;
        let mut mean = vec![0f32; hidden[0].len()];
        for row in &hidden {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v / n as f32;
            }
        }
        let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
        Ok(mean.into_iter().map(|v| v / norm).collect())
    }

    #[test]
    fn rows_are_each_texts_own_normalised_mean_whatever_the_batch_pads() -> Result<()> {
        let lm = LanguageModel::tiny_random(0, Family::Llama)?;
        let texts: Vec<String> = [
            "short",
            "a much longer text with many more words in it than the others",
            "two words",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Batches of 3 pad the short texts to the long one's length.
        let m = mean_hidden_states(&lm, &texts, 3)?;
        assert_eq!((m.rows, m.cols), (3, lm.config().hidden_size));
        for (i, text) in texts.iter().enumerate() {
            let want = alone(&lm, text)?;
            let got = m.row(i);
            let diff = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff < 1e-4, "text {i}: max difference {diff}");
            let norm = got.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "text {i}: norm {norm}");
        }
        // Texts that differ give different rows (the pooling does not wash them out).
        let cos: f32 = m.row(0).iter().zip(m.row(1)).map(|(a, b)| a * b).sum();
        assert!(cos < 0.999, "cosine {cos}");
        Ok(())
    }
}
