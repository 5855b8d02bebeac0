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
    assert not any(k.startswith("maybe.") for k in keys)  # when: false -> nn.Identity()
    assert isinstance(model.maybe, torch.nn.Identity)
    x = torch.randn(2, 3, 16)
    with torch.no_grad():
        y = model.shared(model.shared(x))
        for _ in range(4):  # one instance applied n_steps times, scale=3 passed in
            y = model.loop.fc(y) * 3
        for i in range(4):  # 2 groups over 4 steps: 0, 0, 1, 1
            y = model.groups[i * 2 // 4].fc(y) * 2
        y = model.choose[2].fc2(model.choose[1].fc(model.choose[0].fc2(y)) * 2)
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


def test_generated_code_loops_over_stages(built):
    source = (Path(built("unet_mini").__file__)).read_text()
    assert "for i in range(len(config.chans))" in source
    assert "skips.append(x)" in source and "skips.pop()" in source
    assert "Downsample2D(cout) if not last else nn.Identity()" in source
