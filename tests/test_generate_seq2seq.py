"""The generation facet on an encoder-decoder (specs/transformer.yaml): encode once, decode
with a KV cache, greedy tokens equal to a full-recompute reference."""

import copy

import pytest
import torch

from tests.parity.test_transformer import SMALL, Reference


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models step token by token: extra threads only wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module", params=[0, 1], ids=["O0", "O1"])
def pair(request, compiled):
    transformer = compiled("transformer", request.param)
    torch.manual_seed(0)
    ref = Reference(**SMALL).eval()
    ours = transformer.Model(transformer.Config(**SMALL)).eval()
    ours.load_state_dict(transformer.convert_state_dict(ref.state_dict(), "torch"), strict=True)
    return transformer, ours, ref


def _src(batch=3, length=9):
    return torch.randint(0, SMALL["src_vocab_size"], (batch, length),
                         generator=torch.Generator().manual_seed(1))


def test_forward_is_decode_of_encode(pair):
    transformer, ours, ref = pair
    src, tgt = _src(), _src(length=6) % SMALL["tgt_vocab_size"]
    with torch.no_grad():
        memory = ours.encode(src)
        torch.testing.assert_close(ours.decode(tgt, memory), ref(src, tgt))
        torch.testing.assert_close(ours(src, tgt), ref(src, tgt))


def test_cached_decode_equals_full_decode_at_every_step(pair):
    transformer, ours, _ = pair
    src, tgt = _src(), _src(length=8) % SMALL["tgt_vocab_size"]
    with torch.no_grad():
        memory = ours.encode(src)
        full = ours.decode(tgt, memory)
        cache = transformer.KVCache()
        steps = [ours.decode(tgt[:, t:t + 1], memory, cache=cache) for t in range(8)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def _reference_greedy(ref, src, steps, start=0):
    """Greedy decoding with the reference, recomputing everything at each step."""
    tokens = torch.full((src.shape[0], 1), start)
    with torch.no_grad():
        for _ in range(steps):
            tokens = torch.cat([tokens, ref(src, tokens)[:, -1].argmax(-1, keepdim=True)], 1)
    return tokens


def test_greedy_generate_matches_reference(pair):
    transformer, ours, ref = pair
    src = _src()
    got = transformer.generate(ours, src, max_new_tokens=10)
    assert got.shape == (3, 11)
    assert torch.equal(got, _reference_greedy(ref, src, 10))
    assert torch.equal(transformer.generate(ours, src, max_new_tokens=10, use_cache=False), got)


def test_decode_layout_keeps_the_greedy_tokens(pair):
    transformer, ours, ref = pair
    model = transformer.decode_layout(copy.deepcopy(ours))
    assert all(m.weight.stride()[0] == 1 for m in model.modules()
               if isinstance(m, torch.nn.Linear))
    src = _src()
    assert torch.equal(transformer.generate(model, src, max_new_tokens=10),
                       _reference_greedy(ref, src, 10))


def test_encoder_and_memory_projections_run_once(pair):
    transformer, ours, _ = pair
    calls: dict[str, int] = {}

    def count(name):
        def hook(*_):
            calls[name] = calls.get(name, 0) + 1
        return hook

    handles = [ours.encoder[0].register_forward_hook(count("encoder"))]
    for i, layer in enumerate(ours.decoder):
        handles.append(layer.cross_attn.k.register_forward_hook(count(f"k{i}")))
        handles.append(layer.cross_attn.q.register_forward_hook(count(f"q{i}")))
    try:
        transformer.generate(ours, _src(), max_new_tokens=6, eos_token_id=None)
    finally:
        for handle in handles:
            handle.remove()
    assert calls["encoder"] == 1
    assert all(calls[f"k{i}"] == 1 and calls[f"q{i}"] == 6 for i in range(len(ours.decoder)))


def test_eos_stops_each_sequence(pair):
    transformer, ours, _ = pair
    src = _src()
    free = transformer.generate(ours, src, max_new_tokens=8)
    eos = int(free[1, 3])
    got = transformer.generate(ours, src, max_new_tokens=8, eos_token_id=eos, pad_token_id=5)
    for row, tokens in zip(got, free, strict=True):
        hits = (tokens[1:] == eos).nonzero()
        if len(hits):
            end = int(hits[0, 0]) + 1
            assert torch.equal(row[:end + 1], tokens[:end + 1])
            assert (row[end + 1:] == 5).all()


# ------------------------------------------------------------------------------- T5 vs HF


@pytest.mark.parametrize("opt_level", [0, 1])
def test_t5_greedy_matches_hf_generate(compiled, opt_level):
    transformers = pytest.importorskip("transformers")
    from tests.parity.test_t5 import SMALL as T5_SMALL
    from tests.parity.test_t5 import _inputs, _pair

    t5 = compiled("t5", opt_level)
    torch.manual_seed(0)
    ours, ref = _pair(t5, T5_SMALL)
    ids, mask, _ = _inputs(t5, T5_SMALL, batch=3, S=14)
    expected = ref.generate(input_ids=ids, attention_mask=mask.long(), do_sample=False,
                            max_new_tokens=12, decoder_start_token_id=0)  # t5-small's value
    got = t5.generate(ours, ids, mask, max_new_tokens=12)
    assert isinstance(ref, transformers.T5ForConditionalGeneration)
    assert torch.equal(got, expected)
    assert torch.equal(t5.generate(ours, ids, mask, max_new_tokens=12, use_cache=False), got)


def test_t5_cached_decode_equals_full_decode(compiled):
    from tests.parity.test_t5 import SMALL as T5_SMALL
    from tests.parity.test_t5 import _inputs, _pair

    t5 = compiled("t5")
    ours, _ = _pair(t5, T5_SMALL)
    ids, mask, dec = _inputs(t5, T5_SMALL, batch=2, S=10, T=25)  # offsets past max_distance
    with torch.no_grad():
        memory = ours.encode(ids, mask)
        full = ours.decode(dec, memory, mask)
        cache = t5.KVCache()
        steps = [ours.decode(dec[:, :3], memory, mask, cache=cache)]
        steps += [ours.decode(dec[:, t:t + 1], memory, mask, cache=cache) for t in range(3, 25)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
