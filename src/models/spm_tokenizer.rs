//! SentencePiece vocabularies (GGUF `tokenizer.ggml.model = "llama"`: pieces, scores and token
//! types, no merges) rebuilt as a Hugging Face BPE tokenizer the way transformers'
//! GemmaConverter does: every split of a piece into two pieces of the vocabulary is a merge,
//! ranked by the merged piece's score, so BPE picks the same highest-scoring pair first as
//! SentencePiece (and llama.cpp) do. Characters outside the vocabulary fall back to `<0xXX>`
//! byte tokens.
use anyhow::{bail, Result};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::replace::Replace;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::AddedToken;

/// GGUF token types (llama.cpp `llama_token_type`).
pub const TOKEN_TYPE_NORMAL: i32 = 1;
pub const TOKEN_TYPE_UNKNOWN: i32 = 2;
pub const TOKEN_TYPE_CONTROL: i32 = 3;
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;
pub const TOKEN_TYPE_UNUSED: i32 = 5;
pub const TOKEN_TYPE_BYTE: i32 = 6;

/// SentencePiece's stand-in for a space.
const SPACE_MARK: char = '▁';

/// A SentencePiece vocabulary as a GGUF file stores it; index = token id.
pub struct SpmVocabulary {
    pub pieces: Vec<String>,
    pub scores: Vec<f32>,
    pub types: Vec<i32>,
    /// `tokenizer.ggml.add_space_prefix`: a text starts with a space mark (Llama 2 does, Gemma 3
    /// does not).
    pub add_space_prefix: bool,
    pub unknown_id: Option<u32>,
}

impl SpmVocabulary {
    /// The tokenizer: control and unused tokens are special (written in a text they are one
    /// token; skipped when decoding with `skip_special`); user-defined tokens (Gemma's runs of
    /// newlines, HTML tags) are matched whole in the raw text but decode as text.
    pub fn tokenizer(&self) -> Result<tokenizers::Tokenizer> {
        let n = self.pieces.len();
        if self.scores.len() != n || self.types.len() != n {
            bail!(
                "the vocabulary has {n} pieces but {} scores and {} token types \
                 (tokenizer.ggml.scores / tokenizer.ggml.token_type); the file is corrupt: \
                 delete it and fetch it again",
                self.scores.len(),
                self.types.len()
            );
        }
        let mut vocab = Vocab::with_capacity(n);
        for (id, piece) in self.pieces.iter().enumerate() {
            // SentencePiece keeps the first of repeated pieces.
            vocab.entry(piece.clone()).or_insert(id as u32);
        }
        if vocab.len() != n {
            bail!(
                "the vocabulary lists {} piece(s) twice (tokenizer.ggml.tokens); ids past the \
                 first copy could not be told apart",
                n - vocab.len()
            );
        }
        let mut builder = BPE::builder()
            .vocab_and_merges(vocab.clone(), self.merges(&vocab))
            .byte_fallback(true)
            .fuse_unk(true);
        if let Some(piece) = self.unknown_id.and_then(|id| self.pieces.get(id as usize)) {
            builder = builder.unk_token(piece.clone());
        }
        let bpe = builder
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the BPE model: {e}"))?;
        let mut tokenizer = tokenizers::Tokenizer::new(bpe);
        let prepend = if self.add_space_prefix {
            PrependScheme::First
        } else {
            PrependScheme::Never
        };
        // Not split on spaces: SentencePiece pieces span them ("▁and▁the").
        tokenizer.with_pre_tokenizer(Some(Metaspace::new(SPACE_MARK, prepend, false)));
        let mut decoders: Vec<DecoderWrapper> = vec![
            tokenizers::decoders::DecoderWrapper::Replace(
                Replace::new(SPACE_MARK.to_string(), " ")
                    .map_err(|e| anyhow::anyhow!("cannot build the decoder: {e}"))?,
            ),
            ByteFallback::new().into(),
            Fuse::new().into(),
        ];
        if self.add_space_prefix {
            decoders.push(Strip::new(' ', 1, 0).into());
        }
        tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
        let whole = |id: usize, special: bool| {
            AddedToken::from(self.pieces[id].clone(), special).normalized(false)
        };
        let special: Vec<AddedToken> = (0..n)
            .filter(|&i| matches!(self.types[i], TOKEN_TYPE_CONTROL | TOKEN_TYPE_UNUSED))
            .map(|i| whole(i, true))
            .collect();
        let user_defined: Vec<AddedToken> = (0..n)
            .filter(|&i| self.types[i] == TOKEN_TYPE_USER_DEFINED)
            .map(|i| whole(i, false))
            .collect();
        let add_failed = |e| anyhow::anyhow!("cannot add the vocabulary's whole tokens: {e}");
        tokenizer.add_special_tokens(special).map_err(add_failed)?;
        tokenizer.add_tokens(user_defined).map_err(add_failed)?;
        Ok(tokenizer)
    }

    /// Pieces a text can be segmented into (not control, unknown, unused or byte tokens).
    fn is_text(&self, id: u32) -> bool {
        matches!(
            self.types[id as usize],
            TOKEN_TYPE_NORMAL | TOKEN_TYPE_USER_DEFINED
        )
    }

    /// Every split of a text piece into two text pieces, highest merged score first; one merged
    /// piece's splits stay together, shortest left part first (transformers' order).
    fn merges(&self, vocab: &Vocab) -> Vec<(String, String)> {
        let mut ranked: Vec<(f32, u32, usize, &str, &str)> = Vec::new();
        for (id, piece) in self.pieces.iter().enumerate() {
            if !self.is_text(id as u32) {
                continue;
            }
            for (at, _) in piece.char_indices().skip(1) {
                let (left, right) = piece.split_at(at);
                let is_text_piece = |p: &str| vocab.get(p).is_some_and(|&i| self.is_text(i));
                if is_text_piece(left) && is_text_piece(right) {
                    ranked.push((self.scores[id], id as u32, at, left, right));
                }
            }
        }
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        ranked
            .into_iter()
            .map(|(_, _, _, l, r)| (l.to_string(), r.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::gguf::GgufFile;
    use crate::models::tokenizer::TextTokenizer;
    use candle_core::quantized::gguf_file::{self, Value};

    /// A hand-made SentencePiece vocabulary: Gemma's first special tokens, a user-defined
    /// newline, the 256 byte tokens, then text pieces with the given scores.
    fn vocabulary(text_pieces: &[(&str, f32)], add_space_prefix: bool) -> SpmVocabulary {
        let mut pieces = Vec::new();
        let mut scores = Vec::new();
        let mut types = Vec::new();
        let mut push = |piece: String, score: f32, kind: i32| {
            pieces.push(piece);
            scores.push(score);
            types.push(kind);
        };
        for special in ["<pad>", "<eos>", "<bos>"] {
            push(special.into(), -1000.0, TOKEN_TYPE_CONTROL);
        }
        push("<unk>".into(), -1000.0, TOKEN_TYPE_UNKNOWN);
        push("<start_of_turn>".into(), -1000.0, TOKEN_TYPE_CONTROL);
        push("<end_of_turn>".into(), -1000.0, TOKEN_TYPE_CONTROL);
        push("\n".into(), 0.0, TOKEN_TYPE_USER_DEFINED);
        for byte in 0..=255u8 {
            push(format!("<0x{byte:02X}>"), 0.0, TOKEN_TYPE_BYTE);
        }
        for (piece, score) in text_pieces {
            push(piece.to_string(), *score, TOKEN_TYPE_NORMAL);
        }
        SpmVocabulary {
            pieces,
            scores,
            types,
            add_space_prefix,
            unknown_id: Some(3),
        }
    }

    /// Id of the first text piece (after 7 specials and 256 bytes).
    const FIRST_TEXT_ID: u32 = 7 + 256;

    fn encode(vocabulary: &SpmVocabulary, text: &str) -> Vec<String> {
        let tokenizer = vocabulary.tokenizer().unwrap();
        let encoding = tokenizer.encode(text, false).unwrap();
        encoding.get_tokens().to_vec()
    }

    /// "▁", "a", "b", "c", then `extra`.
    fn letters<'a>(extra: &[(&'a str, f32)]) -> Vec<(&'a str, f32)> {
        let mut pieces = vec![("▁", -1.0), ("a", -2.0), ("b", -3.0), ("c", -4.0)];
        pieces.extend_from_slice(extra);
        pieces
    }

    #[test]
    fn the_highest_scoring_pair_merges_first_wherever_it_is() {
        // "bc" outscores "ab": SentencePiece merges b+c first, leaving "a" alone.
        let bc_first = vocabulary(&letters(&[("ab", -20.0), ("bc", -10.0)]), false);
        assert_eq!(encode(&bc_first, "abc"), ["a", "bc"]);
        let ab_first = vocabulary(&letters(&[("ab", -10.0), ("bc", -20.0)]), false);
        assert_eq!(encode(&ab_first, "abc"), ["ab", "c"]);
        // A three-letter piece is reached through either of its halves.
        let whole = vocabulary(
            &letters(&[("ab", -20.0), ("bc", -10.0), ("abc", -30.0)]),
            false,
        );
        assert_eq!(encode(&whole, "abcab"), ["abc", "ab"]);
    }

    #[test]
    fn spaces_become_the_space_mark_with_no_prefix_unless_asked() {
        let pieces = letters(&[("▁a", -5.0), ("▁▁", -6.0)]);
        let plain = vocabulary(&pieces, false);
        assert_eq!(encode(&plain, "a a"), ["a", "▁a"]);
        // "▁a" outscores "▁▁".
        assert_eq!(encode(&plain, "  a"), ["▁", "▁a"]);
        assert_eq!(encode(&plain, "  b"), ["▁▁", "b"]);
        let prefixed = vocabulary(&pieces, true);
        assert_eq!(encode(&prefixed, "a a"), ["▁a", "▁a"]);
        let tokenizer = prefixed.tokenizer().unwrap();
        let ids = tokenizer.encode("a a", false).unwrap().get_ids().to_vec();
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), "a a");
    }

    #[test]
    fn a_character_outside_the_vocabulary_falls_back_to_its_bytes() {
        let vocabulary = vocabulary(&letters(&[]), false);
        assert_eq!(encode(&vocabulary, "aé"), ["a", "<0xC3>", "<0xA9>"]);
        let tokenizer = vocabulary.tokenizer().unwrap();
        let ids = tokenizer.encode("aé", false).unwrap().get_ids().to_vec();
        assert_eq!(ids, [FIRST_TEXT_ID + 1, 7 + 0xC3, 7 + 0xA9]);
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), "aé");
    }

    #[test]
    fn control_tokens_stay_whole_and_only_they_are_skipped_in_decoding() {
        let vocabulary = vocabulary(&letters(&[("ab", -5.0)]), false);
        let tokenizer = vocabulary.tokenizer().unwrap();
        let text = "<start_of_turn>ab\nc<end_of_turn>";
        let encoding = tokenizer.encode(text, false).unwrap();
        assert_eq!(
            encoding.get_tokens(),
            ["<start_of_turn>", "ab", "\n", "c", "<end_of_turn>"]
        );
        assert_eq!(encoding.get_ids()[0], 4);
        let ids = encoding.get_ids().to_vec();
        assert_eq!(tokenizer.decode(&ids, false).unwrap(), text);
        assert_eq!(tokenizer.decode(&ids, true).unwrap(), "ab\nc");
    }

    #[test]
    fn mismatched_scores_are_reported_not_indexed_past() {
        let mut vocabulary = vocabulary(&letters(&[]), false);
        vocabulary.scores.pop();
        let err = vocabulary.tokenizer().unwrap_err().to_string();
        assert!(err.contains("tokenizer.ggml.scores"), "{err}");
    }

    /// A GGUF holding only the tokenizer metadata of `vocabulary`, as Gemma 3's file has it,
    /// less the keys in `drop`.
    fn write_gguf(
        vocabulary: &SpmVocabulary,
        path: &std::path::Path,
        drop: &[&str],
    ) -> anyhow::Result<()> {
        let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        let metadata = [
            ("tokenizer.ggml.model", Value::String("llama".into())),
            ("tokenizer.ggml.pre", Value::String("default".into())),
            ("tokenizer.ggml.tokens", strings(&vocabulary.pieces)),
            (
                "tokenizer.ggml.scores",
                Value::Array(vocabulary.scores.iter().map(|s| Value::F32(*s)).collect()),
            ),
            (
                "tokenizer.ggml.token_type",
                Value::Array(vocabulary.types.iter().map(|t| Value::I32(*t)).collect()),
            ),
            ("tokenizer.ggml.bos_token_id", Value::U32(2)),
            ("tokenizer.ggml.eos_token_id", Value::U32(1)),
            ("tokenizer.ggml.unknown_token_id", Value::U32(3)),
            ("tokenizer.ggml.padding_token_id", Value::U32(0)),
            ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
            ("tokenizer.ggml.add_space_prefix", Value::Bool(false)),
        ];
        let refs: Vec<(&str, &Value)> = metadata
            .iter()
            .filter(|(k, _)| !drop.contains(k))
            .map(|(k, v)| (*k, v))
            .collect();
        let mut file = std::fs::File::create(path)?;
        gguf_file::write(&mut file, &refs, &[])?;
        Ok(())
    }

    #[test]
    fn a_sentencepiece_gguf_loads_with_its_bos_eos_and_end_of_turn() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("spm.gguf");
        write_gguf(&vocabulary(&letters(&[("ab", -5.0)]), false), &path, &[])?;
        let tokenizer = TextTokenizer::from_gguf(&GgufFile::open(&path)?)?;
        assert_eq!(tokenizer.vocab_size(), 7 + 256 + 5);
        assert_eq!(tokenizer.bos_token.as_deref(), Some("<bos>"));
        assert_eq!(tokenizer.eos_token.as_deref(), Some("<eos>"));
        assert!(tokenizer.add_bos);
        assert_eq!(tokenizer.pad_id, 0);
        // <eos> and <end_of_turn> both end a generation.
        assert_eq!(tokenizer.eos_ids, [1, 5]);
        assert_eq!(
            tokenizer.encode("<bos>ab c")?,
            [2, FIRST_TEXT_ID + 4, FIRST_TEXT_ID, FIRST_TEXT_ID + 3]
        );
        Ok(())
    }
    /// llama-cpp-python 0.3.36 on a copy of Gemma 3's GGUF without the two keys: a BOS is
    /// added, and it is token 1.
    #[test]
    fn a_sentencepiece_gguf_naming_no_bos_gets_llama_cpp_defaults() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("spm.gguf");
        let drop = [
            "tokenizer.ggml.add_bos_token",
            "tokenizer.ggml.bos_token_id",
        ];
        write_gguf(&vocabulary(&letters(&[]), false), &path, &drop)?;
        let tokenizer = TextTokenizer::from_gguf(&GgufFile::open(&path)?)?;
        assert!(tokenizer.add_bos);
        assert_eq!(tokenizer.bos_id(), Some(1));
        assert_eq!(tokenizer.encode_prompt("a")?, [1, FIRST_TEXT_ID + 1]);
        Ok(())
    }
}
