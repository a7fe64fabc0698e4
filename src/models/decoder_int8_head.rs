//! The LM head of decoding steps, read as int8 with one scale per 32 weights when that form
//! holds the weights exactly.
//!
//! A decoding step multiplies one hidden state per sequence by the whole head, so it is
//! bound by reading the head: Gemma 3 270M's is 262,144 × 640, 671 MB in f32 per step, more
//! than its 18 layers together. GGUF files store the head (the tied embedding) as Q8_0,
//! where each weight is an f16 scale times an integer in −127..=127; dequantized to f32 these
//! are exact products, so the same weights fit in a quarter of the bytes. [`Int8Head::exact`]
//! recovers that form and refuses any head it would change by a single bit; the product then
//! multiplies the very same f32 weights (rebuilt as `q · scale` in registers) and differs
//! from the f32 head's only in the order of the sums.
use rayon::prelude::*;

/// Weights sharing one scale, along the hidden dimension (Q8_0's block).
pub const BLOCK: usize = 32;

/// The head `[vocab, hidden]` (rows are tokens) as `q · scale`.
#[derive(Debug)]
pub struct Int8Head {
    vocab: usize,
    hidden: usize,
    /// `[vocab, hidden]`, row-major.
    q: Vec<i8>,
    /// `[vocab, hidden / BLOCK]`: row `j`'s block `b` is `q[j, 32b..32b + 32] · scales[j, b]`.
    scales: Vec<f32>,
}

impl Int8Head {
    /// The int8 form of `weights` (`[vocab, hidden]`, row-major) if every block of 32 is
    /// exactly `scale · q` with `scale = max |w| / 127` and integer `q`; `None` otherwise (a
    /// head from safetensors or another quantization, or `hidden` not a multiple of 32).
    pub fn exact(weights: &[f32], vocab: usize, hidden: usize) -> Option<Self> {
        if hidden == 0 || !hidden.is_multiple_of(BLOCK) || weights.len() != vocab * hidden {
            return None;
        }
        let mut q = vec![0i8; vocab * hidden];
        let mut scales = vec![0f32; vocab * hidden / BLOCK];
        let exact = q
            .par_chunks_mut(BLOCK)
            .zip(scales.par_iter_mut())
            .zip(weights.par_chunks(BLOCK))
            .all(|((q, scale), w)| match block_of(w) {
                Some((s, ints)) => {
                    *scale = s;
                    q.copy_from_slice(&ints);
                    true
                }
                None => false,
            });
        exact.then_some(Self {
            vocab,
            hidden,
            q,
            scales,
        })
    }

    pub fn vocab(&self) -> usize {
        self.vocab
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Bytes held (weights and scales).
    pub fn bytes(&self) -> usize {
        self.q.len() + 4 * self.scales.len()
    }

    /// `y [rows, vocab] = x [rows, hidden] · headᵀ`, tokens split across rayon's threads.
    pub fn logits(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert_eq!(
            x.len(),
            rows * self.hidden,
            "Int8Head::logits: x is not [rows, hidden]"
        );
        let mut y = vec![0f32; rows * self.vocab];
        if rows == 0 || self.vocab == 0 {
            return y;
        }
        let out = SendPtr(y.as_mut_ptr());
        let chunks = self.vocab.div_ceil(CHUNK_TOKENS);
        (0..chunks).into_par_iter().for_each(|c| {
            let first = c * CHUNK_TOKENS;
            let tokens = CHUNK_TOKENS.min(self.vocab - first);
            // SAFETY: chunks write disjoint columns of `y`, which has `rows · vocab` entries.
            unsafe { self.chunk(x, rows, first, tokens, &out) };
        });
        y
    }

    /// Columns `first..first + tokens` of `y` for every row: row tiles pass over the chunk's
    /// weights while they sit in cache.
    unsafe fn chunk(&self, x: &[f32], rows: usize, first: usize, tokens: usize, y: &SendPtr) {
        let mut row = 0;
        while row < rows {
            let tile_rows = (rows - row).min(4);
            let args = TileArgs {
                x: x.as_ptr().add(row * self.hidden),
                q: self.q.as_ptr().add(first * self.hidden),
                scales: self.scales.as_ptr().add(first * self.hidden / BLOCK),
                y: y.0.add(row * self.vocab + first),
                hidden: self.hidden,
                vocab: self.vocab,
                tokens,
            };
            kernel::rows(tile_rows, &args);
            row += tile_rows;
        }
    }
}

/// Tokens per parallel task: 96 × 640 int8 weights (60 KB) stay in L2 while every row tile
/// passes; 96 is a multiple of every tile's width (8, 4, 3).
const CHUNK_TOKENS: usize = 96;

struct SendPtr(*mut f32);
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// One row tile over one chunk of tokens.
struct TileArgs {
    /// The tile's first row of `x`.
    x: *const f32,
    /// The chunk's first token's weights and scales.
    q: *const i8,
    scales: *const f32,
    /// `y` at (the tile's first row, the chunk's first token).
    y: *mut f32,
    hidden: usize,
    vocab: usize,
    tokens: usize,
}

/// `(scale, q)` with `w[i] == q[i] as f32 * scale` bit for bit, or `None`.
fn block_of(w: &[f32]) -> Option<(f32, [i8; BLOCK])> {
    let amax = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut ints = [0i8; BLOCK];
    if amax == 0.0 {
        // Negative zeros come back positive, which no sum can tell apart.
        return Some((0.0, ints));
    }
    if !amax.is_finite() {
        return None;
    }
    let scale = amax / 127.0;
    for (slot, &v) in ints.iter_mut().zip(w) {
        let q = (v / scale).round();
        if q.abs() > 127.0 || q * scale != v {
            return None;
        }
        *slot = q as i8;
    }
    Some((scale, ints))
}

mod kernel {
    use super::{TileArgs, BLOCK};

    /// `rows` (1..=4) rows of the tile over all its tokens.
    pub(super) unsafe fn rows(rows: usize, a: &TileArgs) {
        #[cfg(target_arch = "x86_64")]
        if avx2() {
            return match rows {
                1 => avx2_tiles::<1, 8>(a),
                2 => avx2_tiles::<2, 4>(a),
                3 => avx2_tiles::<3, 4>(a),
                _ => avx2_tiles::<4, 3>(a),
            };
        }
        portable(rows, a)
    }

    #[cfg(target_arch = "x86_64")]
    fn avx2() -> bool {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }

    /// Any CPU: one weight at a time, rebuilt as `q · scale` like the vector kernel.
    unsafe fn portable(rows: usize, a: &TileArgs) {
        let blocks = a.hidden / BLOCK;
        for t in 0..a.tokens {
            for r in 0..rows {
                let mut acc = 0f32;
                for p in 0..a.hidden {
                    let w =
                        *a.q.add(t * a.hidden + p) as f32 * *a.scales.add(t * blocks + p / BLOCK);
                    acc += *a.x.add(r * a.hidden + p) * w;
                }
                *a.y.add(r * a.vocab + t) = acc;
            }
        }
    }

    /// Tiles of `R` rows × `T` tokens, then single tokens for the chunk's remainder.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_tiles<const R: usize, const T: usize>(a: &TileArgs) {
        let mut t = 0;
        while t + T <= a.tokens {
            avx2_tile::<R, T>(a, t);
            t += T;
        }
        while t < a.tokens {
            avx2_tile::<R, 1>(a, t);
            t += 1;
        }
    }

    /// `R × T` entries of `y` (tokens `t0..t0 + T`) over the whole hidden dimension, eight
    /// lanes of partial sums each: weights are widened from int8 and scaled (exactly) once,
    /// then multiplied into every row.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_tile<const R: usize, const T: usize>(a: &TileArgs, t0: usize) {
        use std::arch::x86_64::*;
        let (k, blocks) = (a.hidden, a.hidden / BLOCK);
        let mut acc = [[_mm256_setzero_ps(); T]; R];
        for b in 0..blocks {
            for v in 0..BLOCK / 8 {
                let p = b * BLOCK + v * 8;
                let mut w = [_mm256_setzero_ps(); T];
                for (t, slot) in w.iter_mut().enumerate() {
                    let token = t0 + t;
                    let bytes = _mm_loadl_epi64(a.q.add(token * k + p) as *const __m128i);
                    let ints = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
                    let scale = _mm256_broadcast_ss(&*a.scales.add(token * blocks + b));
                    *slot = _mm256_mul_ps(ints, scale);
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let xv = _mm256_loadu_ps(a.x.add(r * k + p));
                    for (acc, w) in row.iter_mut().zip(&w) {
                        *acc = _mm256_fmadd_ps(xv, *w, *acc);
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (t, v) in row.iter().enumerate() {
                *a.y.add(r * a.vocab + t0 + t) = horizontal_sum(*v);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn horizontal_sum(v: std::arch::x86_64::__m256) -> f32 {
        use std::arch::x86_64::*;
        let four = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
        let one = _mm_add_ss(two, _mm_shuffle_ps(two, two, 1));
        _mm_cvtss_f32(one)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A Q8_0-style head: f16 scales times integers, as GGUF dequantization produces.
    fn q8_head(vocab: usize, hidden: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut w = Vec::with_capacity(vocab * hidden);
        for _ in 0..vocab * hidden / BLOCK {
            let d = half_round(rng.random_range(1e-4f32..0.05));
            let mut ints: Vec<i32> = (0..BLOCK).map(|_| rng.random_range(-127..=127)).collect();
            ints[rng.random_range(0..BLOCK)] = if rng.random::<bool>() { 127 } else { -127 };
            w.extend(ints.iter().map(|&q| q as f32 * d));
        }
        w
    }

    /// `x` rounded to the nearest f16 (11 significant bits), as Q8_0 stores its scales.
    fn half_round(x: f32) -> f32 {
        let bits = x.to_bits();
        f32::from_bits((bits + (1 << 12)) & !((1 << 13) - 1))
    }

    fn naive(x: &[f32], w: &[f32], rows: usize, vocab: usize, hidden: usize) -> Vec<f32> {
        let mut y = vec![0f32; rows * vocab];
        for r in 0..rows {
            for j in 0..vocab {
                let dot: f64 = (0..hidden)
                    .map(|p| x[r * hidden + p] as f64 * w[j * hidden + p] as f64)
                    .sum();
                y[r * vocab + j] = dot as f32;
            }
        }
        y
    }

    #[test]
    fn a_q8_head_is_held_exactly_and_multiplies_like_the_f32_head() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        // 211 tokens: two chunks and a tail past every tile width; rows cover each tile
        // height and a second tile.
        let (vocab, hidden) = (211, 96);
        let w = q8_head(vocab, hidden, 1);
        let head = Int8Head::exact(&w, vocab, hidden).expect("a Q8_0 head is exact");
        assert_eq!(head.bytes(), vocab * hidden + 4 * vocab * hidden / BLOCK);
        for rows in 1..=9 {
            let x: Vec<f32> = (0..rows * hidden)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let want = naive(&x, &w, rows, vocab, hidden);
            for (i, (g, e)) in head.logits(&x, rows).iter().zip(&want).enumerate() {
                assert!(
                    (g - e).abs() <= 1e-5,
                    "rows {rows}: y[{i}] = {g}, expected {e}"
                );
            }
        }
    }

    #[test]
    fn a_head_that_int8_would_change_is_refused() {
        let w = q8_head(4, 64, 2);
        // One weight off the block's grid, one block with a non-finite weight, and a hidden
        // size that is not a multiple of the block.
        let mut off = w.clone();
        off[40] = f32::from_bits(off[40].to_bits() + 1);
        assert!(Int8Head::exact(&off, 4, 64).is_none());
        let mut nan = w.clone();
        nan[3] = f32::NAN;
        assert!(Int8Head::exact(&nan, 4, 64).is_none());
        assert!(Int8Head::exact(&w[..4 * 48], 4, 48).is_none());
        // A block of zeros is exact (scale 0).
        let mut zeros = w;
        zeros[..BLOCK].fill(0.0);
        assert!(Int8Head::exact(&zeros, 4, 64).is_some());
    }
}
