import os
import pathlib

import pytest

ROOT = pathlib.Path(os.environ.get("LOWBIT_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
CLI = os.environ.get("LOWBIT_CLI", str(ROOT / "build" / "bin" / "lowbit"))


@pytest.fixture
def root():
    return ROOT


@pytest.fixture
def cli():
    return CLI
