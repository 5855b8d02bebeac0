"""``op: moe``: the generated mixture of experts against transformers' Mixtral and Qwen2-MoE
blocks (strict loads, eval, fp32), its sparse dispatch against the dense all-experts sum,
its auxiliary loss against ``load_balancing_loss_func``, and its FLOPs (k experts' worth)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import archcc
from archcc.inspect.measure import flop_counter, measure

transformers = pytest.importorskip("transformers")
from transformers.models.mixtral import modeling_mixtral  # noqa: E402
from transformers.models.qwen2_moe import modeling_qwen2_moe  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIM, HIDDEN, EXPERTS, TOP_K, SHARED = 16, 24, 4, 2, 20

# transformers' in-memory keys of one sparse block -> ours (the spec's checkpoint section)
HF_KEYS = {"gate": "moe.router", "experts.gate_up_proj": "moe.gate_up",
           "experts.down_proj": "moe.down", "shared_expert_gate": "moe.shared_gate",
           "shared_expert.gate_proj": "moe.shared.gate",
           "shared_expert.up_proj": "moe.shared.up", "shared_expert.down_proj": "moe.shared.down"}


def layer_spec(layers: int = 1, dims: dict | None = None, **fields) -> dict:
    """A spec of ``layers`` residual MoE layers (one: the bare layer), HF keys mapped."""
    moe = {"op": "moe", "dim": "dim", "hidden": "hidden", "experts": "experts",
           "top_k": "top_k", **fields}
    params = {"dim": DIM, "hidden": HIDDEN, "experts": EXPERTS, "top_k": TOP_K,
              **(dims or {})}
    spec = {"archcc": 1, "name": "moe_layer", "params": params, "dims": {"T": 7},
            "inputs": {"x": {"shape": ["B", "T", "dim"]}}}
    if layers == 1:
        spec["model"] = {"layers": {"moe": moe}, "forward": "return moe(x)\n"}
        rename = HF_KEYS
    else:
        spec["blocks"] = {"Layer": {"layers": {"moe": moe}, "forward": "return x + moe(x)\n"}}
        spec["model"] = {"layers": {"h": {"repeat": "Layer", "times": layers}},
                         "forward": "return h(x)\n"}
        rename = {f"{{i}}.{a}": f"h.{{i}}.{b}" for a, b in HF_KEYS.items()}
    spec["checkpoint"] = {"hf": {"rename": rename}}
    return spec


def build(tmp_path, spec: dict, opt_level: int = 2):
    path = tmp_path / f"moe_O{opt_level}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return archcc.build(path, out_dir=tmp_path / f"O{opt_level}", opt_level=opt_level)


def randomize(module: torch.nn.Module) -> torch.nn.Module:
    """Weights large enough that routing and the experts' nonlinearity both matter."""
    torch.manual_seed(1)
    for p in module.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return module.eval()


def mixtral_block(implementation: str = "eager"):
    cfg = transformers.MixtralConfig(hidden_size=DIM, intermediate_size=HIDDEN,
                                     num_local_experts=EXPERTS, num_experts_per_tok=TOP_K)
    cfg._experts_implementation = implementation
    return randomize(modeling_mixtral.MixtralSparseMoeBlock(cfg))


def qwen2_moe_block(norm_topk_prob: bool, implementation: str = "eager"):
    cfg = transformers.Qwen2MoeConfig(hidden_size=DIM, moe_intermediate_size=HIDDEN,
                                      shared_expert_intermediate_size=SHARED,
                                      num_experts=EXPERTS, num_experts_per_tok=TOP_K,
                                      norm_topk_prob=norm_topk_prob)
    cfg._experts_implementation = implementation
    return randomize(modeling_qwen2_moe.Qwen2MoeSparseMoeBlock(cfg))


def load(module, ref: torch.nn.Module) -> torch.nn.Module:
    ours = module.Model().eval()
    ours.load_state_dict(module.convert_state_dict(ref.state_dict(), "hf"), strict=True)
    return ours


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("implementation", ["eager", "grouped_mm"])
def test_matches_mixtral_sparse_moe_block(tmp_path, opt_level, implementation):
    module = build(tmp_path, layer_spec(), opt_level)
    ref = mixtral_block(implementation)
    ours = load(module, ref)
    x = torch.randn(3, 7, DIM)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


def test_bfloat16_is_bit_exact_with_transformers_default(tmp_path):
    """Routing weights in float32 and the k outputs summed in float32, then cast: what
    transformers' default (grouped_mm) Mixtral does, to the bit in bfloat16."""
    ref = mixtral_block("grouped_mm").to(torch.bfloat16)
    ours = load(build(tmp_path, layer_spec()), ref).to(torch.bfloat16)
    x = torch.randn(3, 7, DIM, dtype=torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("norm_topk_prob", [False, True])
def test_matches_qwen2_moe_sparse_block(tmp_path, opt_level, norm_topk_prob):
    """A shared expert with its sigmoid gate; Qwen2-MoE renormalises only if norm_topk_prob."""
    spec = layer_spec(dims={"shared": SHARED}, shared_hidden="shared", normalize=norm_topk_prob)
    module = build(tmp_path, spec, opt_level)
    ref = qwen2_moe_block(norm_topk_prob)
    ours = load(module, ref)
    x = torch.randn(3, 7, DIM)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))
    if opt_level == 2:  # the shared expert's gate and up were fused, and still load
        assert "moe.shared.gate_up.weight" in ours.state_dict()


def test_topk_softmax_equals_softmax_topk_renormalised(tmp_path):
    """The two routings real models use agree: softmax over the top k logits equals the
    top k of the full softmax, renormalised (Mixtral's router, the paper's formula)."""
    ref = mixtral_block()
    ours = load(build(tmp_path, layer_spec(routing="topk_softmax")), ref)
    x = torch.randn(2, 7, DIM)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x))


def test_generated_class_reads_as_one_moe(tmp_path):
    build(tmp_path, layer_spec(dims={"shared": SHARED}, shared_hidden="shared"))
    source = (tmp_path / "O2" / "moe_layer.py").read_text()
    assert source.count("class SwiGLUMoE(nn.Module):") == 1
    assert "self.shared = SwiGLU(dim, shared_hidden, bias=False)" in source
    assert "for e, part in enumerate(parts)" in source  # a loop over experts, not copies
    assert "self.gate_up[0]" not in source and "def load_balancing_loss(" in source


# --------------------------------------------------------------------- sparse == dense


def dense_reference(model, x: torch.Tensor) -> torch.Tensor:
    """Every expert on every token, weighted by the routing weights (0 where not chosen)."""
    moe = model.moe
    tokens = x.reshape(-1, x.shape[-1])
    weights, chosen = moe.route(moe.router(tokens))
    dense = torch.zeros(len(tokens), moe.n_experts, dtype=weights.dtype)
    dense.scatter_(1, chosen, weights)  # (N, E)
    outs = torch.stack([moe.expert(e, tokens) for e in range(moe.n_experts)], dim=1)
    return (outs * dense[..., None]).sum(dim=1).view(x.shape)


@settings(max_examples=25, deadline=None)
@given(experts=st.integers(1, 6), data=st.data(), tokens=st.integers(1, 9),
       gated=st.booleans(), routing=st.sampled_from(["softmax_topk", "topk_softmax"]),
       normalize=st.booleans(), seed=st.integers(0, 2**16))
def test_sparse_dispatch_equals_dense_all_experts(tmp_path_factory, experts, data, tokens,
                                                  gated, routing, normalize, seed):
    top_k = data.draw(st.integers(1, experts))
    normalize = normalize or routing == "topk_softmax"
    spec = layer_spec(dims={"experts": experts, "top_k": top_k}, gated=gated,
                      routing=routing, normalize=normalize, act="gelu" if not gated else "silu")
    module = _cached_build(tmp_path_factory, spec)
    torch.manual_seed(seed)
    model = module.Model().eval()
    x = torch.randn(1, tokens, DIM)
    with torch.no_grad():
        torch.testing.assert_close(model(x), dense_reference(model, x))


_BUILT: dict[str, object] = {}


def _cached_build(tmp_path_factory, spec: dict):
    key = yaml.safe_dump(spec)
    if key not in _BUILT:
        _BUILT[key] = build(tmp_path_factory.mktemp("moe"), spec)
    return _BUILT[key]


def test_gradients_reach_the_chosen_experts_and_the_router(tmp_path):
    # top-2: renormalised over one expert a weight is exactly 1, with no gradient to the router
    module = build(tmp_path, layer_spec(layers=1, dims={"experts": 8, "top_k": 2,
                                                         "shared": SHARED},
                                        shared_hidden="shared"))
    model = module.Model().train()
    x = torch.randn(1, 3, DIM)
    model(x).sum().backward()
    moe = model.moe
    hit = set(moe.route(moe.router_logits)[1].flatten().tolist())
    used = {e for e in range(8) if moe.gate_up.grad[e].abs().sum() > 0}
    assert used == hit and len(hit) < 8
    assert moe.router.weight.grad.abs().sum() > 0 and moe.shared.gate_up.weight.grad is not None


def test_torch_export_traces_the_dispatch(tmp_path):
    """No data-dependent guard: the exported program routes new inputs as eager does."""
    model = build(tmp_path, layer_spec()).Model().eval()
    exported = torch.export.export(model, (torch.randn(2, 7, DIM),)).module()
    x = torch.randn(2, 7, DIM)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), model(x))


def test_an_empty_batch_runs(tmp_path):
    model = build(tmp_path, layer_spec()).Model().eval()
    assert model(torch.randn(2, 0, DIM)).shape == (2, 0, DIM)


# ----------------------------------------------------------------------- the aux loss


@pytest.mark.parametrize("masked", [False, True])
def test_load_balancing_loss_equals_transformers(tmp_path, masked):
    layers = 3
    module = build(tmp_path, layer_spec(layers=layers))
    refs = torch.nn.ModuleList(mixtral_block() for _ in range(layers))
    for i, ref in enumerate(refs):  # distinct weights per layer
        torch.manual_seed(10 + i)
        for p in ref.parameters():
            torch.nn.init.normal_(p, std=0.3)
    ours = module.Model().train()  # the logits are kept in training (no dropout here)
    ours.load_state_dict(module.convert_state_dict(refs.state_dict(), "hf"), strict=True)
    x = torch.randn(3, 7, DIM)
    mask = torch.ones(3, 7, dtype=torch.long)
    mask[1, :3] = 0
    mask[2, 5:] = 0
    logits, h = [], x
    for ref in refs:
        logits.append(ref.gate(h.reshape(-1, DIM))[0])
        h = h + ref(h)
    # three residual layers of std-0.3 weights reach |h| ~ 10: float32 summation order
    torch.testing.assert_close(ours(x), h, rtol=1e-4, atol=1e-4)
    mask = mask if masked else None
    want = modeling_mixtral.load_balancing_loss_func(tuple(logits), EXPERTS, TOP_K, mask)
    torch.testing.assert_close(module.load_balancing_loss(ours, mask), want)


def test_load_balancing_loss_trains_the_router(tmp_path):
    module = build(tmp_path, layer_spec(layers=2))
    model = module.Model().train()
    model(torch.randn(2, 5, DIM))
    loss = module.load_balancing_loss(model)
    loss.backward()
    assert loss.item() >= 1.0 - 1e-6  # E * sum f_e P_e is 1 at perfect balance, more otherwise
    assert all(m.router.weight.grad.abs().sum() > 0 for m in (model.h[0].moe, model.h[1].moe))


def test_load_balancing_loss_needs_a_training_forward(tmp_path):
    """Eval forwards (generation, export) keep nothing: no stale logits, no held graph."""
    module = build(tmp_path, layer_spec())
    model = module.Model()
    with pytest.raises(ValueError, match="run a forward in training mode"):
        module.load_balancing_loss(model)
    model(torch.randn(1, 3, DIM))
    assert module.load_balancing_loss(model) > 0
    model.eval()(torch.randn(1, 3, DIM))
    assert model.moe.router_logits is None


# ---------------------------------------------------------------------------- FLOPs


def test_flops_are_k_experts_not_all(tmp_path):
    """On real data (whatever the routing) and on meta (archcc summary), the counted FLOPs
    are the router plus k experts per token: about k/E of computing every expert."""
    experts, top_k, tokens = 8, 2, 2 * 7
    module = build(tmp_path, layer_spec(dims={"experts": experts, "top_k": top_k}))
    router = 2 * tokens * DIM * experts
    per_expert = 2 * tokens * 3 * DIM * HIDDEN
    model = module.Model().eval()
    x = torch.randn(2, 7, DIM)
    with torch.no_grad(), flop_counter() as counter:
        model(x)
    assert counter.get_total_flops() == router + top_k * per_expert
    assert measure(module, batch=2, dims={"T": 7}).flops[""] == router + top_k * per_expert
    with torch.no_grad(), flop_counter() as dense:
        dense_reference(model, x)
    assert dense.get_total_flops() == router + experts * per_expert


def test_mixtral_budget_counts_two_experts_per_token(capsys):
    """specs/mixtral.yaml's flops_per_token budget holds at top-2 and fails at top-8."""
    from archcc.cli import main

    spec = str(ROOT / "specs" / "mixtral.yaml")
    assert main(["check", spec]) == 0
    assert main(["check", spec, "--set", "num_experts_per_tok=8"]) == 1
    assert "FLOPs per token exceed the budget" in capsys.readouterr().err


def test_mixtral_exports_with_dynamic_batch_and_length(compiled):
    """The routed dispatch holds under torch.export with B and T dynamic (archcc export)."""
    from archcc.runtime.export import export_program

    module = compiled("mixtral")
    config = module.Config(vocab_size=97, hidden_size=32, intermediate_size=48,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           num_local_experts=4)
    model = module.Model(config).eval()
    program = export_program(model, dims={"B": (1, 2, 4), "T": (2, 8, 16)})
    (ids,) = module.example_inputs(3, config, T=11)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(ids), model(ids))
