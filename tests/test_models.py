"""Every registered network and the learned reconstructor: shapes, activations, gradients,
saving/loading, errors. Each property is one test parametrized over `invmap.models.names()`."""

from __future__ import annotations

import json

import pytest
import torch

import invmap.models as models
import invmap.operators as ops
from invmap.models import activations
from invmap.models.io import MODEL_JSON, MODEL_WEIGHTS
from invmap.physics import Physics

NAMES = models.names()
VECTOR_NAMES = [n for n in NAMES if models.MODELS.get(n).accepts_vectors]
# tiny sizes so the whole file runs in seconds; a new entry is tested with its defaults
SMALL = {
    "cnn": dict(depth=3, channels=4),
    "rescnn": dict(blocks=2, channels=4),
    "unet": dict(depth=3, base_channels=4, attention=True, norm="batch"),  # batch norm: buffers to save
    "vit": dict(patch_size=4, embed_dim=16, depth=1, heads=2, image_size=32),
    "mlp": dict(depth=1, width=8),
}
VARIANTS = [
    ("unet", dict(norm="none")), ("unet", dict(norm="none", attention=False, base_channels=8)), ("unet", dict(norm="group")), ("unet", dict(norm="instance")),
    ("unet", dict(depth=1)), ("unet", dict(space_to_depth=2, attention=False)), ("unet", dict(residual=False, attention=False)),
    ("vit", dict(pos_embed="sinusoidal")), ("vit", dict(residual=False, patch_size=5)),
    ("cnn", dict(residual=True, norm="batch", kernel_size=5)), ("rescnn", dict(norm="group")),
    ("mlp", dict(depth=0)), ("mlp", dict(depth=3, activation="tanh")),
]


def make(name: str, shape=(32, 32), **kw):
    return models.build_for(name, shape, shape, **{**SMALL.get(name, {}), **kw})


def sample(shape=(32, 32), b=2, seed=0):
    return torch.rand((b, 1) + tuple(shape), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_odd_size_and_channels_last(name):
    torch.manual_seed(0)
    net = make(name, (30, 34)).eval()
    x = sample((30, 34))
    with torch.no_grad():
        out = net(x)
        out_cl = net(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == (2, 1, 30, 34) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out_cl, out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,params", VARIANTS, ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in p.items())}" for n, p in VARIANTS])
def test_variants_shape(name, params):
    net = make(name, (30, 34), **params).eval()
    with torch.no_grad():
        out = net(sample((30, 34)))
    assert out.shape == (2, 1, 30, 34) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_build_for_other_output_shape(name):
    """Dense models map [B, C, *in_shape] to any out_shape; image-to-image models refuse."""
    if models.MODELS.get(name).same_size:
        with pytest.raises(ValueError, match="same size"):
            models.build_for(name, (30, 34), (32, 32), **SMALL.get(name, {}))
        return
    net = models.build_for(name, (30, 34), (32, 32), **SMALL.get(name, {}))
    assert net(sample((30, 34))).shape == (2, 1, 32, 32)


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_plain_vectors(name):
    net = models.build(name, in_features=3, out_features=2, **SMALL.get(name, {}))
    assert net(torch.randn(5, 3)).shape == (5, 2)
    with pytest.raises(ValueError, match=r"expected input \[N, 3\]"):
        net(torch.randn(5, 4))


@pytest.mark.parametrize("act", activations.names())
@pytest.mark.parametrize("name", NAMES)
def test_every_activation(name, act):
    net = make(name, (16, 16), activation=act).eval()
    with torch.no_grad():
        out = net(sample((16, 16)))
    assert out.shape == (2, 1, 16, 16) and torch.isfinite(out).all()
    if name != "linear":  # linear has no nonlinearity by definition
        assert any(isinstance(m, activations.module_class(act)) for m in net.modules())


@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_every_parameter(name):
    torch.manual_seed(0)
    net = make(name).train()
    out = net(sample())
    loss = ((out - sample(seed=1)) ** 2).mean()
    loss.backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None, f"no gradient for {pname}"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"zero/NaN gradient for {pname}"


@pytest.mark.parametrize("name", NAMES)
def test_bad_parameter_names_it(name):
    base = dict(in_features=4) if name in VECTOR_NAMES else {}
    with pytest.raises(ValueError, match="bogus") as e:
        models.build(name, bogus=1, **base)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="activation") as e:
        models.build(name, activation="swish", **base)
    assert "relu" in str(e.value)


def test_unknown_model_lists_available():
    with pytest.raises(ValueError, match="unknown model 'nope'.*unet"):
        models.build("nope")


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_reported(name):
    net = make(name)
    n = models.count_parameters(net)
    assert n == sum(p.numel() for p in net.parameters()) and n > 0
    assert models.describe(net).startswith(name + "(") and f"{n:,} parameters" in models.describe(net)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip(name, tmp_path):
    torch.manual_seed(0)
    phys = Physics(ops.build("identity", image_shape=(32, 32)))
    recon = models.LearnedReconstructor(make(name), input="adjoint")
    y = sample()
    recon.fit_input_scale(recon.preprocess(y, phys))
    recon.train()
    recon(y, phys)  # moves batch-norm running statistics away from their initial values
    recon.eval()
    models.save_model(tmp_path, recon, meta={"note": "round trip"}, physics=phys)
    loaded, meta = models.load_model(tmp_path)
    with torch.no_grad():
        assert torch.equal(loaded(y, phys), recon(y, phys))
    assert isinstance(loaded, models.LearnedReconstructor) and loaded.input == "adjoint"
    assert float(loaded.input_scale) == float(recon.input_scale) != 1.0
    assert meta["note"] == "round trip" and meta["architecture"]["name"] == name
    assert meta["parameter_count"] == models.count_parameters(recon.net)
    assert meta["physics"] == phys.spec() and meta["image_shape"] == [32, 32]
    assert sorted(p.name for p in tmp_path.iterdir()) == [MODEL_JSON, MODEL_WEIGHTS]  # no temp files left


def _saved(tmp_path):
    recon = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input="adjoint")
    models.save_model(tmp_path, recon)
    return tmp_path / MODEL_JSON, tmp_path / MODEL_WEIGHTS


def _edit_json(path, fn):
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


BAD_FILES = {
    "missing-dir": (lambda j, w: j.parent / "nowhere", FileNotFoundError, "model file not found"),
    "missing-weights": (lambda j, w: w.unlink() or j, FileNotFoundError, "model.safetensors"),
    "corrupt-json": (lambda j, w: (j.write_text('{"format": '), j)[1], ValueError, "model.json: not a valid"),
    "not-invmap-json": (lambda j, w: (j.write_text('{"a": 1}'), j)[1], ValueError, "not an invmap model"),
    "corrupt-weights": (lambda j, w: (w.write_bytes(b"\x00garbage" * 5), j)[1], ValueError, "model.safetensors: corrupt"),
    "truncated-weights": (lambda j, w: (w.write_bytes(w.read_bytes()[:-40]), j)[1], ValueError, "model.safetensors: corrupt"),
    "architecture-mismatch": (lambda j, w: _edit_json(j, lambda d: d["architecture"]["params"].update(channels=8)) or j,
                              ValueError, "tensor 'net.net.0.weight' has shape"),
    "missing-tensor": (lambda j, w: _edit_json(j, lambda d: d["architecture"]["params"].update(norm="batch")) or j,
                       ValueError, "tensor 'net.net.1.weight' is missing"),
    "unknown-architecture": (lambda j, w: _edit_json(j, lambda d: d["architecture"].update(name="zzz")) or j,
                             ValueError, "unknown model 'zzz'"),
    "bad-param-in-json": (lambda j, w: _edit_json(j, lambda d: d["architecture"]["params"].update(activation="swish")) or j,
                          ValueError, "activation"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_model_files_give_clear_errors(kind, tmp_path):
    j, w = _saved(tmp_path)
    corrupt, exc, match = BAD_FILES[kind]
    target = corrupt(j, w)
    with pytest.raises(exc, match=match) as e:
        models.load_model(target)
    assert "\n" not in str(e.value)


def _image_ops():
    out = [("identity", {}), ("blur", {})]
    return [o for o in out if o[0] in ops.names()]


STRATEGY_CASES = [(s, o) for s in models.INPUTS if s != "fbp" for o, _ in _image_ops()] + [("fbp", "tomography")]


@pytest.mark.parametrize("strategy,opname", STRATEGY_CASES)
def test_input_strategies(strategy, opname):
    if opname not in ops.names():
        pytest.skip(f"operator '{opname}' is not registered")
    params = dict(angles=16) if opname == "tomography" else {}
    op = ops.build(opname, image_shape=(16, 16), **params)
    phys = Physics(op)
    x = sample((16, 16))
    y = phys.measure(x)
    recon = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4), input=strategy, pinv_iters=30)
    z = recon.preprocess(y, phys)
    assert not z.requires_grad
    if strategy == "measurement":
        assert torch.equal(z, y)
    elif strategy == "adjoint":
        assert torch.equal(z, op.adjoint(y))
    elif strategy == "pinv":  # CGLS reduces the data misfit well below that of the adjoint, scaled optimally
        a = op.adjoint(y)
        c = (op(a) * y).sum() / (op(a) ** 2).sum()
        assert (op(z) - y).norm() < 0.5 * (op(c * a) - y).norm() + 1e-6
    else:
        from invmap.solvers.fbp import fbp

        torch.testing.assert_close(z, fbp(y, op))
    out = recon(y, phys)
    assert out.shape == x.shape
    out.pow(2).mean().backward()
    assert all(p.grad is not None for p in recon.parameters())
    assert torch.equal(recon(y, op), recon(y, phys))  # a bare operator works too


def test_pinv_matches_least_squares():
    """Enough CGLS steps reach the least-squares solution of a small dense problem."""
    op = ops.build("blur", image_shape=(6, 6)) if "blur" in ops.names() else ops.build("identity", image_shape=(6, 6))
    K = torch.stack([op(e.reshape(1, 1, 6, 6)).reshape(-1) for e in torch.eye(36, dtype=torch.float64)], 1)
    y = torch.rand(2, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    recon = models.LearnedReconstructor(models.build("cnn", depth=1), input="pinv", pinv_iters=200)
    z = recon.preprocess(y, op)
    ref = torch.linalg.lstsq(K, y.reshape(2, 36).T).solution.T.reshape(2, 1, 6, 6)
    torch.testing.assert_close(op(z), op(ref), rtol=1e-6, atol=1e-8)


def test_complex_measurement_becomes_real_channels():
    class FFT(ops.LinearOperator):
        complex_output = True

        def __init__(self):
            super().__init__((8, 8), (8, 8))

        def _forward(self, x):
            return torch.fft.fft2(x, norm="ortho")

        def _adjoint(self, y):
            return torch.fft.ifft2(y, norm="ortho").real

    op = FFT()
    y = op(sample((8, 8)))
    recon = models.LearnedReconstructor(models.build("cnn", depth=2, channels=4, in_channels=2), input="measurement")
    z = recon.preprocess(y, op)
    assert z.shape == (2, 2, 8, 8) and z.dtype == torch.float32
    assert torch.equal(z[:, 0], y[:, 0].real) and torch.equal(z[:, 1], y[:, 0].imag)
    assert recon(y, op).shape == (2, 1, 8, 8)
    assert models.LearnedReconstructor(models.build("cnn", depth=1), input="adjoint").preprocess(y, op).dtype == torch.float32


def test_input_scale_is_undone_for_image_inputs():
    net = models.build("cnn", depth=2, channels=4)
    recon = models.LearnedReconstructor(net, input="adjoint")
    z = 50.0 * sample()
    s = recon.fit_input_scale(z)
    assert abs(float((s * z).pow(2).mean().sqrt()) - 1.0) < 1e-5
    torch.testing.assert_close(recon.from_input(z), net(s * z) / s)
    recon_m = models.LearnedReconstructor(net, input="measurement")
    recon_m.fit_input_scale(z)
    torch.testing.assert_close(recon_m.from_input(z), net(s * z))
    with pytest.raises(ValueError, match="input scale"):
        recon.fit_input_scale(torch.zeros(2, 1, 4, 4))


def test_bad_input_strategy():
    with pytest.raises(ValueError, match="unknown input strategy 'raw'.*measurement, adjoint, fbp, pinv"):
        models.LearnedReconstructor(models.build("cnn"), input="raw")


def test_check_compatible(tmp_path):
    op8, op10 = (ops.build("identity", image_shape=(s, s)) for s in (8, 10))
    dense = models.LearnedReconstructor(models.build_for("linear", (8, 8), (8, 8)), input="measurement")
    models.save_model(tmp_path / "dense", dense, physics=Physics(op8))
    _, meta = models.load_model(tmp_path / "dense")
    models.check_compatible(meta, Physics(op8))
    models.check_compatible(meta, (8, 8))
    with pytest.raises(ValueError, match=r"expects network input \[1, 8, 8\].*gives \[1, 10, 10\]"):
        models.check_compatible(meta, op10)
    with pytest.raises(ValueError, match="does not match"):
        models.check_compatible(meta, torch.zeros(2, 1, 10, 10))
    conv = models.LearnedReconstructor(models.build("cnn", depth=1), input="measurement")
    models.save_model(tmp_path / "conv", conv, physics=Physics(op8))
    _, meta = models.load_model(tmp_path / "conv")
    with pytest.raises(ValueError, match=r"trained for images \[8, 8\]"):
        models.check_compatible(meta, (6, 8))
    conv_adj = models.LearnedReconstructor(models.build("cnn", depth=1), input="adjoint")
    models.save_model(tmp_path / "adj", conv_adj, physics=Physics(op8))
    models.check_compatible(models.load_model(tmp_path / "adj")[1], op10)  # any image size is fine


def test_save_refuses_reserved_meta_and_unbuilt_nets(tmp_path):
    recon = models.LearnedReconstructor(models.build("cnn", depth=1), input="adjoint")
    with pytest.raises(ValueError, match="'architecture' are reserved"):
        models.save_model(tmp_path, recon, meta={"architecture": 1})
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        models.save_model(tmp_path, recon, meta={"x": object()})
    with pytest.raises(ValueError, match="not built by invmap.models.build"):
        models.save_model(tmp_path, torch.nn.Linear(2, 2))


def test_bare_network_round_trip(tmp_path):
    net = models.build("mlp", in_features=1, out_features=1, depth=1, width=8).eval()
    models.save_model(tmp_path, net)
    loaded, meta = models.load_model(tmp_path / MODEL_JSON)
    x = torch.linspace(-1, 1, 7)[:, None]
    assert meta["input"] is None and torch.equal(loaded(x), net(x))
