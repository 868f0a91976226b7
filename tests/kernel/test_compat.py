"""install_as_lightonml: LightOn's import paths resolve to opu_kernel."""

import os
import subprocess
import sys
import textwrap


def run_python(code: str, extra_path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env)


def test_lightonml_imports_resolve_to_ours():
    result = run_python("""
        import opu_kernel
        opu_kernel.install_as_lightonml()
        import lightonml
        from lightonml import OPU
        from lightonml.opu import OPU as OPU2
        from lightonml.encoding.base import BinaryThresholdEncoder, NoEncoding
        from lightonml.projections.sklearn import OPUMap
        from lightonml.types import OutputRescaling
        import lightonml.projections.torch as torch_projections
        import opu_kernel.lightonml_compat.opu as shim
        assert OPU is OPU2 is shim.OPU and issubclass(OPU, opu_kernel.OPU)
        assert OutputRescaling is opu_kernel.OutputRescaling
        assert BinaryThresholdEncoder.__module__ == "opu_kernel.encoding.base"
        assert OPUMap.__module__.startswith("opu_kernel.lightonml_compat.projections")
        lightonml.set_verbose_level(1)
        assert lightonml.get_verbose_level() == 1
        opu = OPU(n_components=10, simulated=True)
        opu.fit1d(n_features=4)
        print(lightonml.__version__, opu.transform([1, 0, 1, 1]).shape)
        try:
            import lightonml.internal.device
        except ModuleNotFoundError as exc:
            print("missing:", exc)
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "1.4.3 (10,)"
    # a module lightonml has but we do not provide says so, and lists what there is
    assert "lightonml.internal.device is not provided" in lines[1]
    assert "lightonml.internal.simulated_device" in lines[1]


def test_projection_torch_module_is_imported_lazily():
    result = run_python("""
        import sys, opu_kernel
        opu_kernel.install_as_lightonml()
        from lightonml import OPU
        print("torch" in sys.modules)
    """)
    assert result.stdout.strip() == "False", result.stderr


def test_refuses_when_the_real_lightonml_is_installed(tmp_path):
    (tmp_path / "lightonml").mkdir()
    (tmp_path / "lightonml" / "__init__.py").write_text("REAL = True\n")
    result = run_python("""
        import opu_kernel
        opu_kernel.install_as_lightonml()
    """, extra_path=str(tmp_path))
    assert result.returncode != 0
    assert "the real lightonml is installed" in result.stderr
    assert "pip uninstall lightonml" in result.stderr


def test_installing_twice_is_harmless():
    result = run_python("""
        import sys, opu_kernel
        opu_kernel.install_as_lightonml(); opu_kernel.install_as_lightonml()
        from opu_kernel.compat import LightonmlAliasFinder
        print(sum(isinstance(f, LightonmlAliasFinder) for f in sys.meta_path))
    """)
    assert result.stdout.strip() == "1", result.stderr
