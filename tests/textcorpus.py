"""Made-up resident messages of three taxonomy categories (no dataset: words chosen by hand from
the category names of shared/data/taxonomy.yaml), for tests of the text model and of intake's
prediction: 100102 垃圾扰民 (urban_management), 100401 下水道堵塞 (housing), 200101 异味扰民
(ecology_environment)."""

from __future__ import annotations

import random

TOPICS = {
    "100102": ["垃圾", "垃圾桶", "清运", "堆放", "苍蝇", "满溢"],
    "100401": ["下水道", "堵塞", "污水", "井盖", "外溢", "管道"],
    "200101": ["异味", "刺鼻", "气味", "工厂", "排放", "熏人"],
}
FILLER = ["小区", "门口", "最近", "一直", "希望", "尽快", "处理", "我们", "附近", "居民"]


def corpus(n_per_class: int, seed: int = 7, topics: dict[str, list[str]] | None = None) -> tuple[list[str], list[str]]:
    """``n_per_class`` messages per topic: three topic words and four filler words, shuffled."""
    rng = random.Random(seed)
    texts, labels = [], []
    for code, words in (topics or TOPICS).items():
        for _ in range(n_per_class):
            parts = rng.sample(words, 3) + rng.sample(FILLER, 4)
            rng.shuffle(parts)
            texts.append("，".join(parts) + "。")
            labels.append(code)
    return texts, labels


def train_demo_model(path) -> str:
    """Train the three-topic model (no cross-validation) into ``path``; return its version."""
    from shared.platform import textmodel

    texts, labels = corpus(25)
    model = textmodel.train(texts, labels, sources=["tests/textcorpus.py"], folds=None)
    model.save(path)
    return model.version
