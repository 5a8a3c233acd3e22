//! The embedding model against sentence-transformers: reference vectors computed once with
//! PyTorch (tests/data/embeddings/, see make_reference.py) must be matched with cosine
//! ≥ 0.999; batching must not change a vector; the tokenizer's edge cases (empty,
//! non-ASCII, longer than the 256-token limit) behave; and a swapped model file is refused.

#[path = "support/model.rs"]
mod model;

use model::{embedder, model_dir};
use pipewright::learn::model::{cosine, Embedder, ModelError, DIMENSIONS, MODEL_FILES};

#[derive(serde::Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    vector: Vec<f32>,
}

fn reference() -> Reference {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/embeddings/reference.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn vectors_match_sentence_transformers() {
    let Some(model) = embedder() else { return };
    let r = reference();
    assert!(r.cases.len() >= 5);
    let texts: Vec<&str> = r.cases.iter().map(|c| c.text.as_str()).collect();
    let batch = model.embed(&texts).unwrap();
    for (case, v) in r.cases.iter().zip(&batch) {
        assert_eq!(v.len(), DIMENSIONS);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit length, got {norm}");
        let c = cosine(v, &case.vector);
        assert!(
            c >= 0.999,
            "cosine {c} for {:?}",
            case.text.chars().take(40).collect::<String>()
        );
    }
    // Unrelated texts are far apart, related ones close: the vectors carry meaning.
    assert!(cosine(&batch[0], &batch[5]) < 0.5);
}

#[test]
fn batching_equals_one_by_one() {
    let Some(model) = embedder() else { return };
    let r = reference();
    let mut texts: Vec<String> = r.cases.iter().map(|c| c.text.clone()).collect();
    // More than one batch, of mixed lengths, so grouping and padding are exercised.
    for i in 0..70 {
        texts.push(format!(
            "files: script{i}.sh, README.md\nreadme: tool number {i} {}",
            "x ".repeat(i)
        ));
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = model.embed(&refs).unwrap();
    assert_eq!(batch.len(), texts.len());
    for (t, b) in refs.iter().zip(&batch) {
        let alone = model.embed(&[*t]).unwrap().remove(0);
        let max_diff = alone
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            max_diff < 1e-4,
            "batched vector differs by {max_diff} for {t:?}"
        );
    }
    assert!(model.embed(&[]).unwrap().is_empty());
}

#[test]
fn tokenizer_edge_cases() {
    let Some(model) = embedder() else { return };
    let long = "word ".repeat(2000);
    let longer = format!("{long} and then something entirely different about Kubernetes");
    let v = model
        .embed(&[
            "",
            "   ",
            "Ünïcödé 设置脚本 🚀 Привет",
            long.as_str(),
            longer.as_str(),
            "\u{0}\u{7}\u{feff}",
        ])
        .unwrap();
    for x in &v {
        assert_eq!(x.len(), DIMENSIONS);
        assert!(x.iter().all(|f| f.is_finite()), "no NaN (f32, not f16)");
    }
    // Everything past the 256-token limit is cut, as sentence-transformers cuts it.
    assert!(cosine(&v[3], &v[4]) > 0.99999, "{}", cosine(&v[3], &v[4]));
    // Empty and whitespace-only texts are both just [CLS] [SEP].
    assert!(cosine(&v[0], &v[1]) > 0.99999);
}

#[test]
fn a_swapped_or_missing_model_file_is_refused() {
    let Some(dir) = model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for (name, _) in MODEL_FILES {
        std::fs::copy(dir.join(name), tmp.path().join(name)).unwrap();
    }
    let mut config = std::fs::read_to_string(tmp.path().join("config.json")).unwrap();
    config = config.replace("384", "385");
    std::fs::write(tmp.path().join("config.json"), config).unwrap();
    match Embedder::load(tmp.path()) {
        Err(ModelError::HashMismatch { path, .. }) => assert!(path.ends_with("config.json")),
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    std::fs::remove_file(tmp.path().join("config.json")).unwrap();
    let err = Embedder::load(tmp.path()).unwrap_err();
    assert!(matches!(err, ModelError::Read { .. }), "{err}");
    assert!(err.to_string().contains("config.json"));
}

#[test]
fn the_model_hash_is_stable() {
    let Some(model) = embedder() else { return };
    assert_eq!(model.hash().len(), 16);
    assert_eq!(model.hash(), embedder().unwrap().hash());
}
