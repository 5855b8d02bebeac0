"""The generation facet on GPT-2: KV cache, generate() vs Hugging Face, sampling filters."""

import copy

import pytest
import torch

transformers = pytest.importorskip("transformers")

SMALL = dict(vocab_size=101, n_positions=48, n_embd=64, n_head=4, n_layer=2)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models step token by token: extra threads only wait on each other (on a busy
    machine, seconds per call)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=[0, 1], ids=["O0", "O1"])
def pair(request, compiled):
    """Generated GPT-2 and HF GPT2LMHeadModel with the same random weights."""
    gpt2 = compiled("gpt2", request.param)
    torch.manual_seed(0)
    ref = transformers.GPT2LMHeadModel(transformers.GPT2Config(**SMALL)).eval()
    ours = gpt2.Model(gpt2.Config(**SMALL)).eval()
    ours.load_state_dict(gpt2.convert_state_dict(ref.state_dict(), "hf"))
    return gpt2, ours, ref


def _prompt(batch=3, length=5, seed=1):
    return torch.randint(0, SMALL["vocab_size"], (batch, length),
                         generator=torch.Generator().manual_seed(seed))


def test_cached_logits_equal_full_forward_at_every_step(pair):
    gpt2, ours, _ = pair
    ids = _prompt(length=12)
    with torch.no_grad():
        full = ours(ids)
        cache = gpt2.KVCache()
        steps = [ours(ids[:, :4], cache=cache)]
        steps += [ours(ids[:, t:t + 1], cache=cache) for t in range(4, ids.shape[1])]
    assert cache.length == ids.shape[1]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_cache_grows_by_doubling_and_writes_steps_in_place(pair):
    """Past the prompt, each step writes one row; the buffers double when full, so 40 steps
    after a 3-token prompt reallocate 4 times (3 -> 6 -> 12 -> 24 -> 48), not 40."""
    gpt2, ours, _ = pair
    ids = _prompt(length=43)
    cache, buffers = gpt2.KVCache(), set()
    with torch.no_grad():
        full = ours(ids)
        steps = [ours(ids[:, :3], cache=cache)]
        for t in range(3, ids.shape[1]):
            steps.append(ours(ids[:, t:t + 1], cache=cache))
            keys, _, filled = next(iter(cache.kv.values()))
            buffers.add((keys.data_ptr(), keys.shape[-2]))
            assert filled == t + 1 <= keys.shape[-2]
    assert sorted(size for _, size in buffers) == [6, 12, 24, 48]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_cache_refuses_several_new_positions_after_the_first_call(pair):
    gpt2, ours, _ = pair
    cache = gpt2.KVCache()
    with torch.no_grad():
        ours(_prompt(), cache=cache)
        with pytest.raises(ValueError, match="one new position per call"):
            ours(_prompt(length=2), cache=cache)


def test_greedy_matches_hf_generate(pair):
    gpt2, ours, ref = pair
    ids = _prompt()
    expected = ref.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                            max_new_tokens=20, pad_token_id=0)
    got = gpt2.generate(ours, ids, max_new_tokens=20)
    assert got.shape == (3, 25)
    assert torch.equal(got, expected)
    assert torch.equal(gpt2.generate(ours, ids, max_new_tokens=20, use_cache=False), got)


def test_decode_layout_moves_strides_not_values(pair):
    """decode_layout stores each Linear weight (in, out) in memory; shapes, values, keys, the
    tie to the embedding and the generated tokens stay; enabled=False packs them back."""
    gpt2, ours, ref = pair
    model = copy.deepcopy(ours)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert gpt2.decode_layout(model) is model
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.stride() == (1, m.weight.shape[0]) for m in linears)
    assert model.lm_head.weight is model.wte.weight
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    pointers = [m.weight.data_ptr() for m in linears]
    gpt2.decode_layout(model)  # already input-major: no copy
    model.load_state_dict(before)  # copies into the strided weights
    assert [m.weight.data_ptr() for m in linears] == pointers

    ids = _prompt()
    expected = ref.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                            max_new_tokens=20, pad_token_id=0)
    assert torch.equal(gpt2.generate(model, ids, max_new_tokens=20), expected)
    gpt2.decode_layout(model, enabled=False)
    assert all(m.weight.is_contiguous() for m in linears)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_eos_finishes_each_sequence_and_pads_like_hf(pair):
    gpt2, ours, ref = pair
    ids = _prompt()
    free = gpt2.generate(ours, ids, max_new_tokens=16, eos_token_id=None)
    eos = int(free[0, 8])  # a token sequence 0 emits mid-way
    kwargs = dict(max_new_tokens=16, eos_token_id=eos, pad_token_id=7)
    got = gpt2.generate(ours, ids, **kwargs)
    expected = ref.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                            **kwargs)
    assert torch.equal(got, expected)
    first = (got[0, 5:] == eos).nonzero()[0, 0] + 5
    assert (got[0, first + 1:] == 7).all()


def test_sampling_is_reproducible_and_top_k_1_is_greedy(pair):
    gpt2, ours, _ = pair
    ids = _prompt()

    def sample(seed, **kwargs):
        generator = torch.Generator().manual_seed(seed)
        return gpt2.generate(ours, ids, max_new_tokens=12, do_sample=True, generator=generator,
                             **kwargs)

    assert torch.equal(sample(3), sample(3))
    assert not torch.equal(sample(3), sample(4))
    greedy = gpt2.generate(ours, ids, max_new_tokens=12)
    assert torch.equal(sample(5, top_k=1), greedy)
    assert torch.equal(sample(5, top_p=1e-6), greedy)  # the nucleus is the argmax alone


def test_sampling_matches_hf_under_the_same_seed(pair):
    gpt2, ours, ref = pair
    ids = _prompt()
    kwargs = dict(do_sample=True, top_k=20, top_p=0.9, temperature=0.7, max_new_tokens=12)
    torch.manual_seed(11)
    expected = ref.generate(ids, attention_mask=torch.ones_like(ids), pad_token_id=0,
                            **kwargs)
    torch.manual_seed(11)
    assert torch.equal(gpt2.generate(ours, ids, **kwargs), expected)


@pytest.mark.parametrize("top_k,top_p,temperature", [(5, None, 1.0), (None, 0.8, 1.0),
                                                     (10, 0.5, 0.6), (0, 0.95, 1.3)])
def test_filter_logits_keeps_what_hf_keeps(compiled, top_k, top_p, temperature):
    gpt2 = compiled("gpt2")
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(2)) * 3
    warpers = [transformers.TemperatureLogitsWarper(temperature)]
    warpers += [transformers.TopKLogitsWarper(top_k)] if top_k else []
    warpers += [transformers.TopPLogitsWarper(top_p)] if top_p else []
    expected = logits
    for warp in warpers:
        expected = warp(None, expected)
    got = gpt2.filter_logits(logits, top_k, top_p, temperature)
    assert torch.equal(got.isinf(), expected.isinf())
    torch.testing.assert_close(got, expected)


def test_top_p_keeps_exactly_the_nucleus(compiled):
    gpt2 = compiled("gpt2")
    probs = torch.tensor([[0.5, 0.05, 0.3, 0.1, 0.05]])
    kept = gpt2.filter_logits(probs.log(), top_p=0.85).isfinite()
    assert kept.tolist() == [[True, False, True, True, False]]  # 0.5 + 0.3 + 0.1 >= 0.85
