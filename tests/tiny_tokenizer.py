"""A byte-level BPE tokenizer trained in a second on a small corpus: no model hub needed."""

from __future__ import annotations

from functools import lru_cache

CORPUS = [
    "<think>The lungs look clear.</think> The answer is \\boxed{No Finding}.",
    "<answer>Pleural Effusion, Edema</answer> melanoma nevus carcinoma keratosis pneumonia",
    "Which conditions are present in this chest X-ray? Answer with the diagnosis.",
]


@lru_cache(maxsize=1)
def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(CORPUS * 20, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="<eos>")
