"""``lightonml.cmd_line.opu_test``: time a batch of transforms on the OPU (or, without one,
on the simulator standing in for it), or print versions with ``-V``.

``python -m opu_kernel.lightonml_compat.cmd_line.opu_test [-ns N] [-nf F] [-nc C] [-l]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def transform(n_images: int, n_features: int, n_components: int = 0,
              disable_pbar: bool = False, linear: bool = False, config_file: str = "") -> float:
    """Fit and transform ``n_images`` all-ones inputs; prints the version and the rate and
    returns the elapsed seconds."""
    from ..opu import OPU

    opu = OPU(disable_pbar=disable_pbar, open_at_init=False, config_file=config_file)
    if n_components:
        opu.n_components = n_components
    inputs = np.ones((n_images, n_features), dtype=np.uint8)
    with opu:
        print(opu.version())
        begin = time.time()
        opu.fit1d(inputs)
        (opu.linear_transform if linear else opu.transform)(inputs)
        elapsed = time.time() - begin
    print(f"{n_images} transforms in {elapsed:.2f} s ({n_images / elapsed:.2f} Hz)")
    return elapsed


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="opu_test", description=__doc__.splitlines()[0])
    parse.add_argument("-ns", "--n-samples", type=int, default=3000, help="number of inputs")
    parse.add_argument("-nc", "--n-components", type=int, default=0,
                       help="number of components (0: the OPU's default)")
    parse.add_argument("-nf", "--n-features", type=int, default=100,
                       help="number of features")
    parse.add_argument("-v", "--verbose", type=int, default=1, help="verbosity, 0 to 3")
    parse.add_argument("-c", "--config-file", default="", help="override config file")
    parse.add_argument("-V", "--version", action="store_true",
                       help="print OPU and library versions and exit")
    parse.add_argument("-l", "--linear", action="store_true", help="linear transform")
    parse.add_argument("-dp", "--disable-pbar", action="store_true",
                       help="disable the progress bar")
    return parse


def main(argv=None) -> int:
    from ... import __version__
    from ...compat import LIGHTONML_VERSION
    from .. import set_verbose_level
    from ..internal import config

    args = parser().parse_args(argv)
    if args.version:
        if config.host_has_opu_config():
            print(config.opu_version(config.load_config()))
        else:
            print("No OPU detected on this host")
        print(f"lightonml version {LIGHTONML_VERSION} (opu_kernel {__version__})")
        return 0
    set_verbose_level(args.verbose)
    transform(args.n_samples, args.n_features, args.n_components, args.disable_pbar,
              linear=args.linear, config_file=args.config_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
