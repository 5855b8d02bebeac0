"""Source of the rotary helpers written into generated files (:mod:`archcc.ops.rotary`).

``Rotary`` makes the angles; each scaling is a subclass that only changes the frequencies
(or, for dynamic NTK, recomputes them past the trained length); ``apply_rotary`` turns q and
k. The arithmetic follows Hugging Face's ``modeling_rope_utils`` operation by operation, so
the frequencies agree to the bit.
"""

from __future__ import annotations

from archcc.ops import register_helper

# scaling -> the helper class it instantiates
CLASSES = {"none": "Rotary", "linear": "LinearRotary", "dynamic": "DynamicRotary",
           "llama3": "Llama3Rotary", "yarn": "YarnRotary"}

APPLY = '''
def apply_rotary(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, interleaved: bool = False
) -> torch.Tensor:
    """x (B, nh, T, hs) turned by a Rotary's angles cos, sin (T, rot).

    The first rot features turn in pairs (i, i + rot / 2), or (2i, 2i + 1) when
    ``interleaved`` (GPT-J); features past rot (partial rotary) pass through unchanged.
    """
    rot = cos.shape[-1]
    x_rot, x_pass = x[..., :rot], x[..., rot:]
    if interleaved:
        turned = torch.stack((-x_rot[..., 1::2], x_rot[..., 0::2]), dim=-1).flatten(-2)
    else:
        x1, x2 = x_rot.chunk(2, dim=-1)
        turned = torch.cat((-x2, x1), dim=-1)
    return torch.cat((x_rot * cos + turned * sin, x_pass), dim=-1)
'''

ROTARY = '''
class Rotary(nn.Module):
    """Rotary position angles (RoFormer, Su et al. 2021) for ``dim`` features of a head.

    Pair i turns by position * theta ** (-2i / dim). ``forward(x, offset)`` returns cos and
    sin (T, dim) for positions offset .. offset + T - 1 of x (..., T, hs), computed in float32
    and cast to x's dtype (Hugging Face's numerics). Subclasses change the frequencies.
    """

    def __init__(self, dim: int, theta: float = 10000.0, interleaved: bool = False) -> None:
        super().__init__()
        self.dim, self.theta, self.interleaved = dim, theta, interleaved
        self.attention_factor = 1.0  # YaRN scales cos and sin
        self.register_buffer("inv_freq", self.frequencies(theta), persistent=False)

    def _apply(self, fn, recurse: bool = True):
        """``model.to(device)`` moves the frequencies, ``model.to(torch.bfloat16)`` leaves
        them float32 (rounded frequencies would turn distant positions visibly wrong)."""
        frequencies = self.inv_freq
        super()._apply(fn, recurse)
        self.inv_freq = frequencies.to(self.inv_freq.device)
        return self

    def frequencies(self, theta: float) -> torch.Tensor:
        """theta ** (-2i / dim) for each pair i: (dim / 2,) float32."""
        return 1.0 / theta ** (torch.arange(0, self.dim, 2, dtype=torch.int64).float() / self.dim)

    def inv_freq_at(self, length: int) -> torch.Tensor:
        """The frequencies for a sequence of ``length`` positions (fixed unless dynamic)."""
        return self.inv_freq

    def forward(self, x: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        positions = (torch.arange(x.shape[-2], device=x.device) + offset).float()
        freqs = positions[:, None] * self.inv_freq_at(offset + x.shape[-2]).float()  # (T, dim/2)
        if self.interleaved:  # pairs (2i, 2i + 1)
            angles = freqs.repeat_interleave(2, dim=-1)
        else:  # pairs (i, i + dim / 2)
            angles = torch.cat((freqs, freqs), dim=-1)
        cos, sin = angles.cos() * self.attention_factor, angles.sin() * self.attention_factor
        return cos.to(x.dtype), sin.to(x.dtype)
'''

LINEAR = '''
class LinearRotary(Rotary):
    """Position interpolation (Chen et al. 2023): every frequency divided by ``factor``."""

    def __init__(self, dim: int, theta: float, factor: float, interleaved: bool = False) -> None:
        super().__init__(dim, theta, interleaved)
        self.inv_freq = self.inv_freq / factor
'''

DYNAMIC = '''
class DynamicRotary(Rotary):
    """Dynamic NTK scaling: past ``max_positions`` the base grows with the sequence length,
    so the angles of a long sequence stay in the trained range (Hugging Face's "dynamic")."""

    def __init__(
        self, dim: int, theta: float, factor: float, max_positions: int, interleaved: bool = False
    ) -> None:
        super().__init__(dim, theta, interleaved)
        self.factor, self.max_positions = factor, max_positions

    def inv_freq_at(self, length: int) -> torch.Tensor:
        if length <= self.max_positions:
            return self.inv_freq
        grown = self.factor * length / self.max_positions - (self.factor - 1)
        theta = self.theta * grown ** (self.dim / (self.dim - 2))
        return self.frequencies(theta).to(self.inv_freq.device)
'''

LLAMA3 = '''
class Llama3Rotary(Rotary):
    """Llama 3.1's scaling: wavelengths longer than the original context / low_freq_factor
    are divided by ``factor``, shorter than / high_freq_factor kept, the band between blended.
    """

    def __init__(
        self,
        dim: int,
        theta: float,
        factor: float,
        low_freq_factor: float,
        high_freq_factor: float,
        original_max_positions: int,
        interleaved: bool = False,
    ) -> None:
        super().__init__(dim, theta, interleaved)
        inv_freq = self.inv_freq
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > original_max_positions / low_freq_factor, inv_freq / factor,
                             inv_freq)
        smooth = (original_max_positions / wavelen - low_freq_factor) / (
            high_freq_factor - low_freq_factor
        )
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < original_max_positions / high_freq_factor) & ~(
            wavelen > original_max_positions / low_freq_factor
        )
        self.inv_freq = torch.where(medium, blended, scaled)
'''

YARN = '''
class YarnRotary(Rotary):
    """YaRN (Peng et al. 2023): pairs that turn more than ``beta_fast`` times over the original
    context keep their frequency, those turning fewer than ``beta_slow`` times are divided by
    ``factor``, a linear ramp blends between; cos and sin are scaled by ``attention_factor``.
    """

    def __init__(
        self,
        dim: int,
        theta: float,
        factor: float,
        original_max_positions: int,
        beta_fast: float,
        beta_slow: float,
        attention_factor: float,
        truncate: bool = True,
        interleaved: bool = False,
    ) -> None:
        super().__init__(dim, theta, interleaved)
        self.attention_factor = attention_factor

        def pair_turning(turns: float) -> float:  # the pair that turns `turns` times
            return dim * math.log(original_max_positions / (turns * 2 * math.pi)) / (
                2 * math.log(theta)
            )

        low, high = pair_turning(beta_fast), pair_turning(beta_slow)
        if truncate:
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        high = high + 0.001 if low == high else high
        ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
        kept = 1 - ramp  # share of the original frequency
        pos_freqs = theta ** (torch.arange(0, dim, 2).float() / dim)
        self.inv_freq = (1.0 / (factor * pos_freqs)) * (1 - kept) + (1.0 / pos_freqs) * kept
'''

register_helper("apply_rotary", APPLY)
register_helper("Rotary", ROTARY)
register_helper("LinearRotary", LINEAR, needs=("Rotary",))
register_helper("DynamicRotary", DYNAMIC, needs=("Rotary",))
register_helper("Llama3Rotary", LLAMA3, needs=("Rotary",))
register_helper("YarnRotary", YARN, needs=("Rotary",))
