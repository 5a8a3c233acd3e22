"""The PyTorch side of `cargo bench --bench embed`: sentence-transformers (CPU, float32)
embedding the same texts, timed the same way. Prints one JSON object.

    python embed_pytorch.py MODEL_DIR TEXTS_JSON ROUNDS
"""

import json
import resource
import sys
import time

import torch
from sentence_transformers import SentenceTransformer, models


def per_text_ms(model, texts, batch, rounds):
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(0, len(texts), batch):
            model.encode(texts[i : i + batch], batch_size=batch, convert_to_numpy=True)
        best = min(best, (time.perf_counter() - start) * 1000 / len(texts))
    return best


def main() -> None:
    model_dir, texts_path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    texts = json.load(open(texts_path))
    start = time.perf_counter()
    bert = models.Transformer(model_dir, max_seq_length=256)
    pooling = models.Pooling(bert.get_word_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[bert, pooling, models.Normalize()], device="cpu")
    load_ms = (time.perf_counter() - start) * 1000
    model.encode(texts[:4])  # warm-up
    out = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_ms": load_ms,
        "batch1_ms_per_text": per_text_ms(model, texts, 1, rounds),
        "batch32_ms_per_text": per_text_ms(model, texts, 32, rounds),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
