"""Stateful models: the state protocol and chunked runs that equal one pass."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

import pytorch_feature_analysis as pfa


def model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        pfa.CausalTemporalConv(2, 3, kernel_frames=4, kernel_size=3),
        torch.nn.ReLU(),
        pfa.LeakyIntegrator(0.7),
    ).double().eval()


def movie(frames=11, seed=1):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(2, 2, frames, 5, 6)))


def causal_conv_numpy(conv, x):
    """Output frame t from input frames t-k+1..t (zeros before the start), by loops."""
    weight, bias = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    k, size = weight.shape[2], weight.shape[3]
    pad = size // 2
    padded = np.pad(x, ((0, 0), (0, 0), (k - 1, 0), (pad, pad), (pad, pad)))
    n, _, frames, height, width = x.shape
    out = np.empty((n, weight.shape[0], frames, height, width))
    for t in range(frames):
        for i in range(height):
            for j in range(width):
                window = padded[:, :, t : t + k, i : i + size, j : j + size]
                out[:, :, t, i, j] = np.einsum("nctij,octij->no", window, weight) + bias
    return out


@pytest.mark.parametrize("dt", [1, 3, 4, 11])
def test_chunked_runs_equal_one_pass_and_independent_computations(dt):
    net, x = model(), movie()
    chunked = pfa.run_in_chunks(net, x, dt, verbose=False)
    assert list(chunked) == [("conv1", 1), ("relu1", 2), ("leakyintegrator1", 3)]
    conv = causal_conv_numpy(net[0].conv, x.numpy())
    np.testing.assert_allclose(chunked[("conv1", 1)], conv, rtol=1e-5, atol=1e-5)
    relu = np.maximum(conv, 0)
    leaky = scipy.signal.lfilter([0.3], [1, -0.7], relu, axis=2)
    np.testing.assert_allclose(chunked[("leakyintegrator1", 3)], leaky, rtol=1e-5, atol=1e-5)
    fresh = model()
    with torch.no_grad():
        whole = fresh(x).numpy()
    np.testing.assert_allclose(chunked[("leakyintegrator1", 3)], whole, rtol=1e-6, atol=1e-6)


def test_a_run_continues_from_the_models_state_and_reset_starts_afresh():
    net, x = model(), movie(12)
    first = pfa.run_in_chunks(net, x[:, :, :5], 2, verbose=False)
    rest = pfa.run_in_chunks(net, x[:, :, 5:], 3, verbose=False)
    whole = pfa.run_in_chunks(model(), x, 12, verbose=False)
    for label in whole:
        joined = np.concatenate([first[label], rest[label]], axis=2)
        np.testing.assert_allclose(joined, whole[label], rtol=1e-6, atol=1e-6)
    pfa.reset_model_state(net)
    again = pfa.run_in_chunks(net, x, 5, verbose=False)
    np.testing.assert_allclose(again[("relu1", 2)], whole[("relu1", 2)], rtol=1e-6, atol=1e-6)


def test_states_are_saved_restored_pushed_and_popped():
    net, x = model(), movie(8)
    pfa.run_in_chunks(net, x[:, :, :4], 4, verbose=False)
    saved = pfa.get_model_state(net)
    assert set(saved) == {"0", "2"} and saved["0"]["history"].shape == (2, 2, 3, 5, 6)
    after = pfa.run_in_chunks(net, x[:, :, 4:], 2, verbose=False)
    pfa.set_model_state(net, saved)
    replay = pfa.run_in_chunks(net, x[:, :, 4:], 4, verbose=False)
    for label in after:
        np.testing.assert_allclose(after[label], replay[label], rtol=1e-6, atol=1e-6)
    layer = net[2]
    layer.push_state()
    before = layer.get_state()["last"].clone()
    with torch.no_grad():
        layer(torch.ones(2, 3, 2, 5, 6, dtype=torch.float64))
    assert not torch.equal(layer.last, before)
    layer.pop_state()
    assert torch.equal(layer.last, before)
    with pytest.raises(pfa.InvalidInputError, match="pop_state"):
        layer.pop_state()
    with pytest.raises(pfa.InvalidInputError, match="'state' parameter"):
        pfa.set_model_state(net, {"0": saved["0"]})


def test_bad_chunked_runs_are_clear_errors():
    net, x = model(), movie(6)
    with pytest.raises(pfa.InvalidInputError, match="'dt' parameter of run_in_chunks.*6 frames"):
        pfa.run_in_chunks(net, x, 7, verbose=False)
    with pytest.raises(pfa.InvalidInputError, match="'dt' parameter"):
        pfa.run_in_chunks(net, x, 0, verbose=False)
    with pytest.raises(pfa.InvalidInputError, match="'the_input' parameter.*shape"):
        pfa.run_in_chunks(net, x[0], 2, verbose=False)
    plain = torch.nn.Sequential(torch.nn.Conv3d(2, 2, 1)).double()
    with pytest.raises(pfa.InvalidInputError, match="keeps its state"):
        pfa.run_in_chunks(plain, x, 2, verbose=False)
    flat = torch.nn.Sequential(pfa.LeakyIntegrator(0.5), torch.nn.Flatten()).double()
    with pytest.raises(pfa.InvalidInputError, match=r"\('flatten1', 2\).*time axis"):
        pfa.run_in_chunks(flat, x, 2, verbose=False)
    assert set(pfa.run_in_chunks(flat, x, 2, ["leakyintegrator1"], verbose=False)) == {
        ("leakyintegrator1", 1)}
    with pytest.raises(pfa.InvalidInputError, match="'decay' parameter"):
        pfa.LeakyIntegrator(1.0)
    with pytest.raises(pfa.InvalidInputError, match="'kernel_size' parameter"):
        pfa.CausalTemporalConv(1, 1, 2, kernel_size=2)


def lagged(x, frames):
    """Design matrix of a causal FIR filter on (1, 1, time, H, W): column k is lag k, then 1s."""
    series = x[0, 0].reshape(x.shape[2], -1)
    padded = np.concatenate([np.zeros((frames - 1, series.shape[1])), series])
    columns = [padded[frames - 1 - k : frames - 1 - k + len(series)] for k in range(frames)]
    return np.stack([c.reshape(-1) for c in columns] + [np.ones(series.size)], axis=1)


def test_fitting_in_chunks_ends_at_the_least_squares_filter_of_the_last_chunk():
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(1, 1, 120, 2, 2)))
    true = np.array([0.5, -0.3, 0.2, 0.1, 0.25])  # weights for lags 0..3, then the bias
    design = lagged(x.numpy(), 4)
    target = (design @ true).reshape(120, 2, 2)[None, None]
    target = target + np.random.default_rng(3).normal(0, 0.05, target.shape)
    # L-BFGS solves each chunk; the last chunk (frames 90..119) starts with the carried
    # state, the end of the chunk before, so its lagged rows are the design's own rows
    last = slice(90 * 4, None)
    solution, *_ = np.linalg.lstsq(design[last], target.reshape(-1)[last], rcond=None)
    torch.manual_seed(0)
    net = torch.nn.Sequential(pfa.CausalTemporalConv(1, 1, kernel_frames=4)).double()
    history = pfa.fit_in_chunks(net, x, target, dt=30, num_epochs=2, verbose=False,
                                optimizer=torch.optim.LBFGS(net.parameters(), max_iter=50))
    assert list(history.columns) == ["epoch", "chunk", "start", "loss"]
    assert list(history.start) == [0, 30, 60, 90] * 2
    # the convolution runs over frames oldest first: lag k is kernel position 3 - k
    fitted = net[0].conv.weight.detach().numpy().reshape(4)[::-1]
    np.testing.assert_allclose(fitted, solution[:4], atol=1e-5)
    assert net[0].conv.bias.item() == pytest.approx(solution[4], abs=1e-5)
    assert np.abs(solution - true).max() < 0.05 and history.loss.iloc[-1] < 0.01


def test_bad_fits_are_clear_errors():
    net, x = model(), movie(6)
    with pytest.raises(pfa.InvalidInputError, match="'target' parameter of fit_in_chunks"):
        pfa.fit_in_chunks(net, x, np.zeros((2, 3, 5, 5, 6)), 2, verbose=False)
    with pytest.raises(pfa.InvalidInputError, match="'dt' parameter of fit_in_chunks"):
        pfa.fit_in_chunks(net, x, np.zeros((2, 3, 6, 5, 6)), 9, verbose=False)
