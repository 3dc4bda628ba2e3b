"""Run by ``torchrun`` in tests/test_shards.py: two ranks segment one Zarr image together.

1. ``biounet predict MODEL big.zarr --out two --probabilities``: the command line, which joins
   the gloo process group itself (and stays in it);
2. :func:`tile_apply` of the same network (crop mode, test-time augmentation) into
   ``tiles.zarr``, each rank with ``Shard.from_env``, in that process group.

Each rank writes ``rank<r>.json``: the tiles its network computed in each part.
"""

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

import biounet
from biounet.inference.tiling import Shard, chunk_aligned_stride, dihedral_transforms, tile_apply
from biounet.model.unet import UNet

CHUNKS = (32, 20)  # the image is 3 x 3 chunks: tiles in whole chunks, also flipped


def tiles_case(tmp: Path) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """The predictor, image and arguments of part 2 (the test recomputes them alone)."""
    net = biounet.load(tmp / "m.pt").net.eval()
    image = np.asarray(zarr.open_array(str(tmp / "big.zarr"), mode="r")[:96, :60]) / 4000.0
    stride = chunk_aligned_stride((36, 36), CHUNKS, net.geometry.axes[0].alignment)
    tile = tuple(net.geometry.axes[0].input_size_for_output(s) for s in stride)

    def fn(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.softmax(net(x), dim=1)

    kw = dict(
        tile_shape=tile,
        margin=net.margin,
        stride=stride,
        transforms=dihedral_transforms(2),
        channels=2,
    )
    return fn, image[None].astype(np.float32), kw


def main() -> None:
    tmp = Path(sys.argv[1])
    torch.set_num_threads(1)
    forwards = {"predict_files": 0, "tile_apply": 0}
    part = ["predict_files"]
    plain_forward = UNet.forward

    def counted(self: UNet, x: torch.Tensor) -> torch.Tensor:
        forwards[part[0]] += len(x)
        return plain_forward(self, x)

    UNet.forward = counted  # type: ignore[method-assign]
    from biounet.cli import main as cli

    args = ["predict", str(tmp / "m.pt"), str(tmp / "big.zarr"), "--out", str(tmp / "two")]
    status = cli([*args, "--probabilities", "--device", "cpu", "--no-progress"])
    if status != 0:
        sys.exit(status)
    assert torch.distributed.get_backend() == "gloo"  # the command line's group

    part[0] = "tile_apply"
    rank = torch.distributed.get_rank()
    fn, image, kw = tiles_case(tmp)
    if rank == 0:
        zarr.create_array(
            str(tmp / "tiles.zarr"), shape=(2, *image.shape[1:]), chunks=(2, *CHUNKS), dtype="f4"
        )
    torch.distributed.barrier()
    out = zarr.open_array(str(tmp / "tiles.zarr"), mode="r+")
    tile_apply(fn, image, out=out, shard=Shard.from_env(out), **kw)
    torch.distributed.barrier()
    (tmp / f"rank{rank}.json").write_text(json.dumps(forwards))
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
