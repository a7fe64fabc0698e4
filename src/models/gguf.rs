//! Reading GGUF files: metadata, and tensors dequantized to the decoder's dtype under Hugging Face
//! tensor names, so the decoder has one naming scheme whatever the source.
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};

/// An opened GGUF file: its parsed header and where it lives.
pub struct GgufFile {
    pub path: PathBuf,
    pub content: Content,
}

/// The type number when candle refused a tensor type it has no reader for (its message is
/// "unknown dtype for tensor N"); a truncated or corrupt file fails differently.
fn unsupported_tensor_type(e: &candle_core::Error) -> Option<u32> {
    e.to_string()
        .strip_prefix("unknown dtype for tensor ")?
        .trim()
        .parse()
        .ok()
}

/// ggml's names for the tensor types candle cannot read (ggml.h's `ggml_type`).
fn ggml_type_name(type_number: u32) -> Option<&'static str> {
    Some(match type_number {
        16 => "IQ2_XXS",
        17 => "IQ2_XS",
        18 => "IQ3_XXS",
        19 => "IQ1_S",
        20 => "IQ4_NL",
        21 => "IQ3_S",
        22 => "IQ2_S",
        23 => "IQ4_XS",
        24 => "I8",
        25 => "I16",
        26 => "I32",
        27 => "I64",
        28 => "F64",
        29 => "IQ1_M",
        34 => "TQ1_0",
        35 => "TQ2_0",
        39 => "MXFP4",
        _ => return None,
    })
}

impl GgufFile {
    /// Parse the header and check that every tensor lies inside the file, so a truncated
    /// download is reported up front instead of half-way through loading.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path)
            .with_context(|| format!("cannot open GGUF file {}", path.display()))?;
        let file_len = file.metadata()?.len();
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| {
            // The message only: with RUST_BACKTRACE set, candle's Display adds its backtrace.
            let e = match e {
                candle_core::Error::WithBacktrace { inner, .. } => *inner,
                other => other,
            };
            if let Some(type_number) = unsupported_tensor_type(&e) {
                return anyhow::anyhow!(
                    "{}: a tensor is stored as GGUF type {type_number}{}, which this loader cannot \
                     read (it reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the K-quants \
                     Q2_K to Q6_K); use a GGUF of this model in one of those, e.g. Q8_0, Q4_K_M \
                     or F16/F32, or convert it (llama.cpp's llama-quantize)",
                    path.display(),
                    ggml_type_name(type_number)
                        .map(|name| format!(" ({name})"))
                        .unwrap_or_default()
                );
            }
            let named_gguf = path
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("gguf"));
            let advice = if named_gguf {
                "it may be truncated or corrupt: if `lab setup` fetched it, delete it and run \
                 `lab setup` again; otherwise fetch the file again"
            } else {
                "--model takes a .gguf file, a model folder (config.json, tokenizer.json, \
                 *.safetensors), a default model name or a hub id"
            };
            anyhow::anyhow!(
                "{} is not a readable GGUF file ({e}); {advice}",
                path.display()
            )
        })?;
        for (name, info) in &content.tensor_infos {
            let block = info.ggml_dtype.block_size() as u64;
            // Checked: a corrupt header's dimensions or offset must not overflow into a
            // small, plausible end.
            let end = info
                .shape
                .dims()
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
                .and_then(|elems| (elems / block).checked_mul(info.ggml_dtype.type_size() as u64))
                .and_then(|bytes| bytes.checked_add(info.offset))
                .and_then(|end| end.checked_add(content.tensor_data_offset));
            let Some(end) = end else {
                bail!(
                    "{} is corrupt: tensor `{name}` (shape {:?}, offset {}) overflows a 64-bit \
                     file size; delete it and run `lab setup` again",
                    path.display(),
                    info.shape.dims(),
                    info.offset
                );
            };
            if end > file_len {
                bail!(
                    "{} is truncated: tensor `{name}` ends at byte {end} but the file has {file_len} \
                     bytes; delete it and run `lab setup` again",
                    path.display()
                );
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            content,
        })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).with_context(|| {
            format!(
                "GGUF file {} lacks the metadata key `{key}`",
                self.path.display()
            )
        })
    }

    pub fn string(&self, key: &str) -> Result<String> {
        let value = self.require(key)?;
        value.to_string().cloned().map_err(|e| self.bad_key(key, e))
    }

    /// Any integer-typed metadata value as usize (writers differ in which width they use).
    pub fn usize(&self, key: &str) -> Result<usize> {
        let value = self.require(key)?;
        let n = match value {
            Value::U8(v) => *v as i64,
            Value::I8(v) => *v as i64,
            Value::U16(v) => *v as i64,
            Value::I16(v) => *v as i64,
            Value::U32(v) => *v as i64,
            Value::I32(v) => *v as i64,
            Value::U64(v) => *v as i64,
            Value::I64(v) => *v,
            other => bail!(
                "GGUF file {}: key `{key}` should be an integer, found {:?}",
                self.path.display(),
                other.value_type()
            ),
        };
        usize::try_from(n).map_err(|_| {
            anyhow::anyhow!(
                "GGUF file {}: key `{key}` is negative ({n})",
                self.path.display()
            )
        })
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.usize(key).map(Some),
        }
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::F32(v)) => Ok(Some(*v as f64)),
            Some(Value::F64(v)) => Ok(Some(*v)),
            Some(other) => bail!(
                "GGUF file {}: key `{key}` should be a float, found {:?}",
                self.path.display(),
                other.value_type()
            ),
        }
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.to_bool().map(Some).map_err(|e| self.bad_key(key, e)),
        }
    }

    pub fn string_array(&self, key: &str) -> Result<Vec<String>> {
        let values = self
            .require(key)?
            .to_vec()
            .map_err(|e| self.bad_key(key, e))?;
        values
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| self.bad_key(key, e)))
            .collect()
    }

    pub fn i32_array(&self, key: &str) -> Result<Option<Vec<i32>>> {
        let Some(value) = self.get(key) else {
            return Ok(None);
        };
        let values = value.to_vec().map_err(|e| self.bad_key(key, e))?;
        values
            .iter()
            .map(|v| v.to_i32().map_err(|e| self.bad_key(key, e)))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    fn bad_key(&self, key: &str, e: candle_core::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "GGUF file {}: metadata key `{key}` has an unexpected type ({e})",
            self.path.display()
        )
    }

    /// One tensor dequantized to f32 (small ones such as `rope_freqs.weight`).
    pub fn read_f32(&self, name: &str, device: &Device) -> Result<Tensor> {
        let file = File::open(&self.path)
            .with_context(|| format!("cannot open GGUF file {}", self.path.display()))?;
        let mut reader = BufReader::new(file);
        let q = self
            .content
            .tensor(&mut reader, name, device)
            .with_context(|| format!("cannot read tensor `{name}` from {}", self.path.display()))?;
        Ok(q.dequantize(device)?)
    }

    /// Every tensor dequantized to `dtype`, renamed to Hugging Face names. llama-family Q/K rows
    /// are un-permuted (llama.cpp's converter permutes them for interleaved rotary) so the decoder
    /// uses rotate-half rotary for every source; Gemma norms lose the +1 llama.cpp bakes in.
    pub fn load_tensors(
        &self,
        arch: &str,
        n_head: usize,
        n_kv_head: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<HashMap<String, Tensor>> {
        let file = File::open(&self.path)
            .with_context(|| format!("cannot open GGUF file {}", self.path.display()))?;
        let mut reader = BufReader::new(file);
        let mut names: Vec<&String> = self.content.tensor_infos.keys().collect();
        names.sort();
        let mut out = HashMap::new();
        for name in names {
            let Some(hf_name) = hf_tensor_name(arch, name) else {
                continue;
            };
            let q = self
                .content
                .tensor(&mut reader, name, device)
                .with_context(|| {
                    format!(
                        "cannot read tensor `{name}` from {}; the file may be corrupt: delete it \
                         and run `lab setup` again",
                        self.path.display()
                    )
                })?;
            let mut t = q.dequantize(device).with_context(|| {
                format!("cannot dequantize `{name}` in {}", self.path.display())
            })?;
            if arch == "llama" {
                if hf_name.ends_with("q_proj.weight") {
                    t = unpermute_rows(&t, n_head)?;
                } else if hf_name.ends_with("k_proj.weight") {
                    t = unpermute_rows(&t, n_kv_head)?;
                }
            }
            out.insert(hf_name, t.to_dtype(dtype)?);
        }
        Ok(out)
    }
}

/// Inverse of llama.cpp's `permute`: rows were reordered as `(head, half, pair)` → `(head, pair,
/// half)`; this swaps them back.
pub fn unpermute_rows(w: &Tensor, n_head: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    if rows % (2 * n_head) != 0 {
        bail!("cannot un-permute a [{rows}, {cols}] projection over {n_head} heads");
    }
    Ok(w.reshape((n_head, rows / n_head / 2, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

/// llama.cpp tensor name → Hugging Face name; `None` for tensors the decoder does not use
/// (e.g. precomputed rope frequencies).
pub fn hf_tensor_name(arch: &str, name: &str) -> Option<String> {
    let name = name.strip_suffix(".weight").map_or_else(
        || name.strip_suffix(".bias").map(|n| (n, "bias")),
        |n| Some((n, "weight")),
    )?;
    let (stem, kind) = name;
    let top = match stem {
        "token_embd" => Some("model.embed_tokens".to_string()),
        "output_norm" => Some("model.norm".to_string()),
        "output" => Some("lm_head".to_string()),
        _ => None,
    };
    if let Some(top) = top {
        return Some(format!("{top}.{kind}"));
    }
    let rest = stem.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let gemma = arch.starts_with("gemma");
    let hf_part = match part {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "attn_q_norm" => "self_attn.q_norm",
        "attn_k_norm" => "self_attn.k_norm",
        "attn_norm" => "input_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "post_attention_norm" => "post_attention_layernorm",
        "post_ffw_norm" => "post_feedforward_layernorm",
        "ffn_norm" if gemma => "pre_feedforward_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf_part}.{kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hugging_face() {
        assert_eq!(
            hf_tensor_name("llama", "blk.3.ffn_norm.weight").unwrap(),
            "model.layers.3.post_attention_layernorm.weight"
        );
        assert_eq!(
            hf_tensor_name("gemma3", "blk.3.ffn_norm.weight").unwrap(),
            "model.layers.3.pre_feedforward_layernorm.weight"
        );
        assert_eq!(
            hf_tensor_name("qwen2", "blk.0.attn_q.bias").unwrap(),
            "model.layers.0.self_attn.q_proj.bias"
        );
        assert_eq!(hf_tensor_name("llama", "rope_freqs.weight"), None);
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permute() -> Result<()> {
        // llama.cpp: w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)
        let (n_head, rows, cols) = (2usize, 8usize, 3usize);
        let w = Tensor::arange(0f32, (rows * cols) as f32, &Device::Cpu)?.reshape((rows, cols))?;
        let permuted = w
            .reshape((n_head, 2, rows / n_head / 2, cols))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((rows, cols))?;
        let back = unpermute_rows(&permuted, n_head)?;
        assert_eq!(back.to_vec2::<f32>()?, w.to_vec2::<f32>()?);
        Ok(())
    }

    /// A GGUF whose `output_norm.weight` claims `type_number` (the tiny model otherwise).
    fn tiny_gguf_with_tensor_type(dir: &Path, type_number: u32) -> Result<PathBuf> {
        let path = dir.join("tiny.gguf");
        crate::models::tiny_models::write_tiny_gguf(&path, 8)?;
        let mut bytes = std::fs::read(&path)?;
        // A tensor info: name (u64 length, bytes), u32 dimension count, u64 dimensions,
        // u32 type, u64 offset. The norm has one dimension.
        let name = b"output_norm.weight";
        let at = bytes
            .windows(name.len())
            .position(|w| w == name)
            .expect("the tensor info is in the header");
        let type_at = at + name.len() + 4 + 8;
        assert_eq!(
            bytes[type_at..type_at + 4],
            0u32.to_le_bytes(),
            "written as F32"
        );
        bytes[type_at..type_at + 4].copy_from_slice(&type_number.to_le_bytes());
        std::fs::write(&path, bytes)?;
        Ok(path)
    }

    #[test]
    fn an_unsupported_quant_type_is_named_with_what_to_use_instead() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = tiny_gguf_with_tensor_type(dir.path(), 20)?;
        let msg = format!(
            "{:#}",
            GgufFile::open(&path).err().expect("IQ4_NL is unsupported")
        );
        assert!(
            msg.contains("GGUF type 20 (IQ4_NL)")
                && msg.contains("Q8_0, Q4_K_M or F16/F32")
                && !msg.contains("corrupt")
                && !msg.contains("lab setup"),
            "{msg}"
        );
        Ok(())
    }

    #[test]
    fn the_tiny_gguf_reads_before_its_type_is_changed() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = tiny_gguf_with_tensor_type(dir.path(), 0)?;
        assert!(GgufFile::open(&path)?
            .content
            .tensor_infos
            .contains_key("output_norm.weight"));
        Ok(())
    }
}
