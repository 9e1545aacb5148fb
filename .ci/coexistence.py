"""Import PyPI's `safety` and `sensor` next to cobotguard and check that each name is the one expected."""

import importlib.util
import sys
from pathlib import Path


def origin(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        sys.exit(f"{name}: not importable")
    return Path(spec.origin).resolve()


def main() -> None:
    import cobotguard.hil.cli.main
    import cobotguard.safety.step
    import cobotguard.sensor.detector  # noqa: F401
    import safety  # PyPI's scanner: imports without hardware

    ours = origin("cobotguard.safety")
    theirs = origin("safety")
    print(f"safety            -> {theirs}")
    print(f"cobotguard.safety -> {ours}")
    if ours.parent == theirs.parent or "cobotguard" in theirs.parts:
        sys.exit("`safety` resolves to cobotguard's package")
    sensor = origin("sensor")  # PyPI's sensor imports smbus (I2C hardware) at import time: locate it only
    print(f"sensor            -> {sensor}")
    if "cobotguard" in sensor.parts:
        sys.exit("`sensor` resolves to cobotguard's package")
    for name in ("hil",):
        if importlib.util.find_spec(name) is not None:
            sys.exit(f"cobotguard still installs a top-level `{name}`")
    # the wheel carries its data: the default cell and the detector's model files
    import cobotguard.hil
    import cobotguard.sensor

    cell = Path(cobotguard.hil.__file__).parent / "defaults" / "cell.toml"
    models = sorted((Path(cobotguard.sensor.__file__).parent / "models").glob("*.onnx"))
    if not cell.is_file() or not models:
        sys.exit(f"package data missing: default cell {cell.is_file()}, models {models}")
    print("ok: PyPI's safety and sensor coexist with cobotguard; safety", safety.__name__, "imported")


if __name__ == "__main__":
    main()
