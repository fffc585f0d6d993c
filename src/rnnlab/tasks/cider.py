"""CIDEr-D (Vedantam, Zitnick and Parikh 2015, CIDEr: Consensus-based Image Description Evaluation): how much a
caption says what the image's references say, weighting each n-gram by how rare it is across the images.

The variant is the reference code's CIDEr-D with document frequencies from the scored references ("corpus" mode):
coco-caption's `CiderD` (vrama91/cider, pyciderevalcap/ciderD), which is also what pycocoevalcap 1.2's class `Cider`
computes (it has CIDEr-D's clipping and length penalty; tested equal on a fixed corpus). For image i with
candidate c and references s_1 .. s_m, n-grams ω of n = 1..4 words:

    h_ω(x)       how often ω occurs in sentence x
    g_ω(x)       = h_ω(x) · log(|I| / max(1, df(ω)))    tf-idf: |I| images scored, df(ω) of them have ω in a reference
    cos⁺(c, s)   = Σ_ω min(g_ω(c), g_ω(s)) g_ω(s) / (‖g^n(c)‖ ‖g^n(s)‖)    over the n-grams ω of n words
    CIDEr-D_n    = (10 / m) Σ_j exp(−(l(c) − l(s_j))² / (2σ²)) · cos⁺(c, s_j)
    CIDEr-D      = (1/4) Σ_n CIDEr-D_n;   the corpus score is the mean over images

with l the length in words and σ = 6. Unlike CIDEr, a candidate's count of an n-gram is clipped to the reference's
(repeating a rare word gains nothing) and a length unlike the reference's is penalised: the "D" (defended against
gaming). A cosine is 0 where either vector is 0 (an empty candidate, a reference shorter than n words). Since the
idf is the scored references' own, one image alone scores 0 (every n-gram is in all of |I| = 1 documents).

Sentences are split as coco-caption's Java PTBTokenizer leaves them for CIDEr, lowercased and without punctuation,
here by sacreBLEU's 13a tokenizer (`coco_words`), so that no Java is needed.

Ported rather than imported: pycocoevalcap 1.2 is a 104 MB wheel (it ships Stanford CoreNLP and SPICE, which need
Java) that pulls in pycocotools, for the forty lines below.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Sequence

N, SIGMA = 4, 6.0
CIDER_D_SIGNATURE = f"CiderD|n:{N}|sigma:{SIGMA:g}|idf:corpus|tok:13a,lowercase,no-punct"  # what was computed
NGrams = list[Counter]  # per n = 1..N, each n-gram's count h_ω
Weights = list[dict[tuple[str, ...], float]]  # per n, each n-gram's tf-idf g_ω


@functools.cache
def _tokenizer_13a():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def coco_words(text: str) -> list[str]:
    """The words of a caption, lowercased, punctuation dropped: "A dog, running." → [a, dog, running]."""
    return [token for token in _tokenizer_13a()(text.lower()).split() if any(ch.isalnum() for ch in token)]


def ngrams(words: Sequence[str]) -> NGrams:
    """h(x): per n = 1..N, the count of each n-gram of the words."""
    return [Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1)) for n in range(1, N + 1)]


def cider_d_per_image(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """CIDEr-D of each hypothesis against its image's references (same order, one or more each), the document
    frequencies from all these references; on coco-caption's scale (at most 10 per image)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses and {len(references)} reference lists: one list per image")
    if not all(references):
        raise ValueError("every image needs at least one reference caption")
    candidates = [coco_words(hypothesis) for hypothesis in hypotheses]
    reference_words = [[coco_words(reference) for reference in image_references] for image_references in references]
    reference_ngrams = [[ngrams(words) for words in image_references] for image_references in reference_words]
    document_frequency = Counter(ngram for image_ngrams in reference_ngrams
                                 for ngram in {ngram for counts in image_ngrams for by_n in counts for ngram in by_n})
    log_images = math.log(max(len(hypotheses), 1))

    def tf_idf(counts: NGrams) -> Weights:
        return [{ngram: h * (log_images - math.log(max(1, document_frequency[ngram]))) for ngram, h in by_n.items()}
                for by_n in counts]

    scores = []
    for candidate, image_references, image_ngrams in zip(candidates, reference_words, reference_ngrams):
        g_c = tf_idf(ngrams(candidate))
        total = 0.0
        for words, counts in zip(image_references, image_ngrams):
            g_s = tf_idf(counts)
            # the reference code counts bigrams as the length: the same difference wherever neither side is empty,
            # and an empty side scores 0 either way
            penalty = math.exp(-(len(candidate) - len(words)) ** 2 / (2 * SIGMA**2))
            total += penalty * sum(clipped_cosine(g_c[n], g_s[n]) for n in range(N)) / N
        scores.append(10 * total / len(image_references))
    return scores


def clipped_cosine(g_c: dict, g_s: dict) -> float:
    """Σ_ω min(g_ω(c), g_ω(s)) g_ω(s) / (‖g(c)‖ ‖g(s)‖), 0 where either vector is 0."""
    norms = math.sqrt(sum(w * w for w in g_c.values()) * sum(w * w for w in g_s.values()))
    if norms == 0:
        return 0.0
    return sum(min(weight, g_s.get(ngram, 0.0)) * g_s.get(ngram, 0.0) for ngram, weight in g_c.items()) / norms
