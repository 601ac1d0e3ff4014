"""``transformers`` narrator on a tiny local Llama written to a folder in the test (no download).
The final norm is zeroed so every logit is 0 and greedy decoding always picks token 0 ("hand"):
the expected answer is known exactly."""
from __future__ import annotations

import pytest
import torch

from egohod.hod.narrators import NarrationRequest, Validation, create_narrator


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["hand"] + ["<pad>", "<s>", "</s>", "<unk>"] + "the right left moves cup C picks up".split()
    tk = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix="##")
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                  unk_token="<unk>")
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                      bos_token_id=2, eos_token_id=3, pad_token_id=1)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    d = tmp_path_factory.mktemp("tiny_lm")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_batched_greedy_generation_is_validated(tiny_lm):
    nar = create_narrator("transformers", validation=Validation(min_chars=8, max_chars=200), model_dir=str(tiny_lm),
                          max_new_tokens=6, device="cpu", batch_size=2)
    reqs = [NarrationRequest("a", "#C C picks up the cup", {"events": ["right hand: moves up"]}, 1.0),
            NarrationRequest("b", "#C C puts it down", {"events": []}, 2.5),
            NarrationRequest("c", "#C C waits", {"events": []}, 0.5)]
    prompt = nar.prompt(reqs[0])
    assert prompt.startswith("system: You rewrite") and "user: Narration: C picks up the cup" in prompt
    assert prompt.endswith("assistant: ") and "- right hand: moves up" in prompt
    res = nar.narrate_batch(reqs)  # two generate() calls: 2 + 1 prompts of different lengths (left padding)
    assert [r.texts for r in res] == [["hand hand hand hand hand hand"]] * 3
    short = create_narrator("transformers", validation=Validation(min_chars=8), model_dir=str(tiny_lm),
                            max_new_tokens=1, device="cpu")
    [r] = short.narrate_batch(reqs[:1])
    assert not r.ok and r.error == "invalid answer: line 1 too short (4 < 8 chars)" and r.raw == "hand"


def test_missing_model_dir(tmp_path):
    with pytest.raises(ValueError, match="narrator.model_dir"):
        create_narrator("transformers", model_dir=str(tmp_path / "none"))
