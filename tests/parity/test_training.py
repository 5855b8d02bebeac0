"""Training a generated model: the same steps as Hugging Face, weight-decay groups,
activation checkpointing, dropout only in training, bf16 autocast, checkpoints out and in."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from tests.parity.test_init import BERT, CASES, GPT2, VIT

transformers = pytest.importorskip("transformers")

STEPS = 20


def _adamw(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)


def _losses(model, loss_fn, batches) -> list[float]:
    optimizer = _adamw(model.parameters())
    out = []
    for batch in batches:
        loss = loss_fn(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        out.append(loss.item())
    return out


def _assert_same_losses(ours: list[float], ref: list[float]) -> None:
    assert ours[-1] < ours[0]  # it learned something
    for step, (a, b) in enumerate(zip(ours, ref, strict=True)):
        assert abs(a - b) <= 1e-4 * abs(b), f"step {step}: {a} vs {b}"


@pytest.mark.parametrize("opt_level", [0, 2])
def test_gpt2_trains_as_hugging_face(compiled, opt_level):
    gpt2 = compiled("gpt2", opt_level)
    sizes = dict(GPT2, n_embd=64, n_layer=2, dropout=0.0)
    ref = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        **{k: v for k, v in sizes.items() if k != "dropout"}, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0))
    ours = gpt2.Model(gpt2.Config(**sizes))
    ours.load_state_dict(gpt2.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    data = [torch.randint(0, sizes["vocab_size"], (4, 32)) for _ in range(2)]
    batches = [data[i % 2] for i in range(STEPS)]  # seen again: the loss must fall

    def ours_loss(model, ids):
        logits = model(ids)
        return F.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())

    _assert_same_losses(_losses(ours, ours_loss, batches),
                        _losses(ref, lambda m, ids: m(ids, labels=ids).loss, batches))


@pytest.mark.parametrize("opt_level", [0, 2])
def test_bert_trains_as_hugging_face(compiled, opt_level):
    bert = compiled("bert", opt_level)
    sizes = dict(BERT, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    ref = transformers.BertModel(transformers.BertConfig(**sizes))
    ours = bert.Model(bert.Config(**sizes))
    ours.load_state_dict(bert.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    batches = []
    for _ in range(2):
        ids, mask, types = bert.example_inputs(4, bert.Config(**sizes), T=24)  # HF's order
        ids[:, -3:] = 0  # padding, masked out (and the padding row of the embedding)
        mask = mask.clone()
        mask[:, -3:] = False
        target = torch.randn(4, 24, sizes["hidden_size"])
        batches.append((ids, types, mask, target))
    batches = [batches[i % 2] for i in range(STEPS)]

    def ours_loss(model, batch):
        ids, types, mask, target = batch
        hidden, pooled = model(ids, mask, types)
        return F.mse_loss(hidden[mask], target[mask]) + pooled.square().mean()

    def ref_loss(model, batch):
        ids, types, mask, target = batch
        out = model(input_ids=ids, token_type_ids=types, attention_mask=mask.long())
        return F.mse_loss(out.last_hidden_state[mask], target[mask]) + \
            out.pooler_output.square().mean()

    _assert_same_losses(_losses(ours, ours_loss, batches), _losses(ref, ref_loss, batches))


# ------------------------------------------------------------------------------ utilities


def test_param_groups_follow_the_reference(compiled):
    gpt2 = compiled("gpt2")
    model = gpt2.Model(gpt2.Config(**GPT2))
    decay, no_decay = gpt2.param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.1, 0.0)
    assert {names[id(p)] for p in no_decay["params"]} == {
        n for n, p in model.named_parameters() if p.dim() == 1}  # nanoGPT's rule: biases, norms
    swin = compiled("swin")
    model = swin.Model(swin.Config(**CASES["swin"]()[1]))
    _, no_decay = swin.param_groups(model, 0.05)
    skipped = {names for names, p in model.named_parameters()
               if any(p is q for q in no_decay["params"])}
    tables = {n for n, _ in model.named_parameters() if "relative_position_bias_table" in n}
    assert tables and tables <= skipped  # timm's no_weight_decay()
    assert sum(p.numel() for g in swin.param_groups(model, 0.05) for p in g["params"]) == \
        sum(p.numel() for p in model.parameters())


def test_init_weights_draws_again_and_keeps_ties(compiled):
    gpt2 = compiled("gpt2")
    model = gpt2.Model(gpt2.Config(**GPT2))
    before = model.h[0].attn.proj.weight.clone()
    model.init_weights()
    assert not torch.equal(before, model.h[0].attn.proj.weight)
    assert model.lm_head.weight is model.wte.weight
    assert abs(model.h[0].attn.proj.weight.std().item() - 0.02 / 8 ** 0.5) < 5e-4


@pytest.mark.parametrize("name", ["gpt2", "t5", "vit"])
def test_activation_checkpointing_gives_the_same_gradients(compiled, name):
    mod = compiled(name)
    model = mod.Model(mod.Config(**CASES[name]()[1])).train()  # dropout on: masks replayed
    inputs = mod.example_inputs(2, model.config)

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        torch.manual_seed(1)
        out = model(*inputs)
        sum(o.float().square().mean() for o in (out if isinstance(out, tuple) else (out,))
            if o.is_floating_point()).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    assert mod.set_checkpointing(model, True) is model
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys()
    for key in plain:
        torch.testing.assert_close(checkpointed[key], plain[key], msg=key)


@pytest.mark.parametrize("name", sorted(CASES))
def test_dropout_only_in_training(compiled, name):
    mod = compiled(name)
    config = mod.Config(**CASES[name]()[1])
    model = mod.Model(config)
    inputs = mod.example_inputs(2, config)

    def run():
        out = model(*inputs)
        return [o for o in (out if isinstance(out, tuple) else (out,)) if o.is_floating_point()]

    with torch.no_grad():
        model.eval()
        first, second = run(), run()
        for a, b in zip(first, second, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        dropout = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
        dropout += [m.dropout for m in model.modules() if isinstance(m, torch.nn.RNNBase)]
        if any(p > 0 for p in dropout):
            model.train()
            trained = run()
            assert any(not torch.equal(a, b) for a, b in zip(first, trained, strict=True))


@pytest.mark.parametrize("name", ["gpt2", "bert", "vit", "t5", "mlp_mixer"])
def test_bf16_autocast_matches_fp32(compiled, name):
    mod = compiled(name)
    config = mod.Config(**CASES[name]()[1])
    model = mod.Model(config).eval()
    inputs = mod.example_inputs(2, config)
    with torch.no_grad():
        exact = model(*inputs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(*inputs)
    for a, b in zip(exact if isinstance(exact, tuple) else (exact,),
                    mixed if isinstance(mixed, tuple) else (mixed,), strict=True):
        scale = a.abs().mean().item() + 1e-6
        assert (b.float() - a).abs().mean().item() / scale < 0.02
    with torch.autocast("cpu", dtype=torch.bfloat16):  # and it trains: fp32 gradients
        out = model.train()(*inputs)
        sum(o.float().square().mean() for o in (out if isinstance(out, tuple) else (out,))
            if o.is_floating_point()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


# ------------------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("name", sorted(CASES))
def test_export_state_dict_inverts_convert_state_dict(compiled, name):
    mod = compiled(name, 2)
    ref, sizes, layout = CASES[name]()
    ours = mod.Model(mod.Config(**sizes))
    ours.load_state_dict(mod.convert_state_dict(ref.state_dict(), layout), strict=True)
    exported = mod.export_state_dict(ours.state_dict(), layout)
    expected = ref.state_dict()
    assert set(exported) <= set(expected), sorted(set(exported) - set(expected))
    # what convert_state_dict drops (buffers the reference rebuilds) and second names of tied
    # tensors are all that may be missing; otherwise the reference loads it strictly
    drops = [mod._pattern(p) for p in mod.CHECKPOINT_LAYOUTS[layout]["drop"]]
    missing = set(expected) - set(exported)
    assert missing <= {k for k in expected if any(d.match(k) for d in drops)} | _tied(ref), \
        sorted(missing)
    copy.deepcopy(ref).load_state_dict(exported, strict=not missing)
    for key, value in exported.items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)


def _tied(ref) -> set[str]:
    """Keys of tensors the reference stores under several names (one of each is enough)."""
    seen, tied = {}, set()
    for key, value in ref.state_dict(keep_vars=True).items():
        if value.data_ptr() in seen:
            tied.add(key)
        seen.setdefault(value.data_ptr(), key)
    return tied


def test_trained_model_saves_and_loads_into_hugging_face(compiled, tmp_path):
    """Train here, export, load strictly into GPT2LMHeadModel, save_pretrained (safetensors),
    from_pretrained: the same logits all the way; and the archcc layout round-trips too."""
    from safetensors.torch import load_model, save_model

    gpt2 = compiled("gpt2")
    sizes = dict(GPT2, n_embd=64, n_layer=2, dropout=0.0)
    model = gpt2.Model(gpt2.Config(**sizes))
    ids = torch.randint(0, sizes["vocab_size"], (2, 16))
    optimizer = torch.optim.AdamW(gpt2.param_groups(model, 0.1), lr=1e-3)
    for _ in range(3):
        loss = model(ids)[:, :-1].logsumexp(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    config = transformers.GPT2Config(**{k: v for k, v in sizes.items() if k != "dropout"},
                                     bos_token_id=0, eos_token_id=0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    hf.load_state_dict(gpt2.export_state_dict(model.state_dict(), "hf"), strict=True)
    hf.save_pretrained(tmp_path / "hf")
    reloaded = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    save_model(model, str(tmp_path / "ours.safetensors"))
    again = gpt2.Model(gpt2.Config(**sizes)).eval()
    load_model(again, str(tmp_path / "ours.safetensors"))
    with torch.no_grad():
        logits = model(ids)
        torch.testing.assert_close(hf(ids).logits, logits)
        torch.testing.assert_close(reloaded(ids).logits, logits)
        torch.testing.assert_close(again(ids), logits, rtol=0, atol=0)
    assert (tmp_path / "hf" / "model.safetensors").is_file()


def test_exported_vit_loads_strictly_into_hugging_face(compiled):
    vit = compiled("vit")
    model = vit.Model(vit.Config(**VIT)).eval()
    ref = transformers.ViTForImageClassification(transformers.ViTConfig(**VIT)).eval()
    ref.load_state_dict(vit.export_state_dict(model.state_dict(), "hf"), strict=True)
    (pixels,) = vit.example_inputs(2, model.config)
    with torch.no_grad():
        torch.testing.assert_close(ref(pixels).logits, model(pixels)[1])


@pytest.mark.parametrize("case", ["llama", "phi3", "mixtral", "qwen2_moe"])
def test_imported_decoders_export_to_transformers(tmp_path, case):
    """An `archcc import hf` decoder's state_dict exports to exactly the reference's keys
    (the lm_head is no `model.` key) and loads into it strictly."""
    import archcc
    from archcc.importers import import_hf
    from tests.parity.test_init import _imported

    model_type, kwargs, _ = _imported()[case]
    config = transformers.AutoConfig.for_model(model_type, **kwargs)
    config.to_json_file(tmp_path / "config.json")
    mod = archcc.build(import_hf(tmp_path / "config.json", tmp_path / f"{case}.yaml"),
                       out_dir=tmp_path)
    ref = transformers.AutoModelForCausalLM.from_config(config)
    ours = mod.Model(mod.Config())
    ours.load_state_dict(mod.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    exported = mod.export_state_dict(ours.state_dict(), "hf")
    assert set(exported) == set(ref.state_dict()) - _tied(ref)
    copy.deepcopy(ref).load_state_dict(exported, strict=True)
    for key, value in exported.items():
        torch.testing.assert_close(value, ref.state_dict()[key], rtol=0, atol=0, msg=key)
