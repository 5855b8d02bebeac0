"""Structure that scales: blocks with arguments, list params, stage loops, `when`, blocks
as layers, shared weights (`steps`) and skip stacks, built and run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archcc

SPECS = Path(__file__).parent / "specs" / "structure"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("structure")
    cache = {}

    def get(name: str, opt_level: int = 2):
        if (name, opt_level) not in cache:
            cache[name, opt_level] = archcc.build(SPECS / f"{name}.yaml",
                                                  out_dir=out / f"O{opt_level}",
                                                  opt_level=opt_level)
        return cache[name, opt_level]

    return get


@pytest.mark.parametrize("opt_level", [0, 2])
def test_shared_weights_apply_one_instance_several_times(built, opt_level):
    share = built("share", opt_level)
    model = share.Model().eval()
    keys = set(model.state_dict())
    assert {"shared.fc.weight", "loop.fc.weight", "groups.0.fc.weight", "groups.1.fc.weight",
            "choose.0.fc2.weight", "choose.1.fc.weight", "choose.2.fc2.weight"} <= keys
    assert not any(k.startswith(("maybe.", "none.")) for k in keys)  # when: false
    assert isinstance(model.maybe, torch.nn.Identity) and len(model.none) == 0
    x = torch.randn(2, 3, 16)
    with torch.no_grad():
        y = model.shared(model.shared(x))
        for _ in range(4):  # one instance applied n_steps times, scale=3 passed in
            y = model.loop.fc(y) * 3
        for i in range(4):  # 2 groups over 4 steps: 0, 0, 1, 1
            y = model.groups[i * 2 // 4].fc(y) * 2
        y = model.choose[2].fc2(model.choose[1].fc(model.choose[0].fc2(y)) * 2)
        for i in range(3):  # pick: (i + 1) % 2 -> instances 1, 0, 1
            y = model.picked[(i + 1) % 2].fc(y) * 2
        y = model.twice.fc3(y) * 2
        torch.testing.assert_close(model(x), y)


def test_config_changes_the_number_of_stages(built):
    unet = built("unet_mini")
    two = unet.Model().eval()
    assert len(two.downs) == 2 and isinstance(two.downs[-1].down, torch.nn.Identity)
    three = unet.Model(unet.Config(chans=(8, 16, 32), size=16)).eval()
    assert [type(b.down).__name__ for b in three.downs] == ["Downsample2D"] * 2 + ["Identity"]
    assert three(torch.randn(2, 4, 16, 16)).shape == (2, 8, 16, 16)
    traced = torch.fx.symbolic_trace(three)  # the skip list and both loops trace
    x = torch.randn(1, 4, 16, 16)
    torch.testing.assert_close(traced(x), three(x))


@pytest.mark.parametrize("spec", ["swin", "ddpm_unet"])
def test_generated_swin_and_unet_loop_over_stages(spec):
    """One class per block kind and loops over the lists, never copies per stage."""
    source = (Path(__file__).parents[1] / "generated" / f"{spec}.py").read_text()
    loops = {"swin": ["for i in range(len(config.depths))", "for i in range(depth)",
                      "for stage in self.layers:", "for block in self.blocks:"],
             "ddpm_unet": ["for i in range(len(config.block_out_channels))",
                           "for i in range(config.layers_per_block)",
                           "for i in range(config.layers_per_block + 1)",
                           "for block in self.down_blocks:", "for block in self.up_blocks:",
                           "skips.append(x)", "skips.pop()"]}[spec]
    for line in loops:
        assert line in source, line
    classes = [line.split("(")[0][6:] for line in source.splitlines()
               if line.startswith("class ")]
    assert len(classes) == len(set(classes))
    assert not any(name[-1].isdigit() for name in classes)  # no Block_0, Block_1, ...
    assert not any(f"{part}_1" in source for part in ("stage", "down1", "depth", "heads"))


def test_generated_code_loops_over_stages(built):
    source = (Path(built("unet_mini").__file__)).read_text()
    assert "for i in range(len(config.chans))" in source
    assert "skips.append(x)" in source and "skips.pop()" in source
    assert "Downsample2D(cout) if not last else nn.Identity()" in source


def test_summary_measures_a_unet_whose_blocks_push_and_pop(compiled):
    """Identical repeat instances are measured once and replayed, except where a block
    changes a skip stack: the DDPM UNet's figures are diffusers' (35.7M parameters)."""
    from archcc.inspect import summarize

    summary = summarize(Path(__file__).parents[1] / "specs" / "ddpm_unet.yaml", depth=2)
    assert summary.totals["params"] == 35_746_307
    assert [r.path for r in summary.rows if r.path.startswith("up_blocks.")] == \
        [f"up_blocks.{i}" for i in range(4)]


def test_config_refuses_lists_of_different_lengths(compiled):
    """The lists a stage loop walks together keep one length, checked when Config is made."""
    swin = compiled("swin")
    with pytest.raises(ValueError, match="depths, num_heads hold one entry per stage"):
        swin.Config(depths=(2, 2, 2), num_heads=(3, 6))
    assert len(swin.Config(depths=(2, 2), num_heads=(3, 6)).depths) == 2


def test_the_json_schema_knows_the_structure():
    """Editors complete and document every construct: block arguments, list params, a
    repeat's over/args/steps/pick/when, block layers, `when` on every op."""
    import json

    schema = json.loads((Path(__file__).parents[1] / "schema" / "archcc.schema.json")
                        .read_text())
    defs = schema["$defs"]
    assert "args" in defs["Block"]["properties"]
    assert {"over", "args", "steps", "pick", "when"} <= set(defs["Repeat"]["properties"])
    assert {"block", "args", "steps", "when"} <= set(defs["BlockLayer"]["properties"])
    assert all("when" in defs[name]["properties"] for name in ("Linear", "Attention"))
    params = json.dumps(schema["properties"]["params"])
    assert '"type": "array"' in params
