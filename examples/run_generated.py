"""Run a generated model the way a user would: import it, instantiate, call it.

    make demo          # builds specs/*.yaml into generated/, then runs this
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so `generated` imports

from generated.gpt2 import Config, Model, example_inputs  # noqa: E402


def main() -> None:
    torch.manual_seed(0)
    config = Config(n_layer=2)  # the same file serves every size
    model = Model(config).eval()
    (input_ids,) = example_inputs(batch=2, config=config, T=16)
    with torch.no_grad():
        logits = model(input_ids)
    params = sum(p.numel() for p in model.parameters())
    print(f"gpt2 (n_layer={config.n_layer}): {params / 1e6:.1f}M params, "
          f"input {tuple(input_ids.shape)} -> logits {tuple(logits.shape)}")
    print("next tokens:", logits[:, -1].argmax(-1).tolist())


if __name__ == "__main__":
    main()
