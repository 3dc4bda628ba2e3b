"""One training step: precision and memory format, forward, loss, backward, optimiser step."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from biounet.config import LossConfig, OptimConfig, TrainConfig
from biounet.core.runtime import auto_tune_allocator
from biounet.train.losses import dice_ce_loss

__all__ = ["Precision", "place", "train_step"]


@dataclass(frozen=True)
class Precision:
    """How tensors are laid out and computed: device, mixed precision, memory format."""

    device: torch.device
    amp: str = "off"  #: "off", "bf16" or "fp16" (on CUDA only)
    channels_last: bool = False
    ndim: int = 2

    @classmethod
    def of(cls, cfg: TrainConfig, device: torch.device) -> Precision:
        """The precision a configuration asks for, on ``device``."""
        amp = cfg.amp if device.type == "cuda" else "off"
        return cls(device, amp, cfg.channels_last, cfg.data.ndim)

    @property
    def memory_format(self) -> torch.memory_format:
        """Channels-last (2D or 3D) where configured, else contiguous."""
        if not self.channels_last:
            return torch.contiguous_format
        return torch.channels_last if self.ndim == 2 else torch.channels_last_3d

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler: fp16 needs loss scaling against underflow, bf16 and fp32 not."""
        return torch.amp.GradScaler("cuda", enabled=self.amp == "fp16")


def train_step(
    net: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    precision: Precision,
    losses: LossConfig,
    optim: OptimConfig,
    it: int,
) -> float:
    """One optimiser step on a batch: forward (mixed precision if on), loss, backward, step."""
    dev = precision.device
    x = batch["image"].to(dev, non_blocking=True)  # (B, C, *in_tile)
    x = x.contiguous(memory_format=precision.memory_format)
    y, w = batch["target"].to(dev), batch["weight"].to(dev)  # (B, *out_tile)
    half = torch.bfloat16 if precision.amp == "bf16" else torch.float16
    with torch.autocast(dev.type, dtype=half, enabled=precision.amp != "off"):
        logits = net(x)  # (B, K, *out_tile)
    dice_weights = losses.dice_class_weights
    loss = dice_ce_loss(
        logits.float(), y, w, ce=losses.ce, dice=losses.dice,
        class_weights=torch.tensor(dice_weights) if dice_weights else None,
    )  # fmt: skip
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"the loss became {loss.item()} at iteration {it + 1}; lower optim.lr "
            f"(now {optim.lr}) or check the data"
        )
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if optim.clip_grad:
        scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
        params = [p for group in opt.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, optim.clip_grad)
    scaler.step(opt)
    scaler.update()
    return float(loss.item())


def place(model: torch.nn.Module, precision: Precision) -> None:
    """Move the network to its device and memory format."""
    if precision.device.type == "cpu":
        auto_tune_allocator()  # reuse mapped memory for activations (see core.runtime)
    model.to(precision.device)
    if precision.channels_last:
        model.to(memory_format=precision.memory_format)  # type: ignore[call-overload]
