"""What the training loop needs before its first step: device, precision, run directory, data.

Training pairs (y, x) come from `invmap.data.PairDataset`. The clean measurements K x of
all training images are simulated once (batched); each minibatch then draws its noise
per sample with the data set's own generators (new noise every epoch with
``fresh_noise``) and computes the network input z = P(y, K) (FBP, Kᵀy, ...) batched.
Without fresh noise, and for the fixed validation pairs, z is computed once.

With ``stream`` (``training.stream``: data larger than memory) nothing is simulated up
front: each minibatch's pairs are read and simulated when needed, by DataLoader workers
(``training.num_workers``), so memory does not grow with the number of training pairs.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import torch

from ..capabilities import capabilities
from ..config import Config
from ..data import PairDataset
from ..data.measurements import load_split


class Pairs:
    """Training or validation pairs with their network inputs (see the module docstring).

    Drawn physics (`invmap.distributions`): sample i has its own K_{ω_i}. A post-processing
    model takes each sample's z_i = P(y_i, K_{ω_i}) in any minibatch; a reconstructor with K
    inside its map (``recon.operator_inside``: lgd, lpd, unrolled, PnP) is called with one K
    per minibatch, so `minibatches` then makes every minibatch of samples that share their K
    (``shared``) and `epoch` yields each minibatch's physics with it.

    ``raw`` (self-supervised training, `invmap.selfsup`): the minibatches carry y itself in place
    of z (the loss calls the whole map f(y, K) on y and on y's transforms or halves), and every
    minibatch shares its K under drawn physics.
    """

    def __init__(self, config: Config, physics, split: str, recon, device: torch.device,
                 fresh_noise: bool = False, chunk: int = 64, num_workers: int = 0, stream: bool = False,
                 raw: bool = False):
        d = config.data
        src = d.images(split, config.seed)
        sim = d.nominal_simulation if split != "test" else d.test_simulation
        drawn = config.physics_distribution() if split != "test" else None  # ω_i per sample (invmap.distributions)
        self.ds = PairDataset(src, drawn if drawn is not None and drawn.random else physics, seed=config.seed,
                              fresh_noise=fresh_noise, simulation=sim)
        self.physics, self.recon, self.device, self.chunk = physics, recon, device, chunk
        self.n, self.num_workers = len(self.ds), num_workers
        self.shared = self.ds.drawn is not None and (raw or capabilities(recon).operator_inside)
        # y itself (raw: a self-supervised loss calls f_Θ(y, K) whole), or the network's input z; no recon: y only
        self.preprocess = _measurement if raw or recon is None else recon.preprocess
        self.given = bool(d.measurements) and split != "test"  # y from files, no x (`invmap.data.measurements`)
        if self.given:
            op = physics.operator
            self.clean = load_split(d.measurements, split, d.train, d.val, op.out_shape,
                                    bool(op.complex_output)).to(device)  # the measurements, noise and all
            self.n = len(self.clean)
            self.x = torch.full((self.n, 1, d.size, d.size), float("nan"), device=device)  # no x: never read
            self.z = self.inputs(list(range(self.n)))
            return
        self.clean: torch.Tensor | list[torch.Tensor] | None = None
        self.z: torch.Tensor | list[torch.Tensor] | None = None
        if stream or hasattr(src, "set_epoch"):  # augmented images: y = K x' + e simulated per minibatch
            return
        idx = list(range(self.n))
        if self.ds.drawn is not None:  # K_{ω_i} x_i, each distinct K built once (indices sorted by their draw)
            order = sorted(idx, key=lambda i: (self.ds.draw(i).simulation, self.ds.draw(i).sim_operator))
            self.clean, self.x = [None] * self.n, torch.empty(self.n, 1, d.size, d.size, device=device)
            for i in range(0, self.n, chunk):
                part = order[i:i + chunk]
                ys, x = self.ds.clean_each(part, device=device)
                self.x[part] = x
                for k, y in zip(part, ys):
                    self.clean[k] = y
            if not fresh_noise and self.shared:  # z_i = y_i of each K's own shape, kept per sample
                self.z = [None] * self.n
                for part in self.minibatches(torch.arange(self.n), chunk):
                    for k, z in zip(part.tolist(), self.inputs(part.tolist()).split(1)):
                        self.z[k] = z
            elif not fresh_noise:
                self.z = self.inputs(idx)
            return
        if num_workers > 0:  # render + simulate in worker processes (image folders, fine grids)
            loader = torch.utils.data.DataLoader(_Clean(self.ds), batch_size=chunk, num_workers=num_workers)
            parts = [(yc.to(device), x.to(device)) for yc, x in loader]
        else:
            parts = [self.ds.clean(idx[i:i + chunk], device=device) for i in range(0, self.n, chunk)]
        self.clean = torch.cat([p[0] for p in parts])  # K x, [N, 1, *out_shape]
        self.x = torch.cat([p[1] for p in parts])      # x,   [N, 1, H, W]
        self.z = None if fresh_noise else self.inputs(idx)

    def minibatches(self, order: torch.Tensor, size: int) -> list[torch.Tensor]:
        """The minibatches (index tensors, at most `size` each) of the samples in `order`: its
        consecutive runs; with ``shared``, each K's samples in `order`'s order, cut into runs,
        the minibatches sorted by where their first sample stands in `order` (so a shuffled
        `order` shuffles them; every K still gets one last, shorter minibatch)."""
        if not self.shared:
            return list(order.split(size))
        groups: dict[str, list[int]] = {}
        for i in order.tolist():
            groups.setdefault(self.ds.draw(i).operator, []).append(i)
        place = {i: k for k, i in enumerate(order.tolist())}
        out = [g[j:j + size] for g in groups.values() for j in range(0, len(g), size)]
        return [torch.tensor(b, dtype=torch.long) for b in sorted(out, key=lambda b: place[b[0]])]

    def physics_for(self, idx: Sequence[int] | torch.Tensor):
        """The physics a minibatch is reconstructed with: its shared drawn K (``shared``), else the task's."""
        if not self.shared:
            return self.physics
        return self.ds.physics_of(self.ds.draw(int(idx[0])))

    def noisy(self, idx: Sequence[int]) -> torch.Tensor:
        """y = noise(K x_i) with sample i's own generator (the data set's current epoch); given
        measurements as they are."""
        if self.given:
            return self.clean[list(idx)]
        if self.clean is None:  # streaming
            return self.ds.simulate(idx, device=self.device)[0]
        return torch.cat([self.physics.noisy(self.clean[i:i + 1], self.ds.generator(i)) for i in idx])

    def inputs(self, idx: Sequence[int]) -> torch.Tensor:
        """Network inputs z = P(y, K) for `idx`, computed in chunks (drawn physics: each sample's own K)."""
        idx = list(idx)
        if self.ds.drawn is not None:
            return torch.cat([self.ds.inputs_each(idx[i:i + self.chunk], self.clean, self.preprocess,
                                                 self.recon.noise_conditional)
                              for i in range(0, len(idx), self.chunk)])
        return torch.cat([self.preprocess(self.noisy(idx[i:i + self.chunk]), self.physics)
                          for i in range(0, len(idx), self.chunk)])

    def batch(self, idx: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """(z, x, physics) for a minibatch; with fresh noise, the noise of `epoch`."""
        if isinstance(self.z, list):
            return torch.cat([self.z[i] for i in idx.tolist()]), self.x[idx], self.physics_for(idx)
        if self.z is not None:
            return self.z[idx], self.x[idx], self.physics
        self.ds.set_epoch(epoch)
        return self.inputs(idx.tolist()), self.x[idx], self.physics_for(idx)

    def epoch(self, batches: Sequence[torch.Tensor], epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, Any]]:
        """(z, x, physics) for each minibatch of indices in `batches`, in order (streamed by
        DataLoader workers when nothing is held in memory)."""
        if self.clean is not None:
            yield from (self.batch(idx, epoch) for idx in batches)
            return
        self.ds.set_epoch(epoch)
        if self.ds.drawn is not None:  # augmented images under drawn physics: each sample's own K, per minibatch
            for idx in batches:
                part = idx.tolist()
                ys, x = self.ds.clean_each(part, device=self.device)
                z = self.ds.inputs_each(part, dict(zip(part, ys)), self.preprocess, self.recon.noise_conditional)
                yield z, x, self.physics_for(idx)
            return
        loader = torch.utils.data.DataLoader(self.ds, batch_sampler=[b.tolist() for b in batches],
                                             num_workers=self.num_workers)
        for y, x in loader:
            yield self.preprocess(y.to(self.device), self.physics), x.to(self.device), self.physics


def _measurement(y: torch.Tensor, physics) -> torch.Tensor:
    """z = y: what `Pairs` hands a self-supervised loss."""
    return y


class Preprocessed:
    """The network inputs z = P(y, K) of raw `Pairs` (y in place of z), for ``recon.prepare``
    (the input scale of post-processing from up to 256 training inputs; never x)."""

    def __init__(self, pairs: Pairs, recon):
        self.pairs, self.recon, self.n, self.z = pairs, recon, pairs.n, None
        self.physics = pairs.physics

    def inputs(self, idx) -> torch.Tensor:
        idx = torch.as_tensor(list(idx), dtype=torch.long)
        p = self.pairs
        return torch.cat([self.recon.preprocess(p.batch(b, 0)[0] if p.z is not None else p.inputs(b.tolist()),
                                                p.physics_for(b)) for b in p.minibatches(idx, p.chunk)])


class _Clean(torch.utils.data.Dataset):
    """(K x, x) without noise, batched through `PairDataset.clean` (for DataLoader workers)."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitems__(self, indices):
        yc, x = self.ds.clean(list(indices))
        return list(zip(yc.unbind(0), x.unbind(0)))

    def __getitem__(self, i):
        return self.__getitems__([i])[0]


__all__ = ["Pairs", "Preprocessed"]
