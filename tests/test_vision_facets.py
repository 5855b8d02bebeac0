"""Patchify and pooling facets against timm and Hugging Face: positions resampled to other
image sizes, fixed 2-D sin/cos positions, unfold+linear patches, mean pooling."""

from __future__ import annotations

import pytest
import torch

import archcc
from archcc.diagnostics import ArchccError

timm = pytest.importorskip("timm")

SPEC = """\
archcc: 1
name: {name}
params: {{image_size: 32, patch_size: 8, dim: 64, depth: 2, heads: 4, num_classes: 10}}
inputs:
  pixels: {{shape: [B, 3, H, W]}}
blocks:
  Block:
    layers:
      attn: {{op: residual, dim: dim, eps: 1.0e-6,
             layer: {{op: attention, dim: dim, heads: heads}}}}
      mlp: {{op: residual, dim: dim, eps: 1.0e-6, layer: {{op: ffn, dim: dim, hidden: 4 * dim}}}}
    forward: |
      return mlp(attn(x))
model:
  layers:
    patch_embed: {{op: patchify, in_channels: 3, dim: dim, patch: patch_size, {facets}}}
    blocks: {{repeat: Block, times: depth}}
    {norm}: {{op: layernorm, dim: dim, eps: 1.0e-6}}
    head: {{op: linear, in: dim, out: num_classes}}
  forward: |
    {forward}
checkpoint:
  timm:
    rename:
      blocks.{{i}}.norm1: blocks.{{i}}.attn_norm
      blocks.{{i}}.norm2: blocks.{{i}}.mlp_norm
      blocks.{{i}}.mlp.fc1: blocks.{{i}}.mlp.up
      blocks.{{i}}.mlp.fc2: blocks.{{i}}.mlp.down
      cls_token: patch_embed.cls_token
{pos_rule}"""
CLS_HEAD = "x = norm(blocks(patch_embed(pixels)))\n    return head(x[:, 0])"
MEAN_HEAD = ("x = blocks(patch_embed(pixels))\n"
             "    return head(fc_norm(global_avg_pool(x[:, 1:], dim=1)))")
TIMM = dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4, num_classes=10)


def _build(tmp_path, name, facets, forward=CLS_HEAD, norm="norm"):
    # only a learned table is a weight; a rename naming no parameter is an error
    pos_rule = "      pos_embed: patch_embed.pos_embed\n" if "learned" in facets else ""
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, facets=facets, forward=forward, norm=norm,
                                pos_rule=pos_rule))
    return archcc.build(path, out_dir=tmp_path / "out")


def _timm(**extra):
    ref = timm.create_model("vit_base_patch16_224", pretrained=False, **TIMM, **extra).eval()
    with torch.no_grad():
        ref.pos_embed.normal_()
        ref.cls_token.normal_()
    return ref


def test_learned_positions_resample_to_other_image_sizes(tmp_path):
    mod = _build(tmp_path, "vit_dynamic", "cls_token: true, positions: learned, "
                                          "image: image_size, interpolate: true")
    ref = _timm(dynamic_img_size=True)
    ours = mod.Model().eval()
    ours.load_state_dict(mod.convert_state_dict(ref.state_dict(), "timm"), strict=True)
    with torch.no_grad():
        for side in (32, 48, 24):  # the table is 4 x 4; also 6 x 6 and 3 x 3 grids
            pixels = torch.randn(2, 3, side, side)
            torch.testing.assert_close(ours(pixels), ref(pixels))


def test_mean_pooling_matches_timm_avg_pool(tmp_path):
    mod = _build(tmp_path, "vit_avg", "cls_token: true, positions: learned, image: image_size",
                 forward=MEAN_HEAD, norm="fc_norm")
    ref = _timm(global_pool="avg")
    ours = mod.Model().eval()
    ours.load_state_dict(mod.convert_state_dict(ref.state_dict(), "timm"), strict=True)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(pixels), ref(pixels))


def test_sincos_positions_match_mae(tmp_path):
    vit_mae = pytest.importorskip("transformers.models.vit_mae.modeling_vit_mae")
    mod = _build(tmp_path, "vit_sincos", "cls_token: true, positions: sincos, image: 32")
    table = mod.Model().patch_embed.pos_embed
    canonical = vit_mae.build_2d_sinusoidal_position_embedding(4, 4, 64, cls_token=True)
    # MAE's released layout (and ours): [sin|cos of the column, sin|cos of the row]
    expected = torch.cat([canonical[:, 32:], canonical[:, :32]], dim=1)
    torch.testing.assert_close(table[0], expected.float())
    assert "pos_embed" not in dict(mod.Model().state_dict())  # fixed: not a weight


def test_unfold_linear_patches_equal_the_strided_conv(tmp_path):
    conv = _build(tmp_path, "vit_conv", "cls_token: true")
    linear = _build(tmp_path, "vit_linear", "cls_token: true, proj: linear")
    a, b = conv.Model().eval(), linear.Model().eval()
    weights = dict(a.state_dict())
    weights["patch_embed.proj.weight"] = weights["patch_embed.proj.weight"].flatten(1)
    b.load_state_dict(weights, strict=True)
    pixels = torch.randn(2, 3, 40, 24)  # no position table: any multiple of the patch
    with torch.no_grad():
        torch.testing.assert_close(b(pixels), a(pixels))
    assert "F.unfold(x, kernel_size=self.patch, stride=self.patch)" in (tmp_path / "out" /
                                                             "vit_linear.py").read_text()


@pytest.mark.parametrize("facets, message", [
    ("positions: learned", "positions: learned needs `image`"),
    ("cls_token: true, layout: grid", "layout: grid is a conv stem"),
    ("interpolate: true", "interpolate resamples learned positions"),
])
def test_patchify_facet_mistakes_are_located_errors(tmp_path, facets, message):
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.format(name="bad", facets=facets, forward=CLS_HEAD, norm="norm",
                                pos_rule=""))
    with pytest.raises(ArchccError) as err:
        archcc.build(path, out_dir=tmp_path / "out")
    assert message in str(err.value)
    assert "bad.yaml:16:5: error: model.layers.patch_embed" in str(err.value)


def test_window_attention_mistakes_are_located_errors(tmp_path):
    text = SPEC.format(name="bad", facets="cls_token: true", forward=CLS_HEAD, norm="norm",
                       pos_rule="")
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("layer: {op: attention, dim: dim, heads: heads}",
                                 "layer: {op: attention, dim: dim, heads: heads, window: 4, "
                                 "shift: 2}"))
    with pytest.raises(ArchccError, match="a shifted window needs `grid`"):
        archcc.build(path, out_dir=tmp_path / "out")
    path.write_text(text.replace("blocks: {repeat: Block, times: depth}",
                                 "blocks: {repeat: Block, cycle: [Blok], times: depth}"))
    with pytest.raises(ArchccError, match="unknown block 'Blok' in cycle"):
        archcc.build(path, out_dir=tmp_path / "out")
