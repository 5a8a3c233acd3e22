//! The BERT encoder behind all-MiniLM-L6-v2, written for inference on the CPU only.
//!
//! candle-transformers' `BertModel` pads every batch to its longest text and masks the
//! padding inside each attention, and runs bias, residual, GELU and softmax as separate
//! passes with a fresh tensor each (GELU on one thread, through libm's erff). Here texts
//! are packed one after the other without padding: every per-token step (the dense
//! layers, GELU, layer norms) runs once over all real tokens of the batch, and attention
//! runs per text over its own tokens, so there is no mask and no wasted work. The query,
//! key and value projections are one matmul (weights concatenated at load, the 1/√d scale
//! folded into the query); bias + GELU, softmax and bias + residual + layer norm are
//! fused passes written in place into the matmul's output, split over threads when
//! large.
//!
//! Weights keep their safetensors names (`embeddings.*`, `encoder.layer.N.*`), so the
//! same file loads.

use std::collections::HashMap;
use std::sync::OnceLock;

use candle_core::{CpuStorage, DType, Device, InplaceOp1, InplaceOp2, Layout, Result, Tensor};
use serde::Deserialize;

/// The part of the model's config.json this encoder reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width of every token vector.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Longest sequence the position embeddings cover.
    pub max_position_embeddings: usize,
    /// Token types (segments).
    pub type_vocab_size: usize,
    /// Epsilon of every layer norm.
    pub layer_norm_eps: f64,
    /// The activation; only `gelu` (the erf form) is implemented.
    pub hidden_act: String,
    /// The padding token's id.
    #[serde(default)]
    pub pad_token_id: usize,
}

/// The safetensors' tensors by name, taken out one by one while the model is built so a
/// weight is never held twice for long.
pub type Weights = HashMap<String, Tensor>;

/// A loaded encoder.
pub struct Bert {
    word: Tensor,
    position: Tensor,
    /// Token type 0's embedding: every text is a single segment.
    segment: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    max_positions: usize,
}

/// Layer norm parameters.
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

struct Layer {
    /// (hidden, 3 × hidden): query (pre-scaled by 1/√d), key and value side by side.
    qkv_w: Tensor,
    qkv_b: Vec<f32>,
    out_w: Tensor,
    out_b: Vec<f32>,
    attn_norm: Norm,
    up_w: Tensor,
    up_b: Vec<f32>,
    down_w: Tensor,
    down_b: Vec<f32>,
    out_norm: Norm,
}

fn take(weights: &mut Weights, name: &str, dims: &[usize]) -> Result<Tensor> {
    let t = weights
        .remove(name)
        .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))?;
    if t.dims() != dims || t.dtype() != DType::F32 {
        candle_core::bail!(
            "tensor {name} is {:?} {:?}, expected F32 {dims:?}",
            t.dtype(),
            t.dims()
        );
    }
    Ok(t)
}

fn take_vec(weights: &mut Weights, name: &str, len: usize) -> Result<Vec<f32>> {
    take(weights, name, &[len])?.to_vec1()
}

/// A dense layer's weight, stored (out, in) in the file, transposed once so every
/// matmul reads its right-hand side row-major.
fn take_dense(weights: &mut Weights, name: &str, out: usize, inp: usize) -> Result<Tensor> {
    take(weights, name, &[out, inp])?.t()?.contiguous()
}

fn take_norm(weights: &mut Weights, prefix: &str, len: usize, eps: f32) -> Result<Norm> {
    Ok(Norm {
        gamma: take_vec(weights, &format!("{prefix}.weight"), len)?,
        beta: take_vec(weights, &format!("{prefix}.bias"), len)?,
        eps,
    })
}

impl Bert {
    /// Builds the encoder from `weights` (consumed: tensors not needed are dropped).
    pub fn load(mut weights: Weights, config: &Config) -> Result<Bert> {
        if config.hidden_act != "gelu" {
            candle_core::bail!("activation {} is not supported", config.hidden_act);
        }
        let (h, inter) = (config.hidden_size, config.intermediate_size);
        let heads = config.num_attention_heads;
        if heads == 0 || h % heads != 0 {
            candle_core::bail!("{h} is not divisible into {heads} heads");
        }
        let eps = config.layer_norm_eps as f32;
        let w = &mut weights;
        let word = take(
            w,
            "embeddings.word_embeddings.weight",
            &[config.vocab_size, h],
        )?;
        let position = take(
            w,
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let segment = take(
            w,
            "embeddings.token_type_embeddings.weight",
            &[config.type_vocab_size, h],
        )?
        .get(0)?
        .to_vec1()?;
        let embed_norm = take_norm(w, "embeddings.LayerNorm", h, eps)?;
        let scale = 1.0 / ((h / heads) as f64).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let a = format!("{p}.attention.self");
            let q = (take_dense(w, &format!("{a}.query.weight"), h, h)? * scale)?;
            let k = take_dense(w, &format!("{a}.key.weight"), h, h)?;
            let v = take_dense(w, &format!("{a}.value.weight"), h, h)?;
            let qkv_w = Tensor::cat(&[q, k, v], 1)?;
            let mut qkv_b: Vec<f32> = take_vec(w, &format!("{a}.query.bias"), h)?
                .into_iter()
                .map(|b| (b as f64 * scale) as f32)
                .collect();
            qkv_b.extend(take_vec(w, &format!("{a}.key.bias"), h)?);
            qkv_b.extend(take_vec(w, &format!("{a}.value.bias"), h)?);
            layers.push(Layer {
                qkv_w,
                qkv_b,
                out_w: take_dense(w, &format!("{p}.attention.output.dense.weight"), h, h)?,
                out_b: take_vec(w, &format!("{p}.attention.output.dense.bias"), h)?,
                attn_norm: take_norm(w, &format!("{p}.attention.output.LayerNorm"), h, eps)?,
                up_w: take_dense(w, &format!("{p}.intermediate.dense.weight"), inter, h)?,
                up_b: take_vec(w, &format!("{p}.intermediate.dense.bias"), inter)?,
                down_w: take_dense(w, &format!("{p}.output.dense.weight"), h, inter)?,
                down_b: take_vec(w, &format!("{p}.output.dense.bias"), h)?,
                out_norm: take_norm(w, &format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        Ok(Bert {
            word,
            position,
            segment,
            embed_norm,
            layers,
            heads,
            max_positions: config.max_position_embeddings,
        })
    }

    /// The last layer's token vectors of `texts` (token ids, `[CLS]` and `[SEP]`
    /// included, none empty), packed: the rows of text 0, then those of text 1, … —
    /// (total tokens, hidden), row-major.
    pub fn forward(&self, texts: &[&[u32]]) -> Result<Vec<f32>> {
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        let mut spans = Vec::with_capacity(texts.len());
        for t in texts {
            if t.is_empty() || t.len() > self.max_positions {
                candle_core::bail!("a text of {} tokens", t.len());
            }
            spans.push((ids.len(), t.len()));
            ids.extend_from_slice(t);
            positions.extend(0..t.len() as u32);
        }
        let tokens = ids.len();
        let ids = Tensor::from_vec(ids, tokens, &Device::Cpu)?;
        let positions = Tensor::from_vec(positions, tokens, &Device::Cpu)?;
        // index_select makes fresh tensors, which the fused norm then overwrites.
        let x = self.word.index_select(&ids, 0)?;
        let pos = self.position.index_select(&positions, 0)?;
        x.inplace_op2(
            &pos,
            &BiasResidualNorm {
                bias: &self.segment,
                norm: &self.embed_norm,
            },
        )?;
        let mut x = x;
        for layer in &self.layers {
            x = layer.forward(&x, &spans, self.heads)?;
        }
        x.flatten_all()?.to_vec1()
    }
}

impl Layer {
    fn forward(&self, x: &Tensor, spans: &[(usize, usize)], heads: usize) -> Result<Tensor> {
        let (tokens, hidden) = x.dims2()?;
        let d = hidden / heads;
        let qkv = x.matmul(&self.qkv_w)?;
        qkv.inplace_op1(&Bias(&self.qkv_b))?;
        let qkv = qkv.reshape((tokens, 3, heads, d))?;
        // Per text, strided views into qkv serve as (heads, len, d) operands directly:
        // the matmul reads any row stride, so q, k and v are never copied out.
        let mut parts = Vec::with_capacity(spans.len());
        for &(start, len) in spans {
            let s = qkv.narrow(0, start, len)?;
            let head =
                |i: usize| -> Result<Tensor> { s.narrow(1, i, 1)?.squeeze(1)?.transpose(0, 1) };
            let (q, k, v) = (head(0)?, head(1)?, head(2)?);
            let scores = q.matmul(&k.t()?)?;
            scores.inplace_op1(&Softmax)?;
            parts.push(scores.matmul(&v)?.transpose(0, 1)?);
        }
        let context = if parts.len() == 1 {
            parts.pop().expect("one part").contiguous()?
        } else {
            Tensor::cat(&parts, 0)?
        }
        .reshape((tokens, hidden))?;
        drop(parts);
        let attn = context.matmul(&self.out_w)?;
        attn.inplace_op2(
            x,
            &BiasResidualNorm {
                bias: &self.out_b,
                norm: &self.attn_norm,
            },
        )?;
        let up = attn.matmul(&self.up_w)?;
        up.inplace_op1(&BiasGelu(&self.up_b))?;
        let down = up.matmul(&self.down_w)?;
        drop(up);
        down.inplace_op2(
            &attn,
            &BiasResidualNorm {
                bias: &self.down_b,
                norm: &self.out_norm,
            },
        )?;
        Ok(down)
    }
}

/// Elements below which a pass stays on the calling thread: starting a thread costs
/// more than the work.
const PARALLEL_MIN: usize = 1 << 15;

/// Threads for the elementwise passes: candle's count (what its matmul uses), asked
/// once — `candle_core::utils::get_num_threads` re-reads /proc/cpuinfo on every call.
fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| candle_core::utils::get_num_threads().max(1))
}

/// Runs `f` over row-aligned chunks of `dst` (and the matching chunks of `src`, when
/// given), split over [`threads`] scoped threads when the pass is large. Scoped threads
/// rather than candle's spinning barrier pool: with another process on the cores, a
/// spinning waiter whose partner is descheduled made batch 1 several times slower.
fn par_rows(
    dst: &mut [f32],
    src: Option<&[f32]>,
    row: usize,
    f: impl Fn(&mut [f32], Option<&[f32]>) + Sync,
) {
    let threads = threads();
    let rows = dst.len() / row;
    if threads == 1 || dst.len() < PARALLEL_MIN || rows < 2 {
        f(dst, src);
        return;
    }
    let per = rows.div_ceil(threads) * row;
    std::thread::scope(|scope| {
        let f = &f;
        let mut chunks = dst.chunks_mut(per).enumerate();
        let first = chunks.next();
        for (i, chunk) in chunks {
            let s = src.map(|s| &s[i * per..i * per + chunk.len()]);
            scope.spawn(move || f(chunk, s));
        }
        if let Some((_, chunk)) = first {
            let s = src.map(|s| &s[..chunk.len()]);
            f(chunk, s);
        }
    });
}

fn contiguous_f32<'a>(s: &'a mut CpuStorage, l: &Layout, op: &str) -> Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("{op}: expected a contiguous f32 tensor"),
    }
}

/// Adds a bias to every row, in place.
struct Bias<'a>(&'a [f32]);

impl InplaceOp1 for Bias<'_> {
    fn name(&self) -> &'static str {
        "bias"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let dst = contiguous_f32(s, l, "bias")?;
        let bias = self.0;
        par_rows(dst, None, bias.len(), |dst, _| {
            for row in dst.chunks_exact_mut(bias.len()) {
                for (x, b) in row.iter_mut().zip(bias) {
                    *x += b;
                }
            }
        });
        Ok(())
    }
}

/// Adds a bias to every row, then GELU (the erf form), in place.
struct BiasGelu<'a>(&'a [f32]);

impl InplaceOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let dst = contiguous_f32(s, l, "bias-gelu")?;
        let bias = self.0;
        par_rows(dst, None, bias.len(), |dst, _| {
            for row in dst.chunks_exact_mut(bias.len()) {
                for (x, b) in row.iter_mut().zip(bias) {
                    *x = gelu(*x + b);
                }
            }
        });
        Ok(())
    }
}

/// Softmax over the last dimension, in place, with the vectorised exp below (candle's
/// softmax calls libm's expf per element).
struct Softmax;

impl InplaceOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let width = *l.dims().last().unwrap_or(&1);
        let dst = contiguous_f32(s, l, "softmax")?;
        par_rows(dst, None, width, |dst, _| {
            for row in dst.chunks_exact_mut(width) {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x));
                let mut sum = 0f32;
                for x in row.iter_mut() {
                    *x = exp_neg(*x - max);
                    sum += *x;
                }
                let inv = 1.0 / sum;
                row.iter_mut().for_each(|x| *x *= inv);
            }
        });
        Ok(())
    }
}

/// `dst = layer_norm(dst + bias + residual)` per row, in place: a dense layer's output
/// back onto the residual stream in one pass.
struct BiasResidualNorm<'a> {
    bias: &'a [f32],
    norm: &'a Norm,
}

impl InplaceOp2 for BiasResidualNorm<'_> {
    fn name(&self) -> &'static str {
        "bias-residual-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let dst = contiguous_f32(s1, l1, "bias-residual-norm")?;
        let residual = match (s2, l2.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) if b - a == dst.len() => &v[a..b],
            _ => candle_core::bail!("bias-residual-norm: residual of another shape"),
        };
        let (bias, n) = (self.bias, self.norm);
        let width = bias.len();
        par_rows(dst, Some(residual), width, |dst, res| {
            let res = res.expect("a residual");
            for (row, r) in dst.chunks_exact_mut(width).zip(res.chunks_exact(width)) {
                let mut sum = 0f32;
                for ((x, r), b) in row.iter_mut().zip(r).zip(bias) {
                    *x += r + b;
                    sum += *x;
                }
                let mean = sum / width as f32;
                let mut var = 0f32;
                for x in row.iter_mut() {
                    *x -= mean;
                    var += *x * *x;
                }
                let inv = 1.0 / (var / width as f32 + n.eps).sqrt();
                for ((x, g), b) in row.iter_mut().zip(&n.gamma).zip(&n.beta) {
                    *x = *x * inv * g + b;
                }
            }
        });
        Ok(())
    }
}

/// GELU, `x/2 · (1 + erf(x/√2))`, with erf from Abramowitz & Stegun 7.1.26 (absolute
/// error ≤ 1.5e-7, what PyTorch's vectorised CPU erf uses too) and a branch-free exp, so
/// the loop over a row vectorises; libm's erff is scalar and was the slowest step.
#[inline(always)]
fn gelu(x: f32) -> f32 {
    let z = x * std::f32::consts::FRAC_1_SQRT_2;
    let a = z.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_8) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    let erf_abs = 1.0 - poly * exp_neg(-a * a);
    0.5 * x * (1.0 + erf_abs.copysign(z))
}

/// e^x for x ≤ 0 (Cephes' expf polynomial, relative error ≈ 1e-7), flushing below
/// e^-87 to that value; branch-free so it vectorises.
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 × 2^23: adding it rounds to an integer
    let x = x.max(-87.0);
    let shifted = x * std::f32::consts::LOG2_E + MAGIC;
    let n = shifted - MAGIC;
    let n_int = shifted.to_bits() as i32 - MAGIC.to_bits() as i32;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let y = p * r * r + r + 1.0;
    y * f32::from_bits(((n_int + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gelu_matches_the_erf_definition() {
        let mut worst = 0f64;
        for i in -20_000..=20_000 {
            let x = i as f32 / 1000.0;
            let exact = 0.5 * x as f64 * (1.0 + libm_erf(x as f64 / std::f64::consts::SQRT_2));
            worst = worst.max((gelu(x) as f64 - exact).abs() / (1.0 + exact.abs()));
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
    }

    #[test]
    fn exp_neg_is_accurate() {
        for i in 0..=8_700 {
            let x = -(i as f32) / 100.0;
            let (got, want) = (exp_neg(x) as f64, (x as f64).exp());
            assert!((got - want).abs() <= want * 3e-7, "{x}: {got} vs {want}");
        }
    }

    /// erf in f64 by its Taylor series and continued fraction (test oracle only).
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let v = if a < 3.0 {
            let (mut term, mut sum, mut n) = (a, a, 0.0);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -a * a / n;
                sum += term / (2.0 * n + 1.0);
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc continued fraction
            let mut f = 0.0;
            for k in (1..60).rev() {
                f = (k as f64 / 2.0) / (a + f);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
        };
        v.copysign(x)
    }
}
