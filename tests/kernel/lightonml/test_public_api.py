"""Every public name of lightonml 1.4.3 is importable and behaves as lightonml documents:
top-level helpers, ``Context`` and its helpers, the enums, ``SimulatedOpuDevice``, the OPU's
``config``/``max_n_components``/``device`` attributes, lightonml's simulator scaling, and the
server's simulator caps applied to hardware-sized inputs."""

import datetime as dt
import importlib
import pickle

import numpy as np
import pytest

from opu_kernel.errors import SimulatorLimitError

from .common import random_bits

PUBLIC = {
    "lightonml": ["OPU", "__version__", "get_verbose_level", "set_verbose_level",
                  "get_ml_data_dir", "set_ml_data_dir", "get_debug_fn", "get_trace_fn",
                  "get_print_fn"],
    "lightonml.opu": ["OPU"],
    "lightonml.context": ["Context", "ContextArray", "from_epoch"],
    "lightonml.types": ["OutputRescaling"],
    "lightonml.encoding.base": [
        "BaseTransformer", "BinaryThresholdEncoder", "ConcatenatedBitPlanEncoder",
        "ConcatenatedFloat32Encoder", "ConcatenatingBitPlanDecoder", "Float32Encoder",
        "MultiThresholdEncoder", "NoDecoding", "NoEncoding", "SeparatedBitPlanDecoder",
        "SeparatedBitPlanEncoder", "SequentialBaseTwoEncoder", "preserve_type"],
    "lightonml.encoding.models": ["AE", "EncoderDecoder", "LinearAE", "ConvAE", "train"],
    "lightonml.projections.sklearn": ["OPUMap"],
    "lightonml.projections.torch": ["OPUMap"],
    "lightonml.datasets": ["MNIST", "FashionMNIST", "SignMNIST", "STL10", "CIFAR10",
                           "CIFAR100", "movielens100k", "movielens20m", "parse_line"],
    "lightonml.utils": ["get_ml_data_dir_path", "download", "load_model", "save_model",
                        "select_subset", "load_data_from_numpy_archive", "cast_01_to_uint8"],
    "lightonml.internal.config": ["load_config", "get_config_from", "host_has_opu_config",
                                  "get_host_option", "opu_version"],
    "lightonml.internal.simulated_device": ["SimulatedOpuDevice"],
    "lightonml.internal.types": ["InputRoiStrategy", "FeaturesFormat", "OutputRoiStrategy",
                                 "AcqState", "Roi", "Tuple2D"],
    "lightonml.cmd_line.opu_test": ["main", "transform"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_names_are_importable(lightonml, module):
    imported = importlib.import_module(module)
    missing = [name for name in PUBLIC[module] if not hasattr(imported, name)]
    assert not missing


def test_verbosity_and_logging_functions(lightonml):
    try:
        lightonml.set_verbose_level(0)
        assert lightonml.get_print_fn() is not print
        assert lightonml.get_debug_fn()("ignored") is None
        lightonml.set_verbose_level(2)
        assert lightonml.get_print_fn() is print and lightonml.get_verbose_level() == 2
    finally:
        lightonml.set_verbose_level(0)


def test_context_helpers(lightonml):
    from lightonml.context import Context, ContextArray, from_epoch
    from lightonml.internal.types import FeaturesFormat

    start = dt.datetime(2020, 10, 9, 10, 27, 21)
    context = Context(500, 400, ((0, 512), (2040, 64)), start, start + dt.timedelta(seconds=2),
                      0.0, ((0, 0), (912, 1140)), 514731, FeaturesFormat.lined, 103)
    assert (context.frametime_us, context.exposure_us, context.gain_dB) == (500, 400, 0.0)
    assert context.output_roi_shape == (2040, 64) and context.input_roi_upper == (0, 0)
    context.add_info({"note": "demo"})
    flat = context.as_flat_dict()
    assert flat["output_roi_position_1"] == 512 and flat["input_roi_shape_1"] == 1140
    assert flat["fmt_type"] == "lined" and flat["info"] == {"note": "demo"}
    assert Context.from_dict(flat) == context == Context.from_dict(context.as_dict())
    assert str(context).startswith("{'exposure_us': 400")
    assert from_epoch(0.0) == dt.datetime.fromtimestamp(0.0)
    stamped = Context.from_timestamps(1.0e9, 1.0e9 + 3)
    assert stamped.duration_s == 3 and stamped.exposure_us == -1
    array = ContextArray(np.arange(4), context)
    assert array[1:].context is context
    assert pickle.loads(pickle.dumps(array)).context == context


def test_context_from_a_device(lightonml):
    from lightonml.context import Context
    from lightonml.internal.simulated_device import SimulatedOpuDevice

    device = SimulatedOpuDevice(frametime_us=600, exposure_us=300)
    context = Context()
    context.from_opu(device, dt.datetime(2021, 1, 1))
    assert (context.frametime_us, context.exposure_us, context.gain) == (600, 300, 0.0)


def test_the_simulated_device_is_lightonmls_simulator(lightonml):
    from lightonml.internal.simulated_device import SimulatedOpuDevice

    opu = lightonml.OPU(n_components=50, max_n_features=200, opu_device=SimulatedOpuDevice())
    assert not opu.stands_for_device and opu.device.active
    X = random_bits((4, 120))
    opu.fit1d(X)
    y = opu.transform(X)
    assert y.dtype == np.float32
    H = opu.device.random_matrix
    assert H.shape == (120, 50) and H.dtype == np.complex64
    assert np.allclose(y, np.abs(X @ H) ** 2, rtol=1e-4)
    # entries of variance 1/max_n_features per part, as lightonml draws them
    assert abs(H.real.var() * 200 - 1) < 0.05
    with pytest.raises(ValueError, match="conflicting"):
        lightonml.OPU(simulated=True, opu_device=SimulatedOpuDevice())
    device = SimulatedOpuDevice(linear=True)
    device.build_random_matrix(6, 4, seed=3)
    device.open()
    assert np.allclose(device.transform1(np.eye(6)), device.random_matrix.real, atol=1e-6)


def test_linear_transform_scales_as_lightonmls_simulator(lightonml):
    """Re(Hx) / sqrt(n_features) with H of variance 1/max_n_features: the output's variance
    is ones / (max_n_features · n_features), as lightonml's simulator gives."""
    X = random_bits((200, 100), seed=2)
    for max_n_features in (100, 400):
        opu = lightonml.OPU(n_components=2000, max_n_features=max_n_features, simulated=True)
        opu.fit1d(X)
        y = np.asarray(opu.linear_transform(X))
        expected = X.sum(axis=1).mean() / (max_n_features * 100)
        assert abs(y.var() / expected - 1) < 0.1


def test_device_attributes_config_and_limits(lightonml, monkeypatch):
    opu = lightonml.OPU(n_components=10)
    assert opu.config["output"]["exposure_us"] == 400 and "input" in opu.config
    assert opu.max_n_components == 1920 * 1080
    monkeypatch.setenv("OPU_SIMULATOR_MAX_N_COMPONENTS", "5000")
    assert opu.max_n_components == 5000
    with pytest.raises(AttributeError, match="max_n_features can't be set"):
        opu.max_n_features = 2000
    opu.max_n_features = 1140 * 912  # unchanged: allowed
    simulated = lightonml.OPU(n_components=10, simulated=True)
    simulated.max_n_features = 2000
    assert simulated.max_n_features == 2000


def test_caps_apply_to_hardware_sized_inputs(lightonml, monkeypatch):
    monkeypatch.setenv("OPU_SIMULATOR_MAX_WORK", str(10**9))
    opu = lightonml.OPU(n_components=1000)
    opu.fit2d(n_features=(1140, 912))
    with pytest.raises(SimulatorLimitError, match="OPU_SIMULATOR_MAX_WORK"):
        opu.transform(random_bits((2, 1140, 912), dtype=bool))
    monkeypatch.setenv("OPU_SIMULATOR_MAX_N_COMPONENTS", "100")
    with pytest.raises(SimulatorLimitError, match="OPU_SIMULATOR_MAX_N_COMPONENTS"):
        lightonml.OPU(n_components=1000)
